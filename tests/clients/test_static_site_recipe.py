"""The README's "host a static website" recipe, word for word: `garage` CLI, `aws s3 sync`,
then the site read back from the web endpoint; and `aws s3 website`."""

from __future__ import annotations

import http.client
import re
import secrets
from pathlib import Path

from client_helpers import client_env, make_tree, require_binary, run

from pygarage.testing.node import GarageNode


def _get(node: GarageNode, host: str, path: str) -> tuple[int, bytes, str]:
    c = http.client.HTTPConnection("127.0.0.1", node.web_port, timeout=10)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        return r.status, r.read(), r.getheader("Content-Type") or ""
    finally:
        c.close()


def test_static_site_recipe(node: GarageNode, tmp_path: Path) -> None:
    aws = require_binary("aws")
    name = "site-" + secrets.token_hex(4)
    node.cli("bucket", "create", name)
    out = node.cli("key", "create", name + "-key").stdout
    key_id = re.search(r"Key ID: (\S+)", out)
    secret = re.search(r"Secret key: (\S+)", out)
    assert key_id and secret, out
    node.cli("bucket", "allow", "--read", "--write", "--owner", name, "--key", name + "-key")
    node.cli("bucket", "website", "--allow", name)
    public = tmp_path / "public"
    make_tree(public, {"index.html": b"<h1>welcome</h1>", "blog/index.html": b"<h1>blog</h1>",
                       "style.css": b"body{}"})
    env = client_env({"AWS_ACCESS_KEY_ID": key_id.group(1),
                      "AWS_SECRET_ACCESS_KEY": secret.group(1),
                      "AWS_DEFAULT_REGION": "garage", "AWS_CONFIG_FILE": "/dev/null",
                      "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")})
    run([aws, "--endpoint-url", node.endpoint, "s3", "sync", str(public), f"s3://{name}"],
        env, node)
    host = f"{name}.web.garage.localhost:3902"
    assert _get(node, host, "/")[:2] == (200, b"<h1>welcome</h1>")
    status, body, ctype = _get(node, host, "/style.css")
    assert (status, body, ctype) == (200, b"body{}", "text/css")
    assert _get(node, host, "/blog")[0] == 302
    assert _get(node, host, "/blog/")[1] == b"<h1>blog</h1>"
    # The aws CLI's own command sets the same thing through PutBucketWebsite.
    (public / "404.html").write_bytes(b"not here")
    run([aws, "--endpoint-url", node.endpoint, "s3", "sync", str(public), f"s3://{name}"],
        env, node)
    run([aws, "--endpoint-url", node.endpoint, "s3", "website", f"s3://{name}",
         "--index-document", "index.html", "--error-document", "404.html"], env, node)
    assert _get(node, host, "/missing")[:2] == (404, b"not here")
