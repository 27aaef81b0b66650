"""A fake admin client for testing the `garage` CLI without a daemon.

    fake = FakeAdminClient({"ListBuckets": [], "GetBucketInfo": lambda query, body: {...}})
    result, fake = invoke(["bucket", "list"], fake)
    assert fake.calls == [("ListBuckets", None, None)]

Answers are values (deep-copied), callables `(query, body) -> value`, or exceptions
(raised). Endpoints without an answer return `{}`. Endpoints the real daemon does not
implement yet answer its error, whatever the test asks: a CLI test must never pass against
a success the daemon would not give.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from click.testing import CliRunner, Result

from pygarage.api.admin.node_ops import not_yet
from pygarage.api.admin.router import NOT_YET
from pygarage.cli.client import AdminCallError
from pygarage.cli.state import CliState

__all__ = ["FakeAdminClient", "invoke"]


class FakeAdminClient:
    def __init__(self, responses: Mapping[str, Any] | None = None) -> None:
        self.responses: dict[str, Any] = dict(responses or {})
        faked = sorted(set(self.responses) & set(NOT_YET))
        if faked:
            raise AssertionError(f"the daemon answers NotImplemented for {faked}: "
                                 "test the CLI against that error, not a made-up success")
        self.calls: list[tuple[str, dict[str, str] | None, Any]] = []
        self.closed = False

    def call(
        self, endpoint: str, *, query: dict[str, str] | None = None, body: object = None
    ) -> Any:
        self.calls.append((endpoint, query, copy.deepcopy(body)))
        if endpoint in NOT_YET:
            # What the RPC client raises for the daemon's 501 (its message, verbatim).
            raise AdminCallError(not_yet(NOT_YET[endpoint]).message)
        answer = self.responses.get(endpoint, {})
        if callable(answer):
            answer = answer(query, body)
        if isinstance(answer, BaseException):
            raise answer
        return copy.deepcopy(answer)

    def close(self) -> None:
        self.closed = True

    def endpoints(self) -> list[str]:
        return [c[0] for c in self.calls]

    def last(self, endpoint: str) -> tuple[dict[str, str] | None, Any]:
        """(query, body) of the latest call to `endpoint`."""
        for name, query, body in reversed(self.calls):
            if name == endpoint:
                return query, body
        raise AssertionError(f"{endpoint} was not called; calls: {self.endpoints()}")


def invoke(
    args: Sequence[str],
    client: FakeAdminClient | Mapping[str, Any] | None = None,
    *,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Result, FakeAdminClient]:
    """Run `garage ARGS` in-process against a fake client; return (result, client)."""
    from pygarage.cli.main import garage

    fake = client if isinstance(client, FakeAdminClient) else FakeAdminClient(client)
    state = CliState(client_factory=lambda _state: fake)
    runner = CliRunner(env=dict(env) if env else None)
    return runner.invoke(garage, list(args), obj=state, input=input), fake
