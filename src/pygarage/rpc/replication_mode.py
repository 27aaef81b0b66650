"""Replication factor, consistency mode and the quorums they imply (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReplicationMode:
    factor: int
    consistency: str = "consistent"  # consistent | degraded | dangerous

    @property
    def read_quorum(self) -> int:
        if self.consistency in ("degraded", "dangerous"):
            return 1
        return (self.factor + 1) // 2

    @property
    def write_quorum(self) -> int:
        if self.consistency == "dangerous":
            return 1
        return self.factor + 1 - (self.factor + 1) // 2
