"""Helpers for driving real S3 client programs against the session's garage node
(imported by the test modules of this directory; pytest puts it on sys.path)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pygarage.testing.node import GarageNode


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/test installs it)")
    return path


def client_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a client: no CA bundle / profile leaking in from the machine."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                        "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN",
                        "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    env.update(extra or {})
    return env


def run(cmd: Sequence[str], env: Mapping[str, str], node: GarageNode, *,
        check: bool = True, timeout: float = 120, cwd: Path | None = None,
        ) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(cmd), env=dict(env), capture_output=True, text=True,
                       timeout=timeout, cwd=cwd)
    if check and r.returncode != 0:
        log = node.log_path.read_text(errors="replace")[-4000:]
        raise AssertionError(
            f"{' '.join(cmd)} exited {r.returncode}\n--- stdout\n{r.stdout[-4000:]}\n"
            f"--- stderr\n{r.stderr[-4000:]}\n--- server.log (tail)\n{log}")
    return r


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> md5 of every regular file under root."""
    return {p.relative_to(root).as_posix(): md5(p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def make_tree(root: Path, files: Mapping[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
