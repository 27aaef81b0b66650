"""`garage layout ...`: stage, review and apply changes to the cluster layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from pygarage.cli.fmt import short_id
from pygarage.cli.layout_view import has_staged, render_history, render_layout_show
from pygarage.cli.params import SIZE
from pygarage.cli.resolve import find_node, known_node_ids
from pygarage.cli.state import client

__all__ = ["layout", "plan_assign"]

_STAGED_HINT = (
    "Use `garage layout show` to view staged role changes,\n"
    "and `garage layout apply` to enact staged changes."
)


def _effective_role(layout: dict[str, Any], node_id: str) -> dict[str, Any] | None:
    """The role a node will have after the staged changes (None if it will have none)."""
    for ch in layout.get("stagedRoleChanges") or []:
        if ch["id"] == node_id:
            return None if ch.get("remove") else ch
    for r in layout.get("roles") or []:
        if r["id"] == node_id:
            return r
    return None


def plan_assign(
    layout: dict[str, Any],
    node_id: str,
    *,
    zone: str | None,
    capacity: int | None,
    gateway: bool,
    tags: Sequence[str],
) -> dict[str, Any]:
    """The staged role for `node_id`: options given, else the node's previous values."""
    if capacity is not None and gateway:
        raise click.ClickException(
            "-c and -g are mutually exclusive, please configure node either with c>0 "
            "to act as a storage node or with -g to act as a gateway node"
        )
    if capacity == 0:
        raise click.ClickException("Invalid capacity value: 0")
    old = _effective_role(layout, node_id)
    new_zone = zone if zone is not None else (old or {}).get("zone")
    if not new_zone:
        raise click.ClickException("Please specify a zone with the -z flag")
    if gateway:
        new_capacity = None
    elif capacity is not None:
        new_capacity = capacity
    elif old is not None:
        new_capacity = old.get("capacity")
    else:
        raise click.ClickException(
            "Please specify a capacity with the -c flag, or set node explicitly as gateway with -g"
        )
    new_tags = list(tags) if tags else list((old or {}).get("tags") or [])
    return {"id": node_id, "zone": new_zone, "capacity": new_capacity, "tags": new_tags}


@click.group()
def layout() -> None:
    """Manage the cluster layout: which nodes store data, in which zone, how much.

    Changes are staged first (assign, remove, config), reviewed with `layout show`,
    then enacted with `layout apply` or dropped with `layout revert`.
    """


@layout.command("assign")
@click.argument("node_ids", nargs=-1, required=True, metavar="NODE_ID...")
@click.option("-z", "--zone", help="Zone (datacenter) the node is located in.")
@click.option(
    "-c",
    "--capacity",
    type=SIZE,
    help="Storage capacity, in bytes or with a unit (e.g. 500G, 2T, 1TiB).",
)
@click.option("-g", "--gateway", is_flag=True, help="Make the node a gateway (stores no data).")
@click.option("-t", "--tag", "tags", multiple=True, help="Tag for the node (repeatable).")
@click.option(
    "--replace",
    "replace",
    multiple=True,
    metavar="NODE_ID",
    help="Stage the removal of this other node at the same time (repeatable).",
)
@click.pass_context
def layout_assign(
    ctx: click.Context,
    node_ids: Sequence[str],
    zone: str | None,
    capacity: int | None,
    gateway: bool,
    tags: Sequence[str],
    replace: Sequence[str],
) -> None:
    """Assign a role to nodes (id prefixes accepted), or change their current role."""
    c = client(ctx)
    cluster = c.call("GetClusterStatus")
    current = c.call("GetClusterLayout")
    candidates = known_node_ids(cluster, current)
    roles: list[dict[str, Any]] = []
    for prefix in replace:
        roles.append({"id": find_node(prefix, candidates), "remove": True})
    for prefix in node_ids:
        nid = find_node(prefix, candidates)
        roles.append(
            plan_assign(current, nid, zone=zone, capacity=capacity, gateway=gateway, tags=tags)
        )
    c.call("UpdateClusterLayout", body={"roles": roles})
    click.echo("Role changes are staged but not yet committed.")
    click.echo(_STAGED_HINT)


@layout.command("remove")
@click.argument("node_id")
@click.pass_context
def layout_remove(ctx: click.Context, node_id: str) -> None:
    """Stage the removal of a node's role from the layout."""
    c = client(ctx)
    current = c.call("GetClusterLayout")
    with_role = [r["id"] for r in current.get("roles") or []]
    with_role += [ch["id"] for ch in current.get("stagedRoleChanges") or []]
    nid = find_node(node_id, with_role)
    c.call("UpdateClusterLayout", body={"roles": [{"id": nid, "remove": True}]})
    click.echo("Role removal is staged but not yet committed.")
    click.echo(_STAGED_HINT)


def _parse_redundancy(value: str) -> Any:
    v = value.strip().lower()
    # Garage treats `none` as "no minimum requested", which is the maximum redundancy.
    if v in ("none", "max", "maximum"):
        return "maximum"
    try:
        n = int(v)
    except ValueError:
        raise click.BadParameter(f"expected none, max or a number, got {value!r}") from None
    if n < 1:
        raise click.BadParameter("zone redundancy must be at least 1")
    return {"atLeast": n}


@layout.command("config")
@click.option(
    "-r",
    "--redundancy",
    metavar="none|max|N",
    help="Zone redundancy: store each partition in at least N zones (max = as many as possible).",
)
@click.pass_context
def layout_config(ctx: click.Context, redundancy: str | None) -> None:
    """Stage changes to the layout parameters (zone redundancy)."""
    if redundancy is None:
        raise click.UsageError("Please specify a parameter to change (e.g. -r max)", ctx)
    zr = _parse_redundancy(redundancy)
    client(ctx).call(
        "UpdateClusterLayout", body={"roles": [], "parameters": {"zoneRedundancy": zr}}
    )
    shown = "maximum" if zr == "maximum" else str(zr["atLeast"])
    click.echo(f"The zone redundancy parameter has been set to '{shown}'.")
    click.echo(_STAGED_HINT)


@layout.command("show")
@click.pass_context
def layout_show(ctx: click.Context) -> None:
    """Show the current layout, the staged changes and a preview of the result."""
    c = client(ctx)
    current = c.call("GetClusterLayout")
    preview = c.call("PreviewClusterLayoutChanges") if has_staged(current) else None
    click.echo(render_layout_show(current, preview))


@layout.command("apply")
@click.option(
    "--version",
    type=int,
    help="Version number of the new layout (current version + 1); guards against races.",
)
@click.pass_context
def layout_apply(ctx: click.Context, version: int | None) -> None:
    """Apply the staged changes, creating a new layout version."""
    if version is None:
        # As Garage: never guess it, so two operators cannot apply each other's changes.
        raise click.ClickException(
            "Please pass the new layout version number to ensure that you are writing the "
            "correct version of the cluster layout.\nTo know the correct value of the new "
            "layout version, invoke `garage layout show` and review the proposed changes."
        )
    c = client(ctx)
    res = c.call("ApplyClusterLayout", body={"version": version})
    for line in res.get("message") or []:
        click.echo(line)
    click.echo("")
    click.echo(
        f"New cluster layout with updated role assignment has been applied (version {version})."
    )
    click.echo("Data will now be moved around between nodes accordingly.")


@layout.command("revert")
@click.option("--yes", is_flag=True, help="Confirm that the staged changes should be dropped.")
@click.option("--version", type=int, hidden=True, help="Accepted for compatibility; unused.")
@click.pass_context
def layout_revert(ctx: click.Context, yes: bool, version: int | None) -> None:
    """Drop every staged change to the layout."""
    if not yes:
        raise click.ClickException(
            "Add the --yes flag to actually revert all staged changes to the layout"
        )
    client(ctx).call("RevertClusterLayout")
    click.echo("All proposed role changes in cluster layout have been canceled.")


@layout.command("history")
@click.pass_context
def layout_history(ctx: click.Context) -> None:
    """Show the layout versions still in use and the nodes' progress in syncing them."""
    click.echo(render_history(client(ctx).call("GetClusterLayoutHistory")))


@layout.command("skip-dead-nodes")
@click.option("--version", type=int, required=True, help="Layout version to move trackers to.")
@click.option(
    "--allow-missing-data",
    is_flag=True,
    help="Also advance the sync trackers, accepting that some data may be lost.",
)
@click.pass_context
def layout_skip_dead_nodes(ctx: click.Context, version: int, allow_missing_data: bool) -> None:
    """Force the update trackers of dead nodes forward so old layouts can be dropped."""
    body = {"version": version, "allowMissingData": allow_missing_data}
    res = client(ctx).call("ClusterLayoutSkipDeadNodes", body=body)
    acked = res.get("ackUpdated") or []
    synced = res.get("syncUpdated") or []
    for nid in acked:
        click.echo(f"Node {short_id(nid)}: ack tracker advanced to version {version}")
    for nid in synced:
        click.echo(f"Node {short_id(nid)}: sync tracker advanced to version {version}")
    if not acked and not synced:
        if not allow_missing_data:
            raise click.ClickException(
                "Nothing was done, try passing the `--allow-missing-data` flag to force "
                "progress even when not enough nodes can complete a metadata sync."
            )
        raise click.ClickException(
            "Nothing was done: every tracker is already at this version. Wait for the nodes "
            "to catch up; if you ask for help, send the output of `garage layout history`."
        )
