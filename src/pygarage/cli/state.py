"""Shared CLI state: global options and the lazily created admin client.

Commands never build a client themselves: they call `client(ctx)`, which asks the
`CliState` factory once per invocation. Tests put a `CliState` with a fake factory
in `ctx.obj`; in production the factory is `connect()` from `pygarage.cli.client`,
imported lazily so `--help` and `server` never touch the RPC stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import click

from pygarage.cli.fmt import short_id

__all__ = [
    "AdminClient",
    "CliState",
    "admin_error_types",
    "call_multi",
    "client",
    "node_param",
]


class AdminClient(Protocol):
    """What the CLI needs from `pygarage.cli.client.AdminClient`."""

    def call(
        self, endpoint: str, *, query: dict[str, str] | None = None, body: object = None
    ) -> Any: ...


ClientFactory = Callable[["CliState"], AdminClient]


def _connect(state: CliState) -> AdminClient:
    try:
        from pygarage.cli.client import connect
    except ModuleNotFoundError as e:
        if e.name != "pygarage.cli.client":
            raise
        raise click.ClickException(
            "The admin client (pygarage.cli.client) is not installed"
        ) from None
    conn: AdminClient = connect(state.config_path, state.rpc_host, state.rpc_secret)
    return conn


@dataclass
class CliState:
    config_path: str = "/etc/garage.toml"
    rpc_host: str | None = None
    rpc_secret: str | None = None
    client_factory: ClientFactory = _connect
    _client: AdminClient | None = field(default=None, repr=False)


def admin_error_types() -> tuple[type[BaseException], ...]:
    """The exception types that mean "the daemon said no" (printed without traceback)."""
    try:
        from pygarage.cli.client import AdminCallError
    except ImportError:
        return ()
    return (AdminCallError,)


def client(ctx: click.Context) -> AdminClient:
    """The admin client for this invocation, connected on first use."""
    state = ctx.find_object(CliState)
    if state is None:
        state = CliState()
        ctx.find_root().obj = state
    if state._client is None:
        state._client = state.client_factory(state)
        close = getattr(state._client, "close", None)
        if callable(close):
            ctx.find_root().call_on_close(close)
    return state._client


def node_param(all_nodes: bool) -> dict[str, str]:
    """The `node` query of multi-node endpoints: this node, or every node (`*`)."""
    return {"node": "*" if all_nodes else "self"}


def call_multi(
    ctx: click.Context,
    endpoint: str,
    *,
    all_nodes: bool = False,
    body: object = None,
) -> dict[str, Any]:
    """Call a multi-node endpoint and return its `success` map (node id -> result).

    Per-node failures are reported on stderr; if no node succeeded this is an error.
    """
    res = client(ctx).call(endpoint, query=node_param(all_nodes), body=body)
    success: dict[str, Any] = dict(res.get("success") or {})
    errors: dict[str, str] = dict(res.get("error") or {})
    for node, msg in sorted(errors.items()):
        click.echo(f"Error on node {short_id(node)}: {msg}", err=True)
    if errors and not success:
        raise click.ClickException(f"{endpoint} failed on every node")
    return success
