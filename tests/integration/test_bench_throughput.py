"""bench/throughput.py's own parts that decide what a figure means: the bare HTTP client of
"large GET, bare client" (it must read every byte and notice any wrong one, against a real
server) and the CPU summary (arithmetic, and results of older runs)."""

from __future__ import annotations

import asyncio
import mmap
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pygarage.testing.node import GarageNode

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import throughput  # noqa: E402


def _mapped(path: Path, data: bytes) -> memoryview:
    path.write_bytes(data)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    return memoryview(mm)


def test_bare_client_reads_every_byte_and_notices_a_wrong_one(
        node: GarageNode, creds: tuple[str, str], bucket: str, s3: Any, tmp_path: Path) -> None:
    size = 3 * 1024 * 1024 + 123  # several blocks and a partial one
    data = os.urandom(size)
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    signer = throughput.Signer(node.endpoint, *creds, "garage")
    same = _mapped(tmp_path / "same", data)
    url, headers = signer.sign("GET", f"/{bucket}/big")
    assert throughput.raw_get(url, headers, same, size) == (size, True)

    # One byte different, in the last block: the compare sees it.
    other = bytearray(data)
    other[size - 10] ^= 0xFF
    url, headers = signer.sign("GET", f"/{bucket}/big")
    assert throughput.raw_get(url, headers, _mapped(tmp_path / "other", bytes(other)),
                              size) == (size, False)

    url, headers = signer.sign("GET", f"/{bucket}/missing")
    with pytest.raises(RuntimeError, match="404"):
        throughput.raw_get(url, headers, same, size)


def _phase(seconds: float, client: float, server: float | None) -> dict[str, Any]:
    d: dict[str, Any] = {"seconds": seconds, "client_cpu_s": client}
    if server is not None:
        d["server_cpu_s"] = server
    return d


def test_cpu_summary_per_unit_of_work_and_cores_busy() -> None:
    def large(get_raw: bool) -> dict[str, Any]:
        d = {"put": _phase(2.0, 0.2, 1.0), "get": _phase(0.5, 0.25, 0.5)}
        if get_raw:
            d["get_raw"] = _phase(0.25, 0.1, 0.4)
        return d

    small = {"count": 1000, "put": _phase(1.0, 0.3, 1.5), "get": _phase(0.5, 0.2, 0.3)}
    res = {"options": {"large_mib": 100},
           "rounds": [{"large": {"pygarage": large(True), "peer": large(False)},
                       "small": {"pygarage": small, "peer": small}},
                      {"large": {"pygarage": large(True), "peer": large(False)},
                       "small": {"pygarage": {**small, "get": _phase(0.25, 0.2, 0.2)},
                                 "peer": small}}]}
    rows = {r["figure"]: r for r in throughput.cpu_summary(res)}
    put = rows["large PUT MiB/s"]
    assert put["unit"] == "ms/MiB"
    assert put["servers"]["pygarage"] == {"cpu_ms_min": 10.0, "cpu_ms_max": 10.0,
                                          "cores_min": 0.6, "cores_max": 0.6}
    # A server whose results have no bare-client GET (older runs) is left out of that row.
    assert set(rows["large GET, bare client"]["servers"]) == {"pygarage"}
    assert rows["large GET, bare client"]["servers"]["pygarage"]["cores_min"] == 2.0
    get = rows["small GET ops/s"]["servers"]["pygarage"]
    assert rows["small GET ops/s"]["unit"] == "ms/request"
    assert (get["cpu_ms_min"], get["cpu_ms_max"]) == (0.2, 0.3)
    assert (get["cores_min"], get["cores_max"]) == (1.0, 1.6)


def test_small_ops_take_turns_in_bursts_and_sum_them(
        node: GarageNode, creds: tuple[str, str], bucket: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throughput, "BUCKET", bucket)
    signer = throughput.Signer(node.endpoint, *creds, "garage")
    assert node.proc is not None
    # The same server under two names (the second without a pid: no CPU figure for it);
    # each reads back and checks what it wrote.
    targets = [throughput.Target("a", signer, node.proc.pid),
               throughput.Target("b", signer, None)]
    payloads = [os.urandom(100) for _ in range(25)]
    out = asyncio.run(throughput.small_ops(targets, payloads, 4, "bursts", 3, 0))
    for name in ("a", "b"):
        res = out[name]
        assert (res["count"], res["bursts"], res["concurrency"]) == (25, 3, 4)
        for op in ("put", "get"):
            assert res[op]["ops_per_s"] == pytest.approx(25 / res[op]["seconds"], rel=0.01)
    assert out["a"]["put"]["server_cpu_s"] > 0
    assert "server_cpu_s" not in out["b"]["put"]


def test_phase_total_sums_times_and_cpu() -> None:
    def phase(wall: float, client: float, server: float | None) -> throughput.Phase:
        p = throughput.Phase(None)
        p.wall, p.client_cpu, p.other_cpu = wall, client, 0.5
        p.server_cpu = p.server_sys = server
        return p
    t = throughput.Phase.total([phase(1.0, 0.25, 2.0), phase(0.5, 0.25, 1.0)])
    assert (t.wall, t.client_cpu, t.other_cpu, t.server_cpu) == (1.5, 0.5, 1.0, 3.0)
    assert throughput.Phase.total([phase(1.0, 0.1, 2.0), phase(1.0, 0.1, None)]
                                  ).server_cpu is None
