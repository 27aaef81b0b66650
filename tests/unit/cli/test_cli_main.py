"""`garage` global options, help, errors, server, node, stats and json-api, with a fake client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from pygarage.cli import state as cli_state
from pygarage.cli.main import garage
from pygarage.cli.state import CliState
from pygarage.cli.testing import FakeAdminClient as FakeClient
from pygarage.cli.testing import invoke

N1 = "563e1ac825ee3323aa441e72c26d1030d6d4414aeb3dd25287c531e7fc2bc95d"
N2 = "86f0f26ae4afbd59" + "0" * 47 + "a"


def run(args: list[str], responses: dict[str, Any] | None = None) -> tuple[Result, FakeClient]:
    return invoke(args, responses)


# ---- global behaviour -------------------------------------------------------------------


def test_help_needs_no_client() -> None:
    def boom(_s: CliState) -> Any:
        raise AssertionError("client created for --help")

    for args in (["--help"], ["help"], ["bucket", "--help"], ["help", "layout", "assign"]):
        res = CliRunner().invoke(garage, args, obj=CliState(client_factory=boom))
        assert res.exit_code == 0, res.output
        assert "Usage: garage" in res.output
    res = CliRunner().invoke(garage, ["help", "layout", "assign"])
    assert "--capacity" in res.output


def test_global_options_reach_the_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[CliState] = []
    fake = FakeClient({"ListBuckets": []})

    def factory(s: CliState) -> FakeClient:
        seen.append(s)
        return fake

    args = ["-c", "/tmp/g.toml", "-h", "abcd@1.2.3.4:3901", "-s", "sec", "bucket", "list"]
    res = CliRunner().invoke(garage, args, obj=CliState(client_factory=factory))
    assert res.exit_code == 0, res.output
    assert (seen[0].config_path, seen[0].rpc_host, seen[0].rpc_secret) == (
        "/tmp/g.toml",
        "abcd@1.2.3.4:3901",
        "sec",
    )
    env = {"GARAGE_CONFIG_FILE": "/x.toml", "GARAGE_RPC_HOST": "h", "GARAGE_RPC_SECRET": "s"}
    res = CliRunner(env=env).invoke(
        garage, ["bucket", "list"], obj=CliState(client_factory=factory)
    )
    assert (seen[1].config_path, seen[1].rpc_host, seen[1].rpc_secret) == ("/x.toml", "h", "s")
    res = CliRunner().invoke(garage, ["bucket", "list"], obj=CliState(client_factory=factory))
    assert seen[2].config_path == "/etc/garage.toml" and seen[2].rpc_host is None


def test_admin_errors_are_printed_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeAdminError(Exception):
        pass

    monkeypatch.setattr(cli_state, "admin_error_types", lambda: (FakeAdminError,))
    monkeypatch.setattr("pygarage.cli.main.admin_error_types", lambda: (FakeAdminError,))
    res, _ = run(
        ["bucket", "info", "foo"], {"GetBucketInfo": FakeAdminError("Bucket not found: foo")}
    )
    assert res.exit_code == 1
    assert res.stderr == "Error: Bucket not found: foo\n"
    assert "Traceback" not in res.output


def test_real_admin_error_type_if_client_exists() -> None:
    client_mod = pytest.importorskip("pygarage.cli.client")
    res, _ = run(["key", "info", "x"], {"GetKeyInfo": client_mod.AdminCallError("Key not found")})
    assert res.exit_code == 1
    assert "Error: Key not found" in res.stderr


def test_client_is_closed() -> None:
    res, fake = run(["key", "list"], {"ListKeys": []})
    assert res.exit_code == 0 and fake.closed


def test_server_calls_run_server_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    got: list[tuple[str, bool, str | None]] = []
    mod = types.ModuleType("pygarage.server")

    def run_server(config_path: str, *, single_node: bool, default_bucket: str | None) -> None:
        got.append((config_path, single_node, default_bucket))

    mod.run_server = run_server  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pygarage.server", mod)

    def boom(_s: CliState) -> Any:
        raise AssertionError("server must not create an admin client")

    args = ["-c", "/tmp/c.toml", "server", "--single-node", "--default-bucket", "b1"]
    res = CliRunner().invoke(garage, args, obj=CliState(client_factory=boom))
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(garage, ["server"], obj=CliState(client_factory=boom))
    assert got == [("/tmp/c.toml", True, "b1"), ("/etc/garage.toml", False, None)]


# ---- node ---------------------------------------------------------------------------


def test_node_id_prints_full_id_and_help_on_stderr() -> None:
    info: dict[str, Any] = {
        "success": {N1: {"nodeId": N1, "rpcPublicAddr": "[fc00:1::1]:3901"}},
        "error": {},
    }
    res, fake = run(["node", "id"], {"GetNodeInfo": info})
    assert res.exit_code == 0
    assert res.stdout == f"{N1}@[fc00:1::1]:3901\n"
    assert f"garage [-c <config file path>] node connect {N1}@[fc00:1::1]:3901" in res.stderr
    assert "bootstrap_peers" in res.stderr
    assert fake.last("GetNodeInfo") == ({"node": "self"}, None)
    res, _ = run(["node", "id", "-q"], {"GetNodeInfo": info})
    assert res.stdout == f"{N1}@[fc00:1::1]:3901\n" and res.stderr == ""
    info["success"][N1]["rpcPublicAddr"] = None
    res, _ = run(["node", "id", "--quiet"], {"GetNodeInfo": info})
    assert res.stdout == f"{N1}\n"


def test_node_connect() -> None:
    target = f"{N2}@10.0.0.2:3901"
    ok = {"ConnectClusterNodes": [{"success": True, "error": None}]}
    res, fake = run(["node", "connect", target], ok)
    assert fake.last("ConnectClusterNodes") == (None, [target])
    assert res.exit_code == 0 and res.stdout == "Success.\n"
    failed = {"ConnectClusterNodes": [
        {"success": False, "error": "cannot reach 10.0.0.2:3901: [Errno 111] "
                    "Connect call failed ('10.0.0.2', 3901)"}]}
    res, _ = run(["node", "connect", target], failed)
    assert res.exit_code == 1
    assert f"Could not connect to {target}: cannot reach 10.0.0.2:3901" in res.stderr
    res, fake = run(["node", "connect", "no-at-sign"])
    assert res.exit_code == 1 and fake.calls == []


# ---- stats and json-api -----------------------------------------------------------------


def test_stats() -> None:
    responses = {
        "GetNodeStatistics": {"success": {N1: {"freeform": "NODE TEXT\n"}}, "error": {}},
        "GetClusterStatistics": {"freeform": "CLUSTER TEXT"},
    }
    res, fake = run(["stats"], responses)
    assert res.exit_code == 0
    assert res.output.index("NODE TEXT") < res.output.index("CLUSTER TEXT")
    assert fake.last("GetNodeStatistics") == ({"node": "self"}, None)
    res, fake = run(["stats", "-a"], responses)
    assert fake.last("GetNodeStatistics") == ({"node": "*"}, None)
    assert f"Stats for node {N1}" in res.output


def test_multi_node_errors() -> None:
    partial = {"success": {N1: {"freeform": "ok"}}, "error": {N2: "unreachable"}}
    res, _ = run(["stats", "-a"], {"GetNodeStatistics": partial, "GetClusterStatistics": {}})
    assert res.exit_code == 0 and "86f0f26ae4afbd59: unreachable" in res.stderr
    failed = {"success": {}, "error": {N1: "boom"}}
    res, _ = run(["stats"], {"GetNodeStatistics": failed})
    assert res.exit_code == 1 and "boom" in res.stderr


def test_json_api() -> None:
    answer: Callable[[Any, Any], Any] = lambda q, b: {"query": q, "body": b}  # noqa: E731
    res, fake = run(["json-api", "GetBucketInfo", '{"search": "b"}'], {"GetBucketInfo": answer})
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == {"query": {"search": "b"}, "body": None}
    res, fake = run(["json-api", "GetClusterHealth"], {"GetClusterHealth": {"status": "healthy"}})
    assert json.loads(res.output) == {"status": "healthy"}
    assert fake.last("GetClusterHealth") == (None, None)
    res, fake = invoke(["json-api", "CreateBucket", "-"], input='{"globalAlias": "x"}')
    assert fake.last("CreateBucket") == (None, {"globalAlias": "x"})
    res, _ = run(["json-api", "CreateBucket", "{nope"])
    assert res.exit_code == 1 and "Invalid JSON" in res.stderr


def test_click_exception_shape() -> None:
    # The error contract relies on ClickException printing "Error: ..." and exiting 1.
    assert click.ClickException("x").exit_code == 1
