"""CLI commands run against the real daemon that must fail plainly: `node connect` to a peer
that cannot be reached or is not the one named; arguments that are not UTF-8."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pygarage.testing.node import GarageNode


@pytest.mark.parametrize(
    ("target", "message"),
    [
        # Nothing listens on port 1 of loopback.
        ("86f0f26ae4afbd59" + "0" * 48 + "@127.0.0.1:1", "cannot reach 127.0.0.1:1"),
        ("86f0f26ae4afbd59" + "0" * 48 + "@127.0.0.1:99999", "bad host or port"),
        ("abcd@127.0.0.1:3901", "64 hex digits"),
    ],
)
def test_node_connect_to_bad_peer_fails_clearly(node: GarageNode, target: str,
                                                message: str) -> None:
    r = node.cli("node", "connect", target, check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert f"Could not connect to {target}" in r.stderr and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "Success" not in r.stdout


def test_node_connect_to_wrong_identity_fails(
        node: GarageNode, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The node answering at the address is not the one named: refused, not connected."""
    other = GarageNode(tmp_path_factory.mktemp("other"), rpc_secret=node_secret(node))
    other.start()
    try:
        r = node.cli("node", "connect", "86f0f26ae4afbd59" + "0" * 48 +
                     f"@127.0.0.1:{other.rpc_port}", check=False)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "Could not connect to" in r.stderr and "Traceback" not in r.stderr
    finally:
        other.stop()


def node_secret(node: GarageNode) -> str:
    for line in node.config_path.read_text().splitlines():
        if line.startswith("rpc_secret"):
            return line.split('"')[1]
    raise AssertionError("no rpc_secret")


@pytest.mark.parametrize("args", [
    [b"key", b"create", b"\xff\xfe"],
    [b"bucket", b"create", b"b\xffx"],
    [b"key", b"rename", b"{key}", b"caf\xe9"],  # Latin-1, not UTF-8
])
def test_arguments_that_are_not_utf8_are_refused_plainly(node: GarageNode,
                                                          args: list[bytes]) -> None:
    """Python keeps such bytes as lone surrogates, which nothing can store: the CLI used to
    die in msgpack with a traceback. Refused before anything is sent, as Garage does."""
    key_id = node.create_key("utf8-test")[0].encode()
    args = [key_id if a == b"{key}" else a for a in args]
    keys = node.admin("ListKeys")
    r = subprocess.run([sys.executable, "-m", "pygarage", "-c", str(node.config_path).encode(),
                        *args], capture_output=True, timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.strip() == b"Error: an argument is not valid UTF-8 text", r.stderr
    assert node.admin("ListKeys") == keys


@pytest.mark.parametrize(("args", "message"), [
    # msgpack carries integers up to 2^64-1: a larger one died in the CLI with a traceback.
    (["bucket", "set-quotas", "{bucket}", "--max-size", str(2**64)], "out of range"),
    (["layout", "apply", "--version", str(2**64)], "out of range"),
    (["worker", "info", str(2**64)], "out of range"),
    (["json-api", "GetWorkerInfo", '{"id": 18446744073709551616}'], "out of range"),
    # json-api reads its payload as the daemon reads bodies.
    (["json-api", "GetBucketInfo", '{"search": ' + "9" * 5000 + "}"], "Invalid JSON payload"),
    (["json-api", "CreateKey", '{"name": NaN}'], "Invalid JSON payload"),
    (["json-api", "CreateKey", '{"name": "\\ud800"}'], "Invalid JSON payload"),
])
def test_values_the_daemon_cannot_take_are_refused_plainly(node: GarageNode, args: list[str],
                                                           message: str) -> None:
    bucket = f"quota-{len(args)}-{abs(hash(tuple(args))) % 10**6}"
    node.create_bucket(bucket, node.create_key("q")[0])
    keys = node.admin("ListKeys")
    r = node.cli(*[bucket if a == "{bucket}" else a for a in args], check=False)
    assert r.returncode == 1 and message in r.stderr, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert node.admin("ListKeys") == keys
