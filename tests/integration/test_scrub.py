"""The scrub against a real server: it finds a block corrupted on disk, moves it aside and
reports it; it obeys start/pause/resume/cancel; it starts by itself when its next run is
due; its state survives a restart."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from pygarage.testing.node import GarageNode


def block_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "data").rglob("*")
                  if p.is_file() and re.fullmatch(r"[0-9a-f]{64}(\.zst)?", p.name))


def var(node: GarageNode, name: str) -> str:
    out: str = node.cli("worker", "get", name).stdout.split()[-1]
    return out


def wait_for(cond, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def scrub_info(node: GarageNode) -> str:
    lines = node.cli("worker", "list").stdout.splitlines()
    tid = next(ln for ln in lines if "Block scrub worker" in ln).split()[0]
    return node.cli("worker", "info", tid).stdout


@pytest.fixture
def filled(private_node: GarageNode) -> tuple[GarageNode, dict[str, bytes]]:
    node = private_node
    node.start()
    key, secret = node.create_key()
    node.create_bucket("scrubbed", key)
    s3 = node.s3(key, secret)
    objs = {f"k{i}": os.urandom(100_000) for i in range(6)}  # random: stored uncompressed
    for k, v in objs.items():
        s3.put_object(Bucket="scrubbed", Key=k, Body=v)
    return node, objs


def test_scrub_finds_and_reports_a_corrupted_block(
        filled: tuple[GarageNode, dict[str, bytes]]) -> None:
    node, objs = filled
    files = block_files(node.root)
    assert len(files) == 6
    victim = files[2]
    raw = bytearray(victim.read_bytes())
    raw[5000] ^= 0x01  # one bit flipped
    victim.write_bytes(bytes(raw))
    assert var(node, "scrub-last-completed") == "never"
    node.cli("worker", "set", "scrub-tranquility", "0")
    r = node.cli("repair", "--yes", "scrub", "start")
    assert "Repair operation launched" in r.stdout
    wait_for(lambda: var(node, "scrub-last-completed") != "never")
    assert var(node, "scrub-corruptions_detected") == "1"
    assert not victim.exists() and victim.with_name(victim.name + ".corrupted").exists()
    assert len(block_files(node.root)) == 5  # the sound blocks are left alone
    info = scrub_info(node)
    assert victim.name.split(".")[0] in info and "Persistent errors: 1" in info
    log = node.log_path.read_text()
    assert "scrub" in log and victim.name.split(".")[0] in log and "Traceback" not in log
    # The corruption count survives a restart; a second scrub finds nothing new.
    node.restart()
    assert var(node, "scrub-corruptions_detected") == "1"
    last = var(node, "scrub-last-completed")
    node.cli("repair", "--yes", "scrub", "start")
    wait_for(lambda: var(node, "scrub-last-completed") != last)
    assert var(node, "scrub-corruptions_detected") == "1"


def test_scrub_pause_resume_cancel_and_restart(
        filled: tuple[GarageNode, dict[str, bytes]]) -> None:
    node, _ = filled
    # Very tranquil: about one block per (1000 x the time to check one): it stays under way.
    node.cli("worker", "set", "scrub-tranquility", "1000")
    node.cli("repair", "--yes", "scrub", "start")
    r = node.cli("repair", "--yes", "scrub", "start", check=False)
    assert r.returncode == 1 and "already under way" in r.stderr
    r = node.cli("repair", "--yes", "scrub", "resume", check=False)
    assert r.returncode == 1 and "not paused" in r.stderr
    node.cli("repair", "--yes", "scrub", "pause")
    assert "Scrub paused, resumes at" in scrub_info(node)
    # Paused state and position are kept across a restart.
    node.restart()
    assert "Scrub paused, resumes at" in scrub_info(node)
    node.cli("repair", "--yes", "scrub", "resume")
    info = scrub_info(node)
    assert "paused" not in info and "Progress: " in info and "Progress: -" not in info
    node.cli("repair", "--yes", "scrub", "cancel")
    assert "Next scrub scheduled for" in scrub_info(node)
    assert var(node, "scrub-last-completed") == "never"  # cancelled is not completed
    r = node.cli("repair", "--yes", "scrub", "cancel", check=False)
    assert r.returncode == 1 and "no scrub is under way" in r.stderr


def test_scrub_runs_by_itself_when_due(filled: tuple[GarageNode, dict[str, bytes]]) -> None:
    node, _ = filled
    nxt = var(node, "scrub-next-run")
    # About a month ahead, as in Garage (25 days + up to 10).
    days = (time.mktime(time.strptime(nxt[:19], "%Y-%m-%dT%H:%M:%S")) - time.time()) / 86400
    assert 24 < days < 36, nxt
    node.cli("worker", "set", "scrub-tranquility", "0")
    r = node.cli("worker", "set", "scrub-next-run", "tomorrow", check=False)
    assert r.returncode == 1 and "invalid value" in r.stderr
    node.cli("worker", "set", "scrub-next-run", "2001-01-01T00:00:00Z")
    wait_for(lambda: var(node, "scrub-last-completed") != "never")
    # Rescheduled about a month after this run.
    assert var(node, "scrub-next-run") > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


def test_disable_scrub(tmp_path: Path) -> None:
    node = GarageNode(tmp_path / "noscrub", extra="disable_scrub = true")
    node.start()
    try:
        assert "scrub" not in node.cli("worker", "get").stdout
        assert "Block scrub worker" not in node.cli("worker", "list").stdout
        r = node.cli("repair", "--yes", "scrub", "start", check=False)
        assert r.returncode == 1 and "disable_scrub" in r.stderr
    finally:
        node.stop()
