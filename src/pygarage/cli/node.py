"""`garage status` and `garage node ...`: cluster membership as seen by one node."""

from __future__ import annotations

from typing import Any

import click

from pygarage.cli.fmt import format_ago, format_bytes, format_table, format_tags, short_id
from pygarage.cli.layout_view import render_staged
from pygarage.cli.state import call_multi, client

__all__ = ["node", "render_status", "status"]


def _data_avail(n: dict[str, Any]) -> str:
    part = n.get("dataPartition")
    role = n.get("role")
    if role is not None and role.get("capacity") is None:
        return "N/A"  # gateways store no data
    if not part or not part.get("total"):
        return "?"
    pct = 100.0 * part["available"] / part["total"]
    return f"{format_bytes(part['available'])} ({pct:.1f}%)"


def _role_cells(n: dict[str, Any], staged: dict[str, dict[str, Any]]) -> list[str]:
    """Tags, Zone, Capacity cells; a placeholder in Tags for nodes without a role."""
    role = n.get("role")
    if role is not None:
        cap = role.get("capacity")
        return [
            format_tags(role.get("tags", [])),
            role.get("zone", ""),
            format_bytes(cap) if cap is not None else "gateway",
        ]
    change = staged.get(n["id"])
    if change is not None and not change.get("remove"):
        return ["pending...", "", ""]
    if n.get("draining"):
        return ["draining metadata...", "", ""]
    return ["NO ROLE ASSIGNED", "", ""]


def render_status(cluster: dict[str, Any], layout: dict[str, Any]) -> str:
    """The text of `garage status` from GetClusterStatus and GetClusterLayout."""
    staged = {ch["id"]: ch for ch in layout.get("stagedRoleChanges") or []}
    nodes = sorted(cluster.get("nodes", []), key=lambda n: n["id"])
    out: list[str] = ["==== HEALTHY NODES ===="]
    rows = []
    for n in (n for n in nodes if n.get("isUp")):
        rows.append(
            [
                short_id(n["id"]),
                n.get("hostname") or "?",
                n.get("addr") or "",
                *_role_cells(n, staged),
                _data_avail(n) if n.get("role") is not None else "",
                n.get("garageVersion") or "?",
            ]
        )
    header = ["ID", "Hostname", "Address", "Tags", "Zone", "Capacity", "DataAvail", "Version"]
    out.append(format_table(header, rows))

    # Down nodes only matter if the layout still expects something from them.
    failed = [
        n for n in nodes if not n.get("isUp") and (n.get("role") is not None or n.get("draining"))
    ]
    if failed:
        out += ["", "==== FAILED NODES ===="]
        rows = [
            [
                short_id(n["id"]),
                n.get("hostname") or "?",
                *_role_cells(n, staged),
                format_ago(n.get("lastSeenSecsAgo")),
            ]
            for n in failed
        ]
        out.append(format_table(["ID", "Hostname", "Tags", "Zone", "Capacity", "Last seen"], rows))
        if any(n.get("draining") for n in failed):
            out += [
                "",
                "Your cluster expects to drain data from nodes that are currently unavailable.",
                "If these nodes are definitely dead, review the layout history with",
                "`garage layout history` and use `garage layout skip-dead-nodes` to move on.",
            ]

    if staged or layout.get("stagedParameters"):
        out += ["", "==== STAGED ROLE CHANGES ===="]
        out += render_staged(layout)
        out += [
            "",
            "Please use `garage layout show` to check the proposed new layout and apply it.",
        ]
    return "\n".join(out)


@click.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show the nodes of the cluster, their roles and whether they are up."""
    c = client(ctx)
    cluster = c.call("GetClusterStatus")
    layout = c.call("GetClusterLayout")
    click.echo(render_status(cluster, layout))


@click.group()
def node() -> None:
    """Node identity and connections between nodes."""


@node.command("id")
@click.option("-q", "--quiet", is_flag=True, help="Only print the node identifier.")
@click.pass_context
def node_id(ctx: click.Context, quiet: bool) -> None:
    """Print the identifier of this node (<id>@<rpc public address>)."""
    infos = call_multi(ctx, "GetNodeInfo")
    if not infos:
        raise click.ClickException("The node did not return its identity")
    nid, info = next(iter(infos.items()))
    nid = info.get("nodeId") or nid
    addr = info.get("rpcPublicAddr")
    full = f"{nid}@{addr}" if addr else nid
    click.echo(full)
    if quiet:
        return
    target = full if addr else f"{nid}@<this node's IP>:<rpc port>"
    if not addr:
        click.echo(
            "\nNo public RPC address is configured (rpc_public_addr), so only the node id "
            "is shown above: add this node's address yourself.",
            err=True,
        )
    click.echo(
        "\n".join(
            [
                "",
                "To instruct a node to connect to this node, run on that node:",
                f"    garage [-c <config file path>] node connect {target}",
                "",
                "Or instruct them to connect from here by running:",
                f"    garage -c <config file path> -h <remote node> node connect {target}",
                "",
                "This node identifier can also be added as a bootstrap node in other nodes'",
                "garage.toml files:",
                "    bootstrap_peers = [",
                f'        "{target}",',
                "        ...",
                "    ]",
            ]
        ),
        err=True,
    )


@node.command("connect")
@click.argument("node_addr", metavar="<ID>@<HOST>:<PORT>")
@click.pass_context
def node_connect(ctx: click.Context, node_addr: str) -> None:
    """Connect this node to another node of the cluster."""
    if "@" not in node_addr:
        raise click.ClickException(
            f"Invalid node address {node_addr!r}: expected <node id>@<host>:<port>"
        )
    res = client(ctx).call("ConnectClusterNodes", body=[node_addr])
    outcome = res[0] if res else {"success": False, "error": "no answer"}
    if not outcome.get("success"):
        raise click.ClickException(f"Could not connect to {node_addr}: {outcome.get('error')}")
    click.echo("Success.")
