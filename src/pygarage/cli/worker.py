"""`garage worker ...`: background workers and their tuning variables."""

from __future__ import annotations

from typing import Any

import click

from pygarage.cli.fmt import format_table, short_id
from pygarage.cli.state import call_multi

__all__ = ["render_workers", "worker"]

# Busy workers first, as they are the interesting ones.
_STATE_ORDER = {"busy": 0, "throttled": 1, "idle": 2, "done": 3}


def _state_name(state: Any) -> str:
    if isinstance(state, dict):  # e.g. {"throttled": {"durationSecs": 1.5}}
        return next(iter(state), "?")
    return str(state)


def _opt(value: Any) -> str:
    return "-" if value is None else str(value)


def render_workers(workers: list[dict[str, Any]]) -> str:
    def sort_key(w: dict[str, Any]) -> tuple[int, int]:
        return (_STATE_ORDER.get(_state_name(w.get("state")).lower(), 9), int(w.get("id", 0)))

    rows = []
    for w in sorted(workers, key=sort_key):
        last = w.get("lastError")
        errors = int(w.get("errors") or 0)
        persistent = w.get("persistentErrors")
        rows.append(
            [
                str(w.get("id", "")),
                _state_name(w.get("state")),
                str(w.get("name", "")),
                _opt(w.get("tranquility")),
                _opt(w.get("progress")),
                _opt(w.get("queueLength")),
                str(errors) if persistent is None else f"{errors} ({persistent})",
                str(w.get("consecutiveErrors") or 0),
                f"{last['secsAgo']}s ago" if last else "-",
            ]
        )
    header = ["TID", "State", "Name", "Tranq", "Done", "Queue", "Errors", "Consec", "Last"]
    return format_table(header, rows)


@click.group()
def worker() -> None:
    """Inspect background workers and tune their variables."""


@worker.command("list")
@click.option("-b", "--busy", is_flag=True, help="Only show busy workers.")
@click.option("-e", "--errors", is_flag=True, help="Only show workers with errors.")
@click.pass_context
def worker_list(ctx: click.Context, busy: bool, errors: bool) -> None:
    """List the background workers of this node."""
    res = call_multi(ctx, "ListWorkers", body={"busyOnly": busy, "errorOnly": errors})
    for workers in res.values():
        click.echo(render_workers(workers))


@worker.command("info")
@click.argument("tid", type=int)
@click.pass_context
def worker_info(ctx: click.Context, tid: int) -> None:
    """Show the details of one worker, by its task id (TID)."""
    res = call_multi(ctx, "GetWorkerInfo", body={"id": tid})
    for w in res.values():
        last = w.get("lastError")
        lines = [
            f"Task id: {w.get('id', tid)}",
            f"Worker name: {w.get('name', '')}",
            f"Worker state: {_state_name(w.get('state'))}",
            f"Tranquility: {_opt(w.get('tranquility'))}",
            f"Progress: {_opt(w.get('progress'))}",
            f"Queue length: {_opt(w.get('queueLength'))}",
            f"Persistent errors: {_opt(w.get('persistentErrors'))}",
            f"Total errors: {w.get('errors', 0)}",
            f"Consecutive errors: {w.get('consecutiveErrors', 0)}",
        ]
        if last:
            lines.append(f"Last error: {last.get('message')} ({last.get('secsAgo')}s ago)")
        freeform = w.get("freeform") or []
        if freeform:
            lines += ["", *[str(x) for x in freeform]]
        click.echo("\n".join(lines))


@worker.command("get")
@click.argument("variable", required=False)
@click.option("-a", "--all-nodes", is_flag=True, help="Query every node of the cluster.")
@click.pass_context
def worker_get(ctx: click.Context, variable: str | None, all_nodes: bool) -> None:
    """Show worker variables (all of them, or VARIABLE)."""
    res = call_multi(ctx, "GetWorkerVariable", all_nodes=all_nodes, body={"variable": variable})
    rows = []
    for nid, values in sorted(res.items()):
        for name, value in sorted(values.items()):
            row = [name, str(value)]
            rows.append([short_id(nid), *row] if all_nodes else row)
    header = ["Node", "Variable", "Value"] if all_nodes else ["Variable", "Value"]
    click.echo(format_table(header, rows))


@worker.command("set")
@click.argument("variable")
@click.argument("value")
@click.option("-a", "--all-nodes", is_flag=True, help="Set the variable on every node.")
@click.pass_context
def worker_set(ctx: click.Context, variable: str, value: str, all_nodes: bool) -> None:
    """Set a worker variable (e.g. resync-tranquility, scrub-tranquility)."""
    body = {"variable": variable, "value": value}
    res = call_multi(ctx, "SetWorkerVariable", all_nodes=all_nodes, body=body)
    for nid, out in sorted(res.items()):
        prefix = f"{short_id(nid)}: " if all_nodes else ""
        click.echo(f"{prefix}{out.get('variable', variable)} set to {out.get('value', value)}")
