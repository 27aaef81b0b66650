"""A write to several nodes, acknowledged once every write set (one per live layout
version) has `quorum` successes: the one waiting loop of table, block and RPC writes.

`SetQuorum` is the accounting (pure); `wait_quorum` feeds it the outcomes of the calls
already started, one per node, and returns as soon as the quorum is reached or raises
QuorumError as soon as it cannot be. Calls still running are the caller's to keep (a copy
completes in the background) or to cancel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from ..net.peer import RpcError
from ..util.errors import QuorumError


class SetQuorum:
    def __init__(self, sets: Iterable[Iterable[str]], quorum: int):
        self.quorum = quorum
        self.sets: list[frozenset[str]] = list({frozenset(s) for s in sets})
        self.ok: set[str] = set()
        self.failed: set[str] = set()

    def impossible(self) -> bool:
        """A set smaller than the quorum can never be satisfied."""
        return any(len(s) < self.quorum for s in self.sets)

    def check_possible(self, what: str) -> None:
        for s in self.sets:
            if len(s) < self.quorum:
                raise QuorumError(f"{what}: quorum {self.quorum} of a {len(s)}-node set "
                                  "is impossible")

    def success(self, node: str) -> None:
        self.ok.add(node)

    def failure(self, node: str) -> None:
        self.failed.add(node)

    @property
    def done(self) -> bool:
        return all(len(s & self.ok) >= self.quorum for s in self.sets)

    @property
    def lost(self) -> bool:
        return any(len(s - self.failed) < self.quorum for s in self.sets)


async def wait_quorum(calls: Mapping[str, asyncio.Future[Any]], q: SetQuorum, what: str,
                      fatal: tuple[type[BaseException], ...] = ()) -> None:
    """Until `q` is done with these calls (node -> its call). An exception of a `fatal`
    type (a write check's refusal: the writer's error, not a node failure) is raised as
    it is; any other counts as that node's failure."""
    node_of = {t: n for n, t in calls.items()}
    pending = set(node_of)
    errors: list[str] = []
    try:
        while not q.done:
            if q.lost or not pending:
                raise QuorumError(f"{what}: write quorum {q.quorum} not reached in every "
                                  "write set; errors: " + "; ".join(errors))
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                node = node_of[t]
                exc = t.exception()
                if exc is None:
                    q.success(node)
                elif fatal and isinstance(exc, fatal):
                    raise exc
                else:
                    q.failure(node)
                    errors.append(f"{node[:16]}: {describe(exc)}")
    finally:
        for t in node_of:  # ended meanwhile, unlooked at: never "exception never retrieved"
            if t.done() and not t.cancelled():
                t.exception()


def describe(exc: BaseException) -> str:
    """An error for a log line or a QuorumError's reasons (an RpcError says it all)."""
    return str(exc) if isinstance(exc, RpcError) else f"{type(exc).__name__}: {exc}"
