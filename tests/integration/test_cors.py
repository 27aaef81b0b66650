"""Bucket CORS: Put/Get/DeleteBucketCors (boto3 and raw XML), preflight OPTIONS on the S3
and web endpoints, Access-Control-* headers on actual responses."""

from __future__ import annotations

import http.client
from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_website import site, web_get

from pygarage.testing.node import GarageNode

ORIGIN = "https://app.example.com"
RULES = [{"ID": "app", "AllowedOrigins": [ORIGIN, "https://*.trusted.org"],
          "AllowedMethods": ["GET", "PUT"], "AllowedHeaders": ["content-type", "x-amz-*"],
          "ExposeHeaders": ["ETag", "x-amz-version-id"], "MaxAgeSeconds": 600}]


def s3_req(node: GarageNode, method: str, path: str, headers: dict[str, str]
           ) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=10)
    try:
        c.request(method, path, headers=headers)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def preflight(method: str = "PUT", origin: str = ORIGIN,
              req_headers: str | None = "Content-Type") -> dict[str, str]:
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if req_headers:
        h["Access-Control-Request-Headers"] = req_headers
    return h


def test_put_get_delete_bucket_cors(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"


@pytest.mark.parametrize("rule, code", [
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}, "InvalidRequest"),
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["get"]}, "InvalidRequest"),
    ({"AllowedOrigins": ["https://*.*.org"], "AllowedMethods": ["GET"]}, "InvalidRequest"),
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["x-*-*"]},
     "InvalidRequest"),
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "ExposeHeaders": ["*"]},
     "InvalidRequest"),
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "ID": "x" * 256}, "InvalidArgument"),
])
def test_put_bucket_cors_validation(s3: Any, bucket: str, rule: dict[str, Any],
                                    code: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
    assert e.value.response["Error"]["Code"] == code
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_put_bucket_cors_malformed(raw: Any, bucket: str) -> None:
    for body in (b"<CORSConfiguration/>",
                 b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>"
                 b"</CORSRule></CORSConfiguration>",
                 b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
                 b"</CORSRule></CORSConfiguration>",
                 b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
                 b"<AllowedMethod>GET</AllowedMethod><MaxAgeSeconds>x</MaxAgeSeconds>"
                 b"</CORSRule></CORSConfiguration>",
                 b"<CORSConfiguration><Bogus/></CORSConfiguration>"):
        r = raw.request("PUT", f"/{bucket}", "cors=", body=body)
        assert (r.status, r.code) == (400, "MalformedXML"), body
    many = b"<CORSConfiguration>" + b"<CORSRule><AllowedOrigin>*</AllowedOrigin>" \
        b"<AllowedMethod>GET</AllowedMethod></CORSRule>" * 101 + b"</CORSConfiguration>"
    r = raw.request("PUT", f"/{bucket}", "cors=", body=many)
    assert r.status == 400


def test_cors_needs_owner(bucket: str, other_s3: Any) -> None:
    with pytest.raises(ClientError) as e:
        other_s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_s3_preflight(node: GarageNode, s3: Any, bucket: str) -> None:
    path = f"/{bucket}/some/key"
    # No CORS configuration: refused.
    status, headers, body = s3_req(node, "OPTIONS", path, preflight())
    assert status == 403 and b"AccessForbidden" in body
    assert not any(k.startswith("access-control-") for k in headers)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    status, headers, _ = s3_req(node, "OPTIONS", path, preflight())
    assert status == 200
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-methods"] == "GET, PUT"
    assert headers["access-control-allow-headers"] == "content-type"
    assert headers["access-control-max-age"] == "600"
    assert headers["access-control-expose-headers"] == "ETag, x-amz-version-id"
    # Wildcards in origins and headers.
    status, headers, _ = s3_req(node, "OPTIONS", path, preflight(
        "GET", "https://cdn.trusted.org", "x-amz-date, X-Amz-Content-Sha256"))
    assert status == 200 and headers["access-control-allow-origin"] == "https://cdn.trusted.org"
    # Not allowed: origin, method, header.
    for h in (preflight(origin="https://evil.example"), preflight("DELETE"),
              preflight(req_headers="authorization")):
        status, headers, body = s3_req(node, "OPTIONS", path, h)
        assert status == 403 and b"AccessForbidden" in body, h
        assert "access-control-allow-origin" not in headers
    # Vhost-style too.
    status, headers, _ = s3_req(node, "OPTIONS", "/some/key",
                                {**preflight(), "Host": f"{bucket}.s3.garage.localhost"})
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN


def test_s3_preflight_without_global_alias(node: GarageNode) -> None:
    """As Garage: OPTIONS / allows GET (ListBuckets); a name that is no global alias may be
    a key's local alias, whose rules are unknown before authentication: allowed."""
    status, headers, _ = s3_req(node, "OPTIONS", "/", preflight("GET"))
    assert status == 200 and headers["access-control-allow-origin"] == "*"
    assert headers["access-control-allow-methods"] == "GET"
    status, headers, _ = s3_req(node, "OPTIONS", "/not-a-global-alias/k", preflight())
    assert status == 200 and headers["access-control-allow-methods"] == "*"


def test_s3_preflight_bad_requests(node: GarageNode, bucket: str) -> None:
    status, _, body = s3_req(node, "OPTIONS", f"/{bucket}/k",
                             {"Access-Control-Request-Method": "GET"})
    assert status == 400 and b"BadRequest" in body
    status, _, body = s3_req(node, "OPTIONS", f"/{bucket}/k",
                             {"Origin": ORIGIN, "Access-Control-Request-Method": "BREW"})
    assert status == 400 and b"BadRequest" in body
    status, _, _ = s3_req(node, "OPTIONS", f"/{bucket}/k", {"Origin": ORIGIN})
    assert status == 400


def test_actual_response_headers(node: GarageNode, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")

    def with_origin(origin: str) -> Any:
        def add(request: Any, **_: Any) -> None:
            request.headers["Origin"] = origin
        return add

    captured: list[dict[str, str]] = []

    def keep(http_response: Any, **_: Any) -> None:
        captured.append({k.lower(): v for k, v in http_response.headers.items()})

    s3.meta.events.register("after-call.s3", lambda **kw: keep(kw["http_response"]))
    s3.meta.events.register("before-sign.s3", with_origin(ORIGIN))
    # No rules yet: no CORS headers at all.
    s3.get_object(Bucket=bucket, Key="k")["Body"].read()
    assert not any(k.startswith("access-control-") for k in captured[-1])
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"
    assert captured[-1]["access-control-allow-origin"] == ORIGIN
    assert captured[-1]["access-control-expose-headers"] == "ETag, x-amz-version-id"
    s3.put_object(Bucket=bucket, Key="k2", Body=b"x")
    assert captured[-1]["access-control-allow-origin"] == ORIGIN
    # DELETE is not in the rule: no headers.
    s3.delete_object(Bucket=bucket, Key="k2")
    assert "access-control-allow-origin" not in captured[-1]


def test_actual_response_other_origin(node: GarageNode, s3: Any, bucket: str) -> None:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    s3.put_object(Bucket=bucket, Key="big", Body=b"x" * (3 << 20))  # streamed, not inline
    captured: list[dict[str, str]] = []
    s3.meta.events.register("after-call.s3", lambda **kw: captured.append(
        {k.lower(): v for k, v in kw["http_response"].headers.items()}))

    def set_origin(origin: str) -> None:
        s3.meta.events.unregister("before-sign.s3", unique_id="origin")
        s3.meta.events.register("before-sign.s3", lambda request, **_: request.headers.
                                __setitem__("Origin", origin), unique_id="origin")

    set_origin("https://evil.example")
    s3.get_object(Bucket=bucket, Key="big")["Body"].read()
    assert "access-control-allow-origin" not in captured[-1]
    set_origin(ORIGIN)
    assert len(s3.get_object(Bucket=bucket, Key="big")["Body"].read()) == 3 << 20
    assert captured[-1]["access-control-allow-origin"] == ORIGIN


def test_web_endpoint_cors(node: GarageNode, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="index.html", Body=b"<p>hi</p>", ContentType="text/html")
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"}})
    status, headers, _ = web_get(node, site(bucket), "/", "OPTIONS",
                                 headers=preflight("GET"))
    assert status == 403
    status, headers, _ = web_get(node, site(bucket), "/", headers={"Origin": ORIGIN})
    assert status == 200 and "access-control-allow-origin" not in headers
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]}]})
    status, headers, _ = web_get(node, site(bucket), "/", "OPTIONS",
                                 headers=preflight("GET", req_headers=None))
    assert status == 200 and headers["access-control-allow-origin"] == "*"
    status, headers, _ = web_get(node, site(bucket), "/", "OPTIONS",
                                 headers=preflight("PUT", req_headers=None))
    assert status == 403
    status, headers, body = web_get(node, site(bucket), "/", headers={"Origin": ORIGIN})
    assert (status, body) == (200, b"<p>hi</p>")
    assert headers["access-control-allow-origin"] == "*"
    status, headers, _ = web_get(node, site(bucket), "/")
    assert "access-control-allow-origin" not in headers


def test_preflight_undecodable_host(node: GarageNode) -> None:
    import socket
    with socket.create_connection(("127.0.0.1", node.s3_port), timeout=10) as s:
        s.sendall(b"OPTIONS /k HTTP/1.1\r\nHost: \xff\xfe.s3.garage.localhost\r\n"
                  b"Origin: http://a\r\nAccess-Control-Request-Method: GET\r\n\r\n")
        head = s.recv(200)
    assert head.split(b" ", 2)[1] != b"500", head


def test_delete_cors_and_website_take_effect(node: GarageNode, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="index.html", Body=b"x", ContentType="text/html")
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"}})
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    assert web_get(node, site(bucket), "/", "OPTIONS", headers=preflight("GET"))[0] == 200
    assert s3_req(node, "OPTIONS", f"/{bucket}/k", preflight())[0] == 200
    s3.delete_bucket_cors(Bucket=bucket)
    assert web_get(node, site(bucket), "/", "OPTIONS", headers=preflight("GET"))[0] == 403
    assert s3_req(node, "OPTIONS", f"/{bucket}/k", preflight())[0] == 403
    s3.delete_bucket_website(Bucket=bucket)
    assert web_get(node, site(bucket), "/")[0] == 404
