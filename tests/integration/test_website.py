"""Static websites: the [s3_web] endpoint, `garage bucket website`, admin websiteAccess and
S3 Put/Get/DeleteBucketWebsite, against a real server (boto3 and raw HTTP)."""

from __future__ import annotations

import http.client
import secrets
from typing import Any

import pytest
from botocore.exceptions import ClientError
from s3helpers import read_until_close

from pygarage.testing.node import GarageNode

WEB_ROOT = ".web.garage.localhost"


def web_get(node: GarageNode, host: str, path: str = "/", method: str = "GET",
            headers: dict[str, str] | None = None, body: bytes | None = None
            ) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", node.web_port, timeout=10)
    try:
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", host)
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def site(bucket: str) -> str:
    return bucket + WEB_ROOT


def put(s3: Any, bucket: str, key: str, body: bytes, ctype: str = "text/html") -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=ctype)


def allow(s3: Any, bucket: str, error: str | None = None, **extra: Any) -> None:
    conf: dict[str, Any] = {"IndexDocument": {"Suffix": "index.html"}, **extra}
    if error:
        conf["ErrorDocument"] = {"Key": error}
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=conf)


def test_cli_website_allow_serves_and_deny_stops(node: GarageNode, s3: Any,
                                                  bucket: str) -> None:
    put(s3, bucket, "index.html", b"<h1>home</h1>")
    put(s3, bucket, "oops.html", b"custom error")
    assert web_get(node, site(bucket))[0] == 404  # not a website yet
    out = node.cli("bucket", "website", "--allow", bucket, "--error-document", "oops.html")
    assert "allowed" in out.stdout
    status, headers, body = web_get(node, site(bucket))
    assert (status, body) == (200, b"<h1>home</h1>")
    assert headers["content-type"] == "text/html"
    status, _, body = web_get(node, site(bucket), "/missing")
    assert (status, body) == (404, b"custom error")
    info = node.cli("bucket", "info", bucket).stdout
    assert "Website access: true" in info and "oops.html" in info
    w = s3.get_bucket_website(Bucket=bucket)
    assert w["IndexDocument"] == {"Suffix": "index.html"}
    assert w["ErrorDocument"] == {"Key": "oops.html"}
    node.cli("bucket", "website", "--deny", bucket)
    assert web_get(node, site(bucket))[0] == 404
    with pytest.raises(ClientError) as e:
        s3.get_bucket_website(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchWebsiteConfiguration"


def test_cli_website_custom_index(node: GarageNode, s3: Any, bucket: str) -> None:
    put(s3, bucket, "docs/start.htm", b"start")
    node.cli("bucket", "website", "--allow", bucket, "--index-document", "start.htm")
    assert web_get(node, site(bucket), "/docs/")[:3:2] == (200, b"start")
    r = node.cli("bucket", "website", "--allow", bucket, "--index-document", "a/b.html",
                 check=False)
    assert r.returncode != 0 and "/" in r.stderr + r.stdout


def test_admin_update_bucket_website_access(node: GarageNode, s3: Any, bucket: str) -> None:
    put(s3, bucket, "index.html", b"admin-enabled")
    bid = node.admin("GetBucketInfo", {"globalAlias": bucket})["id"]
    info = node.admin("UpdateBucket", {"id": bid}, {"websiteAccess": {
        "enabled": True, "indexDocument": "index.html", "errorDocument": None}})
    assert info["websiteAccess"] is True
    assert web_get(node, site(bucket))[2] == b"admin-enabled"
    node.admin("UpdateBucket", {"id": bid}, {"websiteAccess": {"enabled": False}})
    assert web_get(node, site(bucket))[0] == 404


def test_host_mapping(node: GarageNode, s3: Any, creds: tuple[str, str]) -> None:
    name = f"www-{secrets.token_hex(4)}.example.test"
    node.create_bucket(name, creds[0])
    put(s3, name, "index.html", b"by-alias")
    allow(s3, name)
    # A global alias equal to the host name; port ignored; case-insensitive.
    assert web_get(node, name)[2] == b"by-alias"
    assert web_get(node, name.upper() + ":8080")[2] == b"by-alias"
    assert web_get(node, site(name).upper() + ":3902")[2] == b"by-alias"
    assert web_get(node, "nope-" + secrets.token_hex(4) + WEB_ROOT)[0] == 404
    assert web_get(node, "unknown.example.test")[0] == 404


def test_unknown_and_non_website_buckets(node: GarageNode, s3: Any, bucket: str) -> None:
    put(s3, bucket, "index.html", b"private")
    status, _, body = web_get(node, site(bucket))
    assert status == 404 and b"private" not in body
    status, _, body = web_get(node, site(bucket), "/index.html")
    assert status == 404 and b"private" not in body
    assert web_get(node, site("no-such-" + secrets.token_hex(4)))[0] == 404


def test_index_and_folder_redirect(node: GarageNode, s3: Any, bucket: str) -> None:
    put(s3, bucket, "index.html", b"root")
    put(s3, bucket, "a b/index.html", b"folder")
    put(s3, bucket, "file", b"a file")
    allow(s3, bucket)
    assert web_get(node, site(bucket), "/")[2] == b"root"
    assert web_get(node, site(bucket), "/a%20b/")[2] == b"folder"
    status, headers, _ = web_get(node, site(bucket), "/a%20b")
    assert status == 302 and headers["location"] == "/a%20b/"
    assert web_get(node, site(bucket), "/file")[2] == b"a file"
    # No listings: a folder without an index document is a 404.
    put(s3, bucket, "noindex/x.txt", b"x")
    status, _, body = web_get(node, site(bucket), "/noindex/")
    assert status == 404 and b"x.txt" not in body


def test_range_conditionals_head(node: GarageNode, s3: Any, bucket: str) -> None:
    put(s3, bucket, "data.txt", b"0123456789", "text/plain")
    allow(s3, bucket)
    status, headers, body = web_get(node, site(bucket), "/data.txt",
                                    headers={"Range": "bytes=2-4"})
    assert (status, body, headers["content-range"]) == (206, b"234", "bytes 2-4/10")
    etag = headers["etag"]
    assert web_get(node, site(bucket), "/data.txt", headers={"If-None-Match": etag})[0] == 304
    status, _, _ = web_get(node, site(bucket), "/data.txt", headers={"If-Match": '"nope"'})
    assert status == 412
    status, headers, body = web_get(node, site(bucket), "/data.txt", "HEAD")
    assert (status, headers["content-length"], body) == (200, "10", b"")
    # Query parameters of the S3 API mean nothing here.
    status, headers, _ = web_get(node, site(bucket),
                                 "/data.txt?response-content-type=evil%2Fthing")
    assert status == 200 and headers["content-type"] == "text/plain"


def test_error_document(node: GarageNode, s3: Any, bucket: str) -> None:
    put(s3, bucket, "err/404.html", b"<p>lost</p>")
    put(s3, bucket, "small", b"abc", "text/plain")
    allow(s3, bucket, error="err/404.html")
    status, headers, body = web_get(node, site(bucket), "/nothing/here")
    assert (status, body) == (404, b"<p>lost</p>")
    assert headers["content-type"] == "text/html" and headers["x-garage-error"]
    # The client's Range was for the missing key: the error document comes whole.
    status, _, body = web_get(node, site(bucket), "/gone", headers={"Range": "bytes=0-1"})
    assert (status, body) == (404, b"<p>lost</p>")
    status, _, body = web_get(node, site(bucket), "/small", headers={"Range": "bytes=10-20"})
    assert (status, body) == (416, b"<p>lost</p>")
    status, _, body = web_get(node, site(bucket), "/nothing", "HEAD")
    assert (status, body) == (404, b"")


def test_missing_error_document_and_plain_404(node: GarageNode, s3: Any, bucket: str) -> None:
    allow(s3, bucket, error="absent.html")
    status, headers, body = web_get(node, site(bucket), "/x")
    assert status == 404 and headers["content-type"] == "text/html; charset=utf-8"
    assert b"<p>" in body
    allow(s3, bucket)
    assert web_get(node, site(bucket), "/x")[0] == 404


def test_no_writes_no_auth(node: GarageNode, s3: Any, bucket: str) -> None:
    put(s3, bucket, "index.html", b"ro")
    allow(s3, bucket)
    for method in ("PUT", "POST", "DELETE"):
        status, headers, _ = web_get(node, site(bucket), "/index.html", method,
                                     body=b"overwrite")
        assert status == 405 and "GET" in headers["allow"]
    assert s3.get_object(Bucket=bucket, Key="index.html")["Body"].read() == b"ro"
    status, _, _ = web_get(node, site(bucket), "/bad%ff")
    assert status in (400, 404)


def test_put_get_delete_bucket_website_xml(s3: Any, bucket: str) -> None:
    rules = [{"Condition": {"KeyPrefixEquals": "old/"},
              "Redirect": {"ReplaceKeyPrefixWith": "new/", "HttpRedirectCode": "301"}},
             {"Condition": {"HttpErrorCodeReturnedEquals": "404"},
              "Redirect": {"HostName": "example.org", "Protocol": "https"}}]
    allow(s3, bucket, error="e.html", RoutingRules=rules)
    w = s3.get_bucket_website(Bucket=bucket)
    assert w["IndexDocument"] == {"Suffix": "index.html"}
    assert w["ErrorDocument"] == {"Key": "e.html"}
    assert w["RoutingRules"][0] == rules[0]
    assert w["RoutingRules"][1]["Redirect"] == {"HostName": "example.org", "Protocol": "https",
                                                "HttpRedirectCode": "302"}
    s3.delete_bucket_website(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_website(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchWebsiteConfiguration"
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "RedirectAllRequestsTo": {"HostName": "example.com", "Protocol": "https"}})
    assert s3.get_bucket_website(Bucket=bucket)["RedirectAllRequestsTo"] == {
        "HostName": "example.com", "Protocol": "https"}


@pytest.mark.parametrize("conf, code", [
    ({"ErrorDocument": {"Key": "e.html"}}, "InvalidArgument"),
    ({"IndexDocument": {"Suffix": ""}}, "InvalidArgument"),
    ({"IndexDocument": {"Suffix": "a/index.html"}}, "InvalidArgument"),
    ({"IndexDocument": {"Suffix": "i.html"},
      "RedirectAllRequestsTo": {"HostName": "example.com"}}, "InvalidArgument"),
    ({"RedirectAllRequestsTo": {"HostName": "example.com", "Protocol": "ftp"}},
     "InvalidArgument"),
    ({"IndexDocument": {"Suffix": "i.html"}, "RoutingRules": [{"Redirect": {
        "ReplaceKeyWith": "a", "ReplaceKeyPrefixWith": "b"}}]}, "InvalidArgument"),
    ({"IndexDocument": {"Suffix": "i.html"}, "RoutingRules": [{"Redirect": {
        "HttpRedirectCode": "300"}}]}, "InvalidArgument"),
    ({"IndexDocument": {"Suffix": "i.html"}, "RoutingRules": [{
        "Condition": {"HttpErrorCodeReturnedEquals": "500"},
        "Redirect": {"HostName": "x.org"}}]}, "InvalidArgument"),
    ({"IndexDocument": {"Suffix": "i.html"}, "RoutingRules": [{
        "Redirect": {"Protocol": "https"}}]}, "InvalidArgument"),
])
def test_put_bucket_website_validation(s3: Any, bucket: str, conf: dict[str, Any],
                                       code: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=conf)
    assert e.value.response["Error"]["Code"] == code
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_website_xml_empty_values(raw: Any, bucket: str) -> None:
    """Values botocore refuses to send: checked by the server all the same."""
    for body in (b"<WebsiteConfiguration><IndexDocument><Suffix>i.html</Suffix>"
                 b"</IndexDocument><ErrorDocument><Key></Key></ErrorDocument>"
                 b"</WebsiteConfiguration>",
                 b"<WebsiteConfiguration><IndexDocument><Suffix> </Suffix></IndexDocument>"
                 b"</WebsiteConfiguration>"):
        r = raw.request("PUT", f"/{bucket}", "website=", body=body)
        assert (r.status, r.code) == (400, "InvalidArgument"), body


def test_website_xml_malformed(raw: Any, bucket: str) -> None:
    for body in (b"<WebsiteConfiguration><IndexDocument/></WebsiteConfiguration>",
                 b"<Nope/>", b"<WebsiteConfiguration><Bogus/></WebsiteConfiguration>",
                 b"not xml"):
        r = raw.request("PUT", f"/{bucket}", "website=", body=body)
        assert (r.status, r.code) == (400, "MalformedXML"), body


def test_website_needs_owner(node: GarageNode, bucket: str, other_s3: Any) -> None:
    with pytest.raises(ClientError) as e:
        allow(other_s3, bucket)
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_redirect_all_requests(node: GarageNode, s3: Any, bucket: str) -> None:
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "RedirectAllRequestsTo": {"HostName": "example.com", "Protocol": "https"}})
    status, headers, _ = web_get(node, site(bucket), "/some/page.html?x=1")
    assert status == 301 and headers["location"] == "https://example.com/some/page.html?x=1"


def test_routing_rules(node: GarageNode, s3: Any, bucket: str) -> None:
    put(s3, bucket, "new/page.html", b"new page")
    put(s3, bucket, "spa/index.html", b"single page app")
    put(s3, bucket, "exists.html", b"here")
    allow(s3, bucket, RoutingRules=[
        {"Condition": {"KeyPrefixEquals": "old/"},
         "Redirect": {"ReplaceKeyPrefixWith": "new/", "HttpRedirectCode": "301"}},
        {"Condition": {"KeyPrefixEquals": "app/"},
         "Redirect": {"ReplaceKeyWith": "spa/index.html", "HttpRedirectCode": "200"}},
        {"Condition": {"HttpErrorCodeReturnedEquals": "404", "KeyPrefixEquals": "ext/"},
         "Redirect": {"HostName": "example.org", "Protocol": "https"}},
    ])
    status, headers, _ = web_get(node, site(bucket), "/old/page.html")
    assert status == 301 and headers["location"] == "/new/page.html"
    assert web_get(node, site(bucket), "/new/page.html")[2] == b"new page"
    status, _, body = web_get(node, site(bucket), "/app/deep/link")
    assert (status, body) == (200, b"single page app")
    status, headers, _ = web_get(node, site(bucket), "/ext/missing")
    assert status == 302 and headers["location"] == "https://example.org/ext/missing"
    # 404-conditioned rules only apply to missing keys.
    put(s3, bucket, "ext/present", b"present")
    assert web_get(node, site(bucket), "/ext/present")[2] == b"present"
    assert web_get(node, site(bucket), "/elsewhere")[0] == 404


def test_website_redirect_location_object(node: GarageNode, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="moved.html", Body=b"",
                  WebsiteRedirectLocation="https://example.net/new.html")
    s3.put_object(Bucket=bucket, Key="local", Body=b"", WebsiteRedirectLocation="/index.html")
    allow(s3, bucket)
    status, headers, _ = web_get(node, site(bucket), "/moved.html")
    assert status == 301 and headers["location"] == "https://example.net/new.html"
    status, headers, _ = web_get(node, site(bucket), "/local", "HEAD")
    assert status == 301 and headers["location"] == "/index.html"


def test_config_index_default(private_node: GarageNode) -> None:
    """[s3_web] index: the index document of buckets given website access without one."""
    cfg = private_node.config_path.read_text()
    private_node.config_path.write_text(cfg.replace(
        f'root_domain = "{WEB_ROOT}"', f'root_domain = "{WEB_ROOT}"\nindex = "home.html"'))
    private_node.start()
    key_id, secret = private_node.create_key("k")
    private_node.create_bucket("site", key_id)
    s3 = private_node.s3(key_id, secret)
    put(s3, "site", "home.html", b"home page")
    put(s3, "site", "sub/home.html", b"sub home")
    private_node.cli("bucket", "website", "--allow", "site")
    assert web_get(private_node, site("site"), "/")[2] == b"home page"
    assert s3.get_bucket_website(Bucket="site")["IndexDocument"] == {"Suffix": "home.html"}
    private_node.cli("bucket", "website", "--allow", "site", "-i", "other.html")
    assert web_get(private_node, site("site"), "/sub/")[0] == 404
    bid = private_node.admin("GetBucketInfo", {"globalAlias": "site"})["id"]
    private_node.admin("UpdateBucket", {"id": bid}, {"websiteAccess": {"enabled": True}})
    assert web_get(private_node, site("site"), "/sub/")[2] == b"sub home"


def test_config_index_refused(private_node: GarageNode) -> None:
    cfg = private_node.config_path.read_text()
    private_node.config_path.write_text(cfg.replace(
        f'root_domain = "{WEB_ROOT}"', f'root_domain = "{WEB_ROOT}"\nindex = "a/b.html"'))
    with pytest.raises(RuntimeError, match="s3_web.index"):
        private_node.start()


def test_web_endpoint_behind_the_connection_guard(tmp_path: Any) -> None:
    """The same header deadline as the S3 endpoint: a client that never finishes its
    headers is closed."""
    import socket
    import time
    n = GarageNode(tmp_path / "guard", extra="http_header_timeout_msec = 1000")
    n.start()
    try:
        s = socket.create_connection(("127.0.0.1", n.web_port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x" + WEB_ROOT.encode() + b"\r\nX-Slow: ")
        s.settimeout(5)
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert 0.7 < time.monotonic() - t0 < 3
        s.close()
    finally:
        n.stop()


def test_web_metrics(tmp_path: Any) -> None:
    """web_request_counter / web_error_counter / web_request_duration, with the host label
    only under add_host_to_metrics, and only for hosts that name a website."""
    import urllib.request
    n = GarageNode(tmp_path / "m")
    cfg = n.config_path.read_text()
    n.config_path.write_text(cfg.replace(f'root_domain = "{WEB_ROOT}"',
                                         f'root_domain = "{WEB_ROOT}"\nadd_host_to_metrics = true'))
    n.start()
    try:
        key_id, secret = n.create_key("k")
        n.create_bucket("msite", key_id)
        s3 = n.s3(key_id, secret)
        put(s3, "msite", "index.html", b"x")
        allow(s3, "msite")
        assert web_get(n, site("msite") + ":1234")[0] == 200
        assert web_get(n, site("msite"), "/nope")[0] == 404
        assert web_get(n, "random-" + secrets.token_hex(3) + ".example")[0] == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{n.admin_port}/metrics") as r:
            text = r.read().decode()
        assert f'web_request_counter_total{{host="{site("msite")}",method="GET"}} 2.0' in text
        assert f'web_error_counter_total{{host="{site("msite")}",method="GET",status_code="404"}}' \
            in text
        assert 'web_request_counter_total{host="",method="GET"} 1.0' in text  # not a site
        assert "random-" not in text
        assert "web_request_duration_bucket" in text
    finally:
        n.stop()


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.0\r\n\r\n",                                   # no Host
    b"GET / HTTP/1.1\r\nHost: [\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: \xff\xfe.web.garage.localhost\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: " + b"a" * 5000 + b"\r\n\r\n",
    b"GET /%00%ff HTTP/1.1\r\nHost: x.web.garage.localhost\r\n\r\n",
    b"GET http://evil/x HTTP/1.1\r\nHost: x.web.garage.localhost\r\n\r\n",
    b"BREW / HTTP/1.1\r\nHost: x.web.garage.localhost\r\n\r\n",
    b"OPTIONS / HTTP/1.1\r\nHost: x.web.garage.localhost\r\n\r\n",
    # A byte that is not UTF-8 quoted in the error page was a 500 (it could not be encoded).
    b"OPTIONS / HTTP/1.1\r\nHost: x.web.garage.localhost\r\nOrigin: https://a.example\r\n"
    b"Access-Control-Request-Method: \xff\r\n\r\n",
    b"OPTIONS / HTTP/1.1\r\nHost: x.web.garage.localhost\r\nOrigin: \xff\r\n"
    b"Access-Control-Request-Method: G\xe9T\r\nAccess-Control-Request-Headers: \xfe\r\n\r\n",
])
def test_hostile_requests_never_500(node: GarageNode, s3: Any, bucket: str,
                                    request_bytes: bytes) -> None:
    import socket
    put(s3, bucket, "index.html", b"ok")
    allow(s3, bucket)
    data = request_bytes.replace(b"x.web.garage.localhost", site(bucket).encode())
    with socket.create_connection(("127.0.0.1", node.web_port), timeout=10) as s:
        s.sendall(data)
        head = s.recv(200)
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500, head


def test_put_website_streaming_body(raw: Any, s3: Any, bucket: str) -> None:
    """As Garage's test_put_website_streaming: an aws-chunked, chunk-signed body."""
    from s3helpers import signed_chunked_body, signed_chunked_length
    data = (b"<WebsiteConfiguration><IndexDocument><Suffix>home.html</Suffix></IndexDocument>"
            b"<ErrorDocument><Key>err.html</Key></ErrorDocument></WebsiteConfiguration>")
    sha, chunk = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 64
    headers = {"Content-Encoding": "aws-chunked",
               "x-amz-decoded-content-length": str(len(data)),
               "Content-Length": str(signed_chunked_length(len(data), chunk))}
    s = raw.sign("PUT", f"/{bucket}", "website=", headers=headers, payload_hash=sha)
    r = raw.send("PUT", f"/{bucket}?website=", s.headers, signed_chunked_body(s, data, chunk))
    assert r.status == 200, r.body
    w = s3.get_bucket_website(Bucket=bucket)
    assert (w["IndexDocument"], w["ErrorDocument"]) == ({"Suffix": "home.html"},
                                                        {"Key": "err.html"})


def test_unreadable_block_mid_body_cuts_the_connection(tmp_path: Any) -> None:
    """As on the S3 endpoint: once the status line is out, an error cuts the connection
    (never a second response inside the body), and the log has no traceback."""
    import os
    import socket

    from pygarage.util.ids import block_hash
    block = 16 * 1024
    n = GarageNode(tmp_path / "cut", block_size="16KiB")
    n.start()
    try:
        key_id, secret = n.create_key("k")
        n.create_bucket("cut", key_id)
        s3 = n.s3(key_id, secret)
        body = os.urandom(6 * block)
        s3.put_object(Bucket="cut", Key="big.bin", Body=body)
        allow(s3, "cut")
        victim = block_hash(body[4 * block:5 * block]).hex()
        path = next(p for p in (n.root / "data").rglob("*")
                    if p.is_file() and p.name.removesuffix(".zst") == victim)
        data = bytearray(path.read_bytes())
        data[100] ^= 0xFF
        path.write_bytes(bytes(data))
        sock = socket.create_connection(("127.0.0.1", n.web_port), timeout=10)
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: cut" + WEB_ROOT.encode() + b"\r\n\r\n")
        received = read_until_close(sock)
        head, _, got = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert len(got) < len(body) and got == body[:len(got)]
        log = n.log_path.read_text(errors="replace")
        assert "connection cut after" in log and "Traceback" not in log
        assert "-> 500" not in log  # an unreadable block is a 503, not an internal error
    finally:
        n.stop()
