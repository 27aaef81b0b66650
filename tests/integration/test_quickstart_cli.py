"""Garage's quick start, word for word where it applies, with our `garage` command
talking to a real daemon over the RPC port."""

from __future__ import annotations

import re

import pytest

from pygarage.testing.node import GarageNode


@pytest.fixture
def fresh(private_node: GarageNode) -> GarageNode:
    private_node.start(single_node=False)
    return private_node


def test_quickstart_flow(fresh: GarageNode) -> None:
    g = fresh.cli
    out = g("status").stdout
    assert "NO ROLE ASSIGNED" in out
    node_id = g("node", "id", "-q").stdout.strip().split("@")[0]
    assert re.fullmatch(r"[0-9a-f]{64}", node_id)

    # Before a layout exists, S3 requests cannot be served.
    g("layout", "assign", "-z", "dc1", "-c", "1G", node_id[:4])
    show = g("layout", "show").stdout
    assert "dc1" in show and "garage layout apply --version 1" in show
    bad = g("layout", "apply", "--version", "5", check=False)
    assert bad.returncode != 0 and "version" in (bad.stderr + bad.stdout)
    g("layout", "apply", "--version", "1")
    assert "dc1" in g("status").stdout

    g("bucket", "create", "nextcloud-bucket")
    assert "nextcloud-bucket" in g("bucket", "list").stdout
    assert "nextcloud-bucket" in g("bucket", "info", "nextcloud-bucket").stdout
    out = g("key", "new", "--name", "nextcloud-app-key").stdout
    key_id = re.search(r"Key ID: (GK[0-9a-f]{24})", out).group(1)  # type: ignore[union-attr]
    secret = re.search(r"Secret key: ([0-9a-f]{64})", out).group(1)  # type: ignore[union-attr]
    assert "nextcloud-app-key" in g("key", "list").stdout
    g("bucket", "allow", "--read", "--write", "nextcloud-bucket", "--key", "nextcloud-app-key")
    info = g("bucket", "info", "nextcloud-bucket").stdout
    assert key_id in info and "RW" in info
    assert "(redacted)" in g("key", "info", "nextcloud-app-key").stdout
    assert secret in g("key", "info", "--show-secret", "nextcloud-app-key").stdout

    s3 = fresh.s3(key_id, secret)
    s3.put_object(Bucket="nextcloud-bucket", Key="image.png", Body=b"\x89PNG...")
    assert s3.get_object(Bucket="nextcloud-bucket", Key="image.png")["Body"].read() == \
        b"\x89PNG..."

    # Aliases, deny, rename, import, delete.
    g("bucket", "alias", "nextcloud-bucket", "nc-alias")
    assert "nc-alias" in g("bucket", "info", "nextcloud-bucket").stdout
    g("bucket", "unalias", "nc-alias")
    g("bucket", "deny", "--write", "nextcloud-bucket", "--key", "nextcloud-app-key")
    with pytest.raises(Exception, match="AccessDenied"):
        s3.put_object(Bucket="nextcloud-bucket", Key="x", Body=b"x")
    g("key", "rename", "nextcloud-app-key", "renamed-key")
    assert "renamed-key" in g("key", "list").stdout
    imp_id, imp_secret = "GK" + "ab" * 12, "cd" * 32
    g("key", "import", "--yes", imp_id, imp_secret, "-n", "imported")
    assert imp_id in g("key", "list").stdout
    g("key", "allow", "--create-bucket", "imported")
    assert "Can create buckets: true" in g("key", "info", "imported").stdout
    g("key", "delete", "--yes", "imported")
    assert imp_id not in g("key", "list").stdout

    notempty = g("bucket", "delete", "--yes", "nextcloud-bucket", check=False)
    assert notempty.returncode != 0 and "empty" in (notempty.stderr + notempty.stdout).lower()
    g("bucket", "allow", "--write", "nextcloud-bucket", "--key", "renamed-key")
    s3.delete_object(Bucket="nextcloud-bucket", Key="image.png")
    g("bucket", "delete", "--yes", "nextcloud-bucket")
    assert "nextcloud-bucket" not in g("bucket", "list").stdout


def test_cli_errors_are_readable(fresh: GarageNode) -> None:
    r = fresh.cli("bucket", "info", "does-not-exist", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.startswith("Error:")
    r = fresh.cli("--rpc-secret", "00" * 32, "status", check=False)
    assert r.returncode == 1 and "rpc_secret" in r.stderr and "Traceback" not in r.stderr


def test_s3_before_layout_is_503(fresh: GarageNode) -> None:
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(fresh.endpoint + "/x", timeout=10)
    # Anonymous and no layout: refused cleanly either way, never a 500.
    assert e.value.code in (403, 503)


def test_help_everywhere(fresh: GarageNode) -> None:
    for args in (["--help"], ["bucket", "--help"], ["bucket", "allow", "--help"],
                 ["key", "--help"], ["layout", "assign", "--help"], ["help"]):
        r = fresh.cli(*args)
        assert "Usage" in r.stdout
