"""A listener that cannot bind (its port taken by another program) stops the server with
one line saying which and why, exit code 1, no traceback."""

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
