"""`garage repair`, `garage block ...` and `garage meta ...`: maintenance operations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

from pygarage.cli.fmt import format_table, short_id
from pygarage.cli.state import call_multi, client, node_param

__all__ = ["block", "meta", "repair"]

# CLI name -> repairType of LaunchRepairOperation.
REPAIR_TYPES = {
    "tables": ("tables", "Do a full sync of metadata tables."),
    "blocks": ("blocks", "Repair (resync/rebalance) the set of stored blocks."),
    "versions": ("versions", "Repair versions whose object was deleted."),
    "mpu": ("multipartUploads", "Repair multipart uploads whose object was deleted."),
    "block-refs": ("blockRefs", "Repair block references whose version was deleted."),
    "block-rc": ("blockRc", "Recompute the reference counters of blocks."),
    "rebalance": ("rebalance", "Move blocks to the data directory they belong in."),
    "aliases": ("aliases", "Fix inconsistent bucket aliases (experimental)."),
}


@click.group()
@click.option("-a", "--all-nodes", is_flag=True, help="Launch on every node of the cluster.")
@click.option("--yes", is_flag=True, help="Confirm the launch of the repair operation.")
def repair(all_nodes: bool, yes: bool) -> None:
    """Launch a repair operation in the background (see `garage worker list`)."""


def _launch(ctx: click.Context, repair_type: Any, all_nodes: bool, yes: bool) -> None:
    parent = ctx.parent.params if ctx.parent is not None else {}
    all_nodes = all_nodes or bool(parent.get("all_nodes"))
    if not (yes or parent.get("yes")):
        raise click.ClickException("Please provide the --yes flag to initiate repair operations.")
    res = call_multi(
        ctx, "LaunchRepairOperation", all_nodes=all_nodes, body={"repairType": repair_type}
    )
    for nid in sorted(res):
        click.echo(f"Repair operation launched on node {short_id(nid)}.")


def _repair_options(f: Callable[..., Any]) -> Callable[..., Any]:
    # Also accepted after the subcommand, where users tend to type them.
    f = click.option("--yes", is_flag=True, help="Confirm the launch.")(f)
    f = click.option("-a", "--all-nodes", is_flag=True, help="Launch on every node.")(f)
    return click.pass_context(f)


def _make_repair(api_name: str, doc: str) -> Callable[..., None]:
    def cmd(ctx: click.Context, all_nodes: bool, yes: bool) -> None:
        _launch(ctx, api_name, all_nodes, yes)

    cmd.__doc__ = doc
    return cmd


for _name, (_api, _doc) in REPAIR_TYPES.items():
    repair.command(_name)(_repair_options(_make_repair(_api, _doc)))


@repair.command("scrub")
@click.argument(
    "action", type=click.Choice(["start", "pause", "resume", "cancel", "set-tranquility"])
)
@click.argument("tranquility", type=click.IntRange(0, 1000), required=False)
@_repair_options
def repair_scrub(
    ctx: click.Context, action: str, tranquility: int | None, all_nodes: bool, yes: bool
) -> None:
    """Start, pause (for 24 h), resume or cancel the verification of every stored block
    against its hash; or set its tranquility (also `garage worker set scrub-tranquility`)."""
    if action != "set-tranquility":
        if tranquility is not None:
            raise click.UsageError(f"scrub {action} takes no value")
        _launch(ctx, {"scrub": action}, all_nodes, yes)
        return
    if tranquility is None:
        raise click.UsageError("scrub set-tranquility needs a value (e.g. 4)")
    parent = ctx.parent.params if ctx.parent is not None else {}
    if not (yes or parent.get("yes")):
        raise click.ClickException("Please provide the --yes flag to initiate repair operations.")
    body = {"variable": "scrub-tranquility", "value": str(tranquility)}
    res = call_multi(
        ctx, "SetWorkerVariable", all_nodes=all_nodes or bool(parent.get("all_nodes")), body=body
    )
    for nid in sorted(res):
        click.echo(f"Scrub tranquility set to {tranquility} on node {short_id(nid)}.")


@click.group()
def block() -> None:
    """Inspect and repair data blocks of this node."""


@block.command("list-errors")
@click.pass_context
def block_list_errors(ctx: click.Context) -> None:
    """List blocks that could not be fetched or stored (resync errors)."""
    res = call_multi(ctx, "ListBlockErrors")
    rows = []
    for errors in res.values():
        for e in sorted(errors, key=lambda e: e.get("blockHash", "")):
            rows.append(
                [
                    str(e.get("blockHash", "")),
                    str(e.get("refcount", "")),
                    str(e.get("errorCount", "")),
                    f"{e.get('lastTrySecsAgo')}s ago",
                    f"in {e.get('nextTryInSecs')}s",
                ]
            )
    click.echo(format_table(["Hash", "RC", "Errors", "Last error", "Next try"], rows))


@block.command("info")
@click.argument("block_hash")
@click.pass_context
def block_info(ctx: click.Context, block_hash: str) -> None:
    """Show a block's reference count and the objects that use it (hash prefix accepted)."""
    res = call_multi(ctx, "GetBlockInfo", body={"blockHash": block_hash})
    for info in res.values():
        click.echo(f"Block hash: {info.get('blockHash', block_hash)}")
        click.echo(f"Refcount: {info.get('refcount', '?')}")
        present = info.get("presentOn")
        if isinstance(present, dict) and present:
            click.echo("Present on: " + ", ".join(
                f"{short_id(str(n))} ({'yes' if p else 'no' if p is False else 'no answer'})"
                for n, p in sorted(present.items())))
        if info.get("resyncErrors"):
            click.echo(f"Resync errors: {info['resyncErrors']}")
        click.echo("")
        rows = []
        for v in info.get("versions") or []:
            link = v.get("backlink") or {}
            target = link.get("object") or link.get("upload") or {}
            kind = "upload" if "upload" in link else ("object" if "object" in link else "")
            deleted = v.get("refDeleted") or v.get("versionDeleted")
            rows.append(
                [
                    str(v.get("versionId", "")),
                    short_id(str(target.get("bucketId", ""))),
                    str(target.get("key", "")),
                    kind,
                    "yes" if deleted else "",
                ]
            )
        click.echo(format_table(["Version", "Bucket", "Key", "Via", "Deleted"], rows))


@block.command("retry-now")
@click.argument("hashes", nargs=-1)
@click.option("--all", "all_blocks", is_flag=True, help="Retry every block in the resync queue.")
@click.pass_context
def block_retry_now(ctx: click.Context, hashes: Sequence[str], all_blocks: bool) -> None:
    """Retry the resync of some blocks (or all) now, without waiting for the backoff."""
    if all_blocks == bool(hashes):
        raise click.ClickException("Please give block hashes, or --all (but not both)")
    body = {"all": True} if all_blocks else {"blockHashes": list(hashes)}
    res = call_multi(ctx, "RetryBlockResync", body=body)
    for out in res.values():
        count = out.get("count", len(hashes)) if isinstance(out, dict) else len(hashes)
        click.echo(f"{count} blocks returned in queue for a retry now (check logs to see results)")


@block.command("purge")
@click.argument("hashes", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Confirm the purge.")
@click.pass_context
def block_purge(ctx: click.Context, hashes: Sequence[str], yes: bool) -> None:
    """Delete the objects and uploads that use these blocks (for unrecoverable blocks)."""
    if not yes:
        raise click.ClickException(
            "Add --yes flag to do the purge: the objects using these blocks will be deleted"
        )
    res = call_multi(ctx, "PurgeBlocks", body=list(hashes))
    for out in res.values():
        click.echo(
            f"Purged {out.get('blocksPurged', len(hashes))} blocks: "
            f"{out.get('versionsDeleted', 0)} versions, "
            f"{out.get('objectsDeleted', 0)} objects, "
            f"{out.get('uploadsDeleted', 0)} uploads deleted."
        )


@click.group()
def meta() -> None:
    """Metadata database operations."""


@meta.command("snapshot")
@click.option("--all", "all_nodes", is_flag=True, help="Snapshot the metadata of every node.")
@click.pass_context
def meta_snapshot(ctx: click.Context, all_nodes: bool) -> None:
    """Save a snapshot of the metadata database (in metadata_dir/snapshots, or
    metadata_snapshots_dir; the two most recent are kept)."""
    res = client(ctx).call("CreateMetadataSnapshot", query=node_param(all_nodes))
    ok = sorted(res.get("success") or {})
    errors = dict(res.get("error") or {})
    rows = [[short_id(n), "Snapshot created"] for n in ok]
    rows += [[short_id(n), f"Error: {msg}"] for n, msg in sorted(errors.items())]
    click.echo(format_table(["Node", "Result"], rows))
    if errors:
        raise click.ClickException(f"{len(errors)} nodes returned an error")
