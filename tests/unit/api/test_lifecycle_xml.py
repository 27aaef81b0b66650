"""Lifecycle configuration XML (pure): parsing, AWS's validation errors, round trip; quota
arithmetic."""

from __future__ import annotations

import pytest

from pygarage.api.common import errors
from pygarage.api.s3.lifecycle import lifecycle_xml, parse_lifecycle_xml
from pygarage.api.s3.quotas import quota_violation
from pygarage.model.lifecycle import LifecycleRule

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def conf(*rules: str) -> bytes:
    return f"<LifecycleConfiguration {NS}>{''.join(rules)}</LifecycleConfiguration>".encode()


def rule(body: str, status: str = "Enabled", rule_id: str | None = "r") -> str:
    i = f"<ID>{rule_id}</ID>" if rule_id is not None else ""
    return f"<Rule>{i}<Status>{status}</Status>{body}</Rule>"


EXP = "<Expiration><Days>3</Days></Expiration>"


def test_garage_example() -> None:
    body = conf(
        rule("<Filter><Prefix>documents/</Prefix></Filter><AbortIncompleteMultipartUpload>"
             "<DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload>",
             rule_id="id1"),
        rule("<Filter><And><Prefix>logs/</Prefix><ObjectSizeGreaterThan>1000000"
             "</ObjectSizeGreaterThan></And></Filter><Expiration><Days>365</Days>"
             "</Expiration>", rule_id="id2"))
    rules = parse_lifecycle_xml(body)
    assert rules == [
        LifecycleRule("id1", True, prefix="documents/", abort_mpu_days=7),
        LifecycleRule("id2", True, prefix="logs/", size_gt=1000000, expiration_days=365)]
    assert parse_lifecycle_xml(lifecycle_xml(rules)) == rules


@pytest.mark.parametrize("date", ["2030-01-31", "2030-01-31T00:00:00Z",
                                  "2030-01-31T00:00:00.000Z", "2030-01-31T00:00:00+00:00",
                                  "2030-01-31T01:00:00+01:00"])
def test_dates_at_midnight(date: str) -> None:
    rules = parse_lifecycle_xml(conf(rule(f"<Expiration><Date>{date}</Date></Expiration>")))
    assert rules[0].expiration_date == "2030-01-31"
    assert b"<Date>2030-01-31T00:00:00.000Z</Date>" in lifecycle_xml(rules)


def test_disabled_legacy_prefix_no_filter() -> None:
    r = parse_lifecycle_xml(conf(rule(f"<Prefix>tmp/</Prefix>{EXP}", status="Disabled",
                                      rule_id=None)))
    assert r == [LifecycleRule(None, False, prefix="tmp/", expiration_days=3)]
    r = parse_lifecycle_xml(conf(rule(EXP)))
    assert r == [LifecycleRule("r", True, expiration_days=3)]
    # Round trip of a size-only and of a two-size filter.
    for f in ("<ObjectSizeLessThan>10</ObjectSizeLessThan>",
              "<And><ObjectSizeGreaterThan>1</ObjectSizeGreaterThan>"
              "<ObjectSizeLessThan>10</ObjectSizeLessThan></And>"):
        rules = parse_lifecycle_xml(conf(rule(f"<Filter>{f}</Filter>{EXP}")))
        assert parse_lifecycle_xml(lifecycle_xml(rules)) == rules


BAD: list[tuple[bytes, type[errors.S3Error], str]] = [
    (conf(rule(EXP, rule_id="x" * 256)), errors.InvalidArgument, "255"),
    (conf(rule(EXP, rule_id="a"), rule(EXP, rule_id="a")), errors.InvalidArgument, "unique"),
    (conf(rule(EXP, status="enabled")), errors.MalformedXML, "Status"),
    (conf(f"<Rule><ID>x</ID>{EXP}</Rule>"), errors.MalformedXML, "Status"),
    (conf(rule("<Expiration><Date>2030-01-31T12:00:00Z</Date></Expiration>")),
     errors.InvalidArgument, "midnight"),
    (conf(rule("<Expiration><Date>2030-01-31T00:00:00.5Z</Date></Expiration>")),
     errors.InvalidArgument, "midnight"),
    (conf(rule("<Expiration><Date>2030-02-30</Date></Expiration>")), errors.MalformedXML,
     "Date"),
    (conf(rule("<Expiration><Date>soon</Date></Expiration>")), errors.MalformedXML, "Date"),
    (conf(rule("<Expiration><Days>1</Days><Date>2030-01-31</Date></Expiration>")),
     errors.MalformedXML, "Days"),
    (conf(rule("<Expiration></Expiration>")), errors.MalformedXML, "Days"),
    (conf(rule("<Expiration><Days>0</Days></Expiration>")), errors.InvalidArgument,
     "positive"),
    (conf(rule("<Expiration><Days>-2</Days></Expiration>")), errors.InvalidArgument,
     "positive"),
    (conf(rule("<Expiration><Days>x</Days></Expiration>")), errors.MalformedXML, "integer"),
    (conf(rule("<AbortIncompleteMultipartUpload><DaysAfterInitiation>0"
               "</DaysAfterInitiation></AbortIncompleteMultipartUpload>")),
     errors.InvalidArgument, "positive"),
    (conf(rule("<Filter><ObjectSizeGreaterThan>5</ObjectSizeGreaterThan></Filter>"
               "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1"
               "</DaysAfterInitiation></AbortIncompleteMultipartUpload>")),
     errors.InvalidRequest, "size"),
    (conf(rule("<Filter><Prefix>a</Prefix></Filter>")), errors.InvalidRequest, "action"),
    (conf(rule(f"<Filter><Prefix>a</Prefix><ObjectSizeLessThan>4</ObjectSizeLessThan>"
               f"</Filter>{EXP}")), errors.MalformedXML, "And"),
    (conf(rule(f"<Filter><Prefix>a</Prefix><And><Prefix>b</Prefix></And></Filter>{EXP}")),
     errors.MalformedXML, "And"),
    (conf(rule(f"<Filter><And><And><Prefix>b</Prefix></And></And></Filter>{EXP}")),
     errors.MalformedXML, "And"),
    (conf(rule(f"<Filter><And><ObjectSizeGreaterThan>9</ObjectSizeGreaterThan>"
               f"<ObjectSizeLessThan>9</ObjectSizeLessThan></And></Filter>{EXP}")),
     errors.InvalidArgument, "less than"),
    (conf(rule(f"<Filter><Prefix>a</Prefix></Filter><Prefix>a</Prefix>{EXP}")),
     errors.MalformedXML, "Prefix"),
    (conf(rule(f"<Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>{EXP}")),
     errors.NotImplementedErr, "Tag"),
    (conf(rule("<Transition><Days>3</Days><StorageClass>GLACIER</StorageClass>"
               "</Transition>")), errors.NotImplementedErr, "Transition"),
    (conf(rule("<NoncurrentVersionExpiration><NoncurrentDays>3</NoncurrentDays>"
               "</NoncurrentVersionExpiration>")), errors.NotImplementedErr, "Noncurrent"),
    (conf(rule("<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
               "</Expiration>")), errors.NotImplementedErr, "ExpiredObjectDeleteMarker"),
    (conf(rule(f"<Bogus>1</Bogus>{EXP}")), errors.MalformedXML, "Bogus"),
    (conf(rule(EXP + EXP)), errors.MalformedXML, ""),
    (conf(), errors.MalformedXML, "Rule"),
    (conf("<NotARule/>"), errors.MalformedXML, "NotARule"),
    (b"<Other/>", errors.MalformedXML, ""),
    (b"<LifecycleConfiguration><Rule>", errors.MalformedXML, ""),
    (conf(*[rule(EXP, rule_id=str(i)) for i in range(1001)]), errors.InvalidRequest, "1000"),
]


@pytest.mark.parametrize("body,err,words", BAD)
def test_refused(body: bytes, err: type[errors.S3Error], words: str) -> None:
    with pytest.raises(err) as e:
        parse_lifecycle_xml(body)
    assert words in e.value.message


def test_quota_violation() -> None:
    q = {"max_size": 100, "max_objects": 2}
    assert quota_violation(None, {}, {}, 10**9) is None
    assert quota_violation(q, {"objects": 1, "bytes": 50}, {}, 50) is None
    assert "Bucket size" in (quota_violation(q, {"objects": 1, "bytes": 50}, {}, 51) or "")
    assert "Object quota" in (quota_violation(q, {"objects": 2, "bytes": 0}, {}, 0) or "")
    # An overwrite replaces the old object's count and size.
    assert quota_violation(q, {"objects": 2, "bytes": 100},
                           {"objects": 1, "bytes": 40}, 40) is None
    # Adding nothing passes even over quota (quota lowered after the fact).
    assert quota_violation({"max_size": 1, "max_objects": 0}, {"objects": 5, "bytes": 500},
                           {"objects": 1, "bytes": 100}, 100) is None
