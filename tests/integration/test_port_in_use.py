"""A listener that cannot bind (its port taken by another program), or a config value of the
wrong type, stops the server with one line saying which and why, exit code 1, no
traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pygarage.testing.node import GarageNode


@pytest.mark.parametrize("which", ["s3", "rpc"])
def test_port_in_use_is_one_clear_line(tmp_path: Path, which: str) -> None:
    node = GarageNode(tmp_path / "n")
    port = node.s3_port if which == "s3" else node.rpc_port
    with socket.socket() as taken:
        taken.bind((node.host, port))
        taken.listen()
        r = subprocess.run([sys.executable, "-m", "pygarage", "-c", str(node.config_path),
                            "server", "--single-node"], capture_output=True, text=True,
                           timeout=60)
    out = r.stdout + r.stderr + (node.log_path.read_text() if node.log_path.exists() else "")
    assert r.returncode == 1, out
    name = "S3 API" if which == "s3" else "RPC"
    assert f"cannot listen for the {name} on {node.host}:{port}" in r.stderr, out
    assert "in use" in r.stderr, out
    assert "Traceback" not in out


@pytest.mark.parametrize(("extra", "message"), [
    # A string read as a boolean was true whatever it said (bool("false")): scrub silently
    # disabled. A number read by int() died with a traceback.
    ('disable_scrub = "false"', "disable_scrub must be true or false, not 'false'"),
    ('rpc_timeout_msec = "9"', "rpc_timeout_msec must be an integer between 100 and"),
    ("compression_level = 1e400", "compression_level must be an integer between -99 and 22"),
    ('metadata_auto_snapshot_interval = "' + "9" * 5000 + 's"',
     "metadata_auto_snapshot_interval must be a duration"),
])
def test_a_config_value_of_the_wrong_type_is_one_clear_line(tmp_path: Path, extra: str,
                                                             message: str) -> None:
    node = GarageNode(tmp_path / "n", extra=extra)
    r = subprocess.run([sys.executable, "-m", "pygarage", "-c", str(node.config_path),
                        "server", "--single-node"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and f"Error: {message}" in r.stderr, (r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
