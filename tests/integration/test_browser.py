"""A real browser (headless Chromium, the Debian package, driven by playwright) against the
web and S3 endpoints: a static site with CSS and an image, and cross-origin fetches that
CORS rules allow or forbid. scripts/test installs chromium; these tests never skip."""

from __future__ import annotations

import os
import secrets
import shutil
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from pygarage.testing.node import GarageNode

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, built by hand (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Never skipped: a missing browser must not pass for a working website.
    exe = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed: run scripts/test (it installs it with "
                    "apt-get), or apt-get install chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=ARGS)
        yield b
        b.close()


def web_url(node: GarageNode, bucket: str, path: str = "/") -> str:
    # Chromium resolves every *.localhost name to the loopback address by itself.
    return f"http://{bucket}.web.garage.localhost:{node.web_port}{path}"


def publish(node: GarageNode, s3: Any, bucket: str, files: dict[str, tuple[bytes, str]]) -> None:
    for key, (body, ctype) in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=ctype)
    node.cli("bucket", "website", "--allow", bucket)


def test_static_site_renders(node: GarageNode, s3: Any, bucket: str, browser: Any) -> None:
    publish(node, s3, bucket, {
        "index.html": (b'<!doctype html><html><head><link rel="stylesheet" href="css/site.css">'
                       b'<title>garage site</title></head><body><h1 id="t">Hello</h1>'
                       b'<img id="logo" src="img/logo.png" alt="logo"></body></html>',
                       "text/html"),
        "css/site.css": (b"h1 { color: rgb(255, 0, 0); font-size: 40px; }", "text/css"),
        "img/logo.png": (png(16, 8, (0, 128, 255)), "image/png"),
        "about/index.html": (b"<!doctype html><p id='a'>about us</p>", "text/html"),
    })
    page = browser.new_page()
    try:
        resp = page.goto(web_url(node, bucket))
        assert resp is not None and resp.status == 200
        assert page.title() == "garage site"
        page.wait_for_function("document.getElementById('logo').complete")
        assert page.evaluate("document.getElementById('logo').naturalWidth") == 16
        assert page.evaluate("document.getElementById('logo').naturalHeight") == 8
        assert page.evaluate("getComputedStyle(document.getElementById('t')).color") == \
            "rgb(255, 0, 0)"
        assert page.evaluate("getComputedStyle(document.getElementById('t')).fontSize") == \
            "40px"
        # /about -> 302 /about/ -> about/index.html
        page.goto(web_url(node, bucket, "/about"))
        assert page.url == web_url(node, bucket, "/about/")
        assert page.inner_text("#a") == "about us"
    finally:
        page.close()


FETCH = """async ([url, method, body]) => {
  try {
    const init = {method, cache: 'no-store'};  // each fetch asks the server
    if (body !== null) { init.body = body; init.headers = {'Content-Type': 'text/plain'}; }
    const r = await fetch(url, init);
    return {ok: true, status: r.status, text: await r.text(), etag: r.headers.get('ETag')};
  } catch (e) {
    return {ok: false, error: String(e)};
  }
}"""


def test_cross_origin_fetch(node: GarageNode, s3: Any, bucket: str, browser: Any) -> None:
    """A page served by the web endpoint (one origin) fetches from the S3 endpoint (another
    origin) with presigned URLs: blocked without a CORS rule, allowed with one."""
    publish(node, s3, bucket, {"index.html": (b"<!doctype html><p>app</p>", "text/html")})
    s3.put_object(Bucket=bucket, Key="data.json", Body=b'{"answer": 42}')
    origin = f"http://{bucket}.web.garage.localhost:{node.web_port}"
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket,
                                                               "Key": "data.json"})
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket,
                                                               "Key": "upload.txt"})
    page = browser.new_page()
    try:
        page.goto(origin + "/")
        r = page.evaluate(FETCH, [get_url, "GET", None])
        assert r["ok"] is False, r  # no rule: the browser refuses the answer
        r = page.evaluate(FETCH, [put_url, "PUT", "from the browser"])
        assert r["ok"] is False, r  # preflight refused: nothing written
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="upload.txt")

        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{
            "AllowedOrigins": [origin], "AllowedMethods": ["GET", "PUT"],
            "AllowedHeaders": ["content-type"], "ExposeHeaders": ["ETag"]}]})
        r = page.evaluate(FETCH, [get_url, "GET", None])
        assert r["ok"] is True and r["status"] == 200 and r["text"] == '{"answer": 42}', r
        r = page.evaluate(FETCH, [put_url, "PUT", "from the browser"])
        assert r["ok"] is True and r["status"] == 200 and r["etag"], r
        assert s3.get_object(Bucket=bucket, Key="upload.txt")["Body"].read() == \
            b"from the browser"

        # A rule for another origin does not help.
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{
            "AllowedOrigins": ["https://elsewhere.example"], "AllowedMethods": ["GET"]}]})
        r = page.evaluate(FETCH, [get_url, "GET", None])
        assert r["ok"] is False, r
    finally:
        page.close()


def test_cross_origin_fetch_web_endpoint(node: GarageNode, s3: Any, creds: tuple[str, str],
                                         bucket: str, browser: Any) -> None:
    """A site fetching a file from another bucket's website (another origin)."""
    other = "b-" + secrets.token_hex(6)
    node.create_bucket(other, creds[0])
    publish(node, s3, bucket, {"index.html": (b"<!doctype html><p>app</p>", "text/html")})
    publish(node, s3, other, {"feed.txt": (b"news", "text/plain")})
    page = browser.new_page()
    try:
        page.goto(web_url(node, bucket))
        url = web_url(node, other, "/feed.txt")
        assert page.evaluate(FETCH, [url, "GET", None])["ok"] is False
        s3.put_bucket_cors(Bucket=other, CORSConfiguration={"CORSRules": [{
            "AllowedOrigins": [web_url(node, bucket, "")], "AllowedMethods": ["GET"]}]})
        r = page.evaluate(FETCH, [url, "GET", None])
        assert r["ok"] is True and r["text"] == "news", r
    finally:
        page.close()
