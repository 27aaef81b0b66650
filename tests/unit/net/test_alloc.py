"""Freed ~1 MiB buffers are reused by the process instead of being faulted in again for
every block moved (glibc only)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_CODE = """
import resource, sys
if sys.argv[1] == "tuned":
    from pygarage.net.alloc import keep_freed_memory
    assert keep_freed_memory()
src = bytes(1 << 20)
view = memoryview(src)
for _ in range(20):  # warm up
    parts = [bytes(view[i:i + (64 << 10)]) for i in range(0, len(src), 64 << 10)]
    rec = bytearray().join(parts); del parts, rec
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    parts = [bytes(view[i:i + (64 << 10)]) for i in range(0, len(src), 64 << 10)]
    rec = bytearray().join(parts); del parts, rec
    big = bytes(view[: 512 << 10]) + b"x"; del big
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100)
"""


def _faults_per_mib(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", _CODE, mode], capture_output=True,
                         text=True, check=True, timeout=60)
    return float(out.stdout)


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError, AttributeError):
        return False


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_bulk_buffers_do_not_fault_in_again() -> None:
    tuned = _faults_per_mib("tuned")
    assert tuned < 16, tuned  # vs ~256+ pages per MiB faulted in again untuned
    assert _faults_per_mib("default") > 4 * max(tuned, 1)  # the test can tell the two apart
