"""`garage stats` and `garage json-api`."""

from __future__ import annotations

import json
from typing import Any

import click

from pygarage.api.common.wire import strict_json
from pygarage.cli.state import call_multi, client

__all__ = ["json_api", "split_payload", "stats"]


@click.command()
@click.option("-a", "--all-nodes", is_flag=True, help="Show statistics of every node.")
@click.pass_context
def stats(ctx: click.Context, all_nodes: bool) -> None:
    """Show statistics: tables, block manager, and storage space of the cluster."""
    per_node = call_multi(ctx, "GetNodeStatistics", all_nodes=all_nodes)
    for nid, res in sorted(per_node.items()):
        if all_nodes:
            click.echo("======================")
            click.echo(f"Stats for node {nid}:")
            click.echo("")
        click.echo(str(res.get("freeform", "")).rstrip("\n"))
        click.echo("")
    cluster = client(ctx).call("GetClusterStatistics")
    if all_nodes:
        click.echo("======================")
        click.echo("Cluster statistics:")
        click.echo("")
    click.echo(str(cluster.get("freeform", "")).rstrip("\n"))


# Endpoints whose parameters travel in the query string (the rest is the JSON body).
_QUERY_PARAMS: dict[str, frozenset[str]] = {
    "GetBucketInfo": frozenset({"id", "globalAlias", "search"}),
    "UpdateBucket": frozenset({"id"}),
    "DeleteBucket": frozenset({"id"}),
    "GetKeyInfo": frozenset({"id", "search", "showSecretKey"}),
    "UpdateKey": frozenset({"id"}),
    "DeleteKey": frozenset({"id"}),
    "InspectObject": frozenset({"bucketId", "key"}),
    "GetAdminTokenInfo": frozenset({"id", "search"}),
    "UpdateAdminToken": frozenset({"id"}),
    "DeleteAdminToken": frozenset({"id"}),
}

# Endpoints that take `?node=` and answer per node.
_MULTI_NODE = frozenset(
    {
        "GetNodeInfo",
        "GetNodeStatistics",
        "CreateMetadataSnapshot",
        "LaunchRepairOperation",
        "ListWorkers",
        "GetWorkerInfo",
        "GetWorkerVariable",
        "SetWorkerVariable",
        "ListBlockErrors",
        "GetBlockInfo",
        "RetryBlockResync",
        "PurgeBlocks",
    }
)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def split_payload(endpoint: str, payload: Any) -> tuple[dict[str, str] | None, Any]:
    """Split a json-api payload into (query, body), as Garage's request structs do.

    Query parameters of the endpoint (and `node`) go in the query string; an explicit
    `body` member is the body, otherwise the remaining members are.
    """
    query: dict[str, str] = {}
    body: Any = payload
    if isinstance(payload, dict):
        names = _QUERY_PARAMS.get(endpoint, frozenset()) | {"node"}
        query = {k: _query_value(v) for k, v in payload.items() if k in names}
        rest = {k: v for k, v in payload.items() if k not in names}
        if set(rest) == {"body"}:
            body = rest["body"]
        else:
            body = rest or None
    if endpoint in _MULTI_NODE:
        query.setdefault("node", "self")
    return (query or None), body


@click.command("json-api")
@click.argument("endpoint")
@click.argument("payload", required=False)
@click.pass_context
def json_api(ctx: click.Context, endpoint: str, payload: str | None) -> None:
    """Call an admin API v2 endpoint and print its JSON answer.

    PAYLOAD is the JSON request (`-` reads it from stdin), e.g.

        garage json-api GetBucketInfo '{"search": "my-bucket"}'

    Query parameters (id, search, node...) and the body are given in the same
    object; for multi-node endpoints `node` defaults to `self`.
    """
    text = click.get_text_stream("stdin").read() if payload == "-" else payload
    try:
        # As the daemon's HTTP API reads bodies: no NaN, no lone surrogate, bounded digits.
        parsed = strict_json(text.encode("utf-8", "surrogateescape")) \
            if text and text.strip() else None
    except (ValueError, RecursionError) as e:
        raise click.ClickException(f"Invalid JSON payload: {e}") from None
    query, body = split_payload(endpoint, parsed)
    res = client(ctx).call(endpoint, query=query, body=body)
    click.echo(json.dumps(res, indent=2))
