"""Website routing and CORS matching: pure functions, no server."""

from __future__ import annotations

from typing import Any

import pytest

from pygarage.api.common import errors
from pygarage.api.s3.cors import find_rule, parse_cors, preflight
from pygarage.api.s3.website import parse_website
from pygarage.model.bucket_table import Bucket
from pygarage.web.routing import (
    BadPath,
    Redirect,
    Serve,
    apply_rules,
    host_bucket_name,
    path_key,
    redirect_all,
    with_index,
)


@pytest.mark.parametrize("host, name", [
    ("blog.web.garage.localhost", "blog"), ("BLOG.Web.Garage.Localhost:3902", "blog"),
    ("www.example.com", "www.example.com"), ("www.example.com:80", "www.example.com"),
    ("web.garage.localhost", "web.garage.localhost"), ("[::1]:3902", "[::1]"),
    ("blog.web.garage.localhost.", "blog"),
])
def test_host_bucket_name(host: str, name: str) -> None:
    assert host_bucket_name(host, ".web.garage.localhost") == name


def test_paths() -> None:
    assert path_key("/a%20b/c") == "a b/c"
    assert with_index("", "index.html") == "index.html"
    assert with_index("docs/", "index.html") == "docs/index.html"
    assert with_index("docs", "index.html") == "docs"
    for bad in ("relative", "/%ff"):
        with pytest.raises(BadPath):
            path_key(bad)


def _conf(xml: str) -> dict[str, Any]:
    return parse_website(f"<WebsiteConfiguration><IndexDocument><Suffix>index.html</Suffix>"
                         f"</IndexDocument><RoutingRules>{xml}</RoutingRules>"
                         f"</WebsiteConfiguration>".encode())


def test_routing_rules() -> None:
    conf = _conf("<RoutingRule><Condition><KeyPrefixEquals>docs/</KeyPrefixEquals></Condition>"
                 "<Redirect><ReplaceKeyPrefixWith>documents/</ReplaceKeyPrefixWith>"
                 "</Redirect></RoutingRule>"
                 "<RoutingRule><Condition><HttpErrorCodeReturnedEquals>404"
                 "</HttpErrorCodeReturnedEquals></Condition><Redirect><HttpRedirectCode>404"
                 "</HttpRedirectCode><ReplaceKeyWith>missing.html</ReplaceKeyWith></Redirect>"
                 "</RoutingRule>")
    assert apply_rules(conf, "docs/a b.html", False) == Redirect(302, "/documents/a%20b.html")
    assert apply_rules(conf, "other", False) is None
    assert apply_rules(conf, "other", True) == Serve("missing.html", 404)
    assert apply_rules(conf, "docs/x", True) == Serve("missing.html", 404)


def test_unconditional_rule_to_host() -> None:
    conf = _conf("<RoutingRule><Redirect><HostName>example.org</HostName><Protocol>https"
                 "</Protocol><HttpRedirectCode>308</HttpRedirectCode></Redirect></RoutingRule>")
    assert apply_rules(conf, "a/b", False) == Redirect(308, "https://example.org/a/b")


def test_redirect_all() -> None:
    conf = parse_website(b"<WebsiteConfiguration><RedirectAllRequestsTo><HostName>x.org"
                         b"</HostName></RedirectAllRequestsTo></WebsiteConfiguration>")
    assert redirect_all(conf, "p", "") == Redirect(301, "http://x.org/p")


RULES = parse_cors(b"<CORSConfiguration><CORSRule><AllowedOrigin>https://*.a.org"
                   b"</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedHeader>x-*"
                   b"</AllowedHeader></CORSRule><CORSRule><AllowedOrigin>*</AllowedOrigin>"
                   b"<AllowedMethod>HEAD</AllowedMethod></CORSRule></CORSConfiguration>")


def test_cors_matching() -> None:
    assert find_rule(RULES, "https://w.a.org", "GET", ["x-foo"]) is RULES[0]
    assert find_rule(RULES, "https://a.org", "GET", []) is None  # '*.' needs a subdomain
    assert find_rule(RULES, "https://w.a.org", "GET", ["authorization"]) is None
    assert find_rule(RULES, "http://any", "HEAD", []) is RULES[1]
    assert find_rule(RULES, "http://any", "GET", []) is None


def test_preflight_errors() -> None:
    b = Bucket(b"\x00" * 32, cors=(1, RULES))
    with pytest.raises(errors.S3Error) as e:
        preflight(b, {"access-control-request-method": "GET"})
    assert e.value.status == 400
    with pytest.raises(errors.S3Error) as e:
        preflight(b, {"origin": "https://w.a.org", "access-control-request-method": "PUT"})
    assert (e.value.status, e.value.code) == (403, "AccessForbidden")
    h = preflight(b, {"origin": "https://w.a.org", "access-control-request-method": "GET",
                      "access-control-request-headers": "X-Foo, x-bar"})
    assert h["Access-Control-Allow-Origin"] == "https://w.a.org"
    assert h["Access-Control-Allow-Headers"] == "x-foo, x-bar"
