"""GARAGE_LOG sets what the server logs: at info (the default) one access line per request,
at warn none; a test node's environment can choose it (testing/node.py)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pygarage.testing.node import GarageNode


@pytest.mark.parametrize("level", ["info", "warn"])
def test_access_lines_follow_garage_log(tmp_path: Path, level: str) -> None:
    node = GarageNode(tmp_path / "n")
    node.start(env={"GARAGE_LOG": level})
    try:
        for _ in range(3):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"{node.endpoint}/no-such-bucket/k%0aFORGED", timeout=10)
            assert e.value.code == 403
    finally:
        node.stop()
    lines = [ln for ln in node.log_path.read_text().splitlines() if "-> 403" in ln]
    if level == "warn":
        assert lines == []
    else:
        assert len(lines) == 3, lines
        assert all(" INFO " in ln and "/no-such-bucket/k\\x0aFORGED" in ln for ln in lines)
