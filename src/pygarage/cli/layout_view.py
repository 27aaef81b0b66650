"""Rendering of `garage layout show` and `garage layout history`."""

from __future__ import annotations

from typing import Any

from pygarage.cli.fmt import format_bytes, format_table, format_tags, short_id

__all__ = [
    "format_zone_redundancy",
    "render_history",
    "render_layout_show",
    "render_roles",
    "render_staged",
]


def format_zone_redundancy(zr: Any) -> str:
    if zr == "maximum":
        return "maximum"
    if isinstance(zr, dict) and "atLeast" in zr:
        return f"at least {zr['atLeast']}"
    return str(zr)


def render_roles(layout: dict[str, Any]) -> str:
    """Roles table with the usable capacity computed by the assignment."""
    rows = []
    for r in sorted(layout.get("roles", []), key=lambda r: (r.get("zone", ""), r["id"])):
        cap = r.get("capacity")
        usable = r.get("usableCapacity")
        if cap is None:
            cap_s, usable_s = "gateway", ""
        else:
            cap_s = format_bytes(cap)
            if usable is None:
                usable_s = "?"
            else:
                pct = 100.0 * usable / cap if cap else 0.0
                usable_s = f"{format_bytes(usable)} ({pct:.1f}%)"
        rows.append(
            [short_id(r["id"]), format_tags(r.get("tags", [])), r.get("zone", ""), cap_s, usable_s]
        )
    return format_table(["ID", "Tags", "Zone", "Capacity", "Usable capacity"], rows)


def render_staged(layout: dict[str, Any]) -> list[str]:
    changes = layout.get("stagedRoleChanges") or []
    out: list[str] = []
    if changes:
        rows = []
        for ch in changes:
            if ch.get("remove"):
                rows.append([short_id(ch["id"]), "REMOVED", "", ""])
                continue
            cap = ch.get("capacity")
            rows.append(
                [
                    short_id(ch["id"]),
                    format_tags(ch.get("tags", [])),
                    ch.get("zone", ""),
                    format_bytes(cap) if cap is not None else "gateway",
                ]
            )
        out.append(format_table(["ID", "Tags", "Zone", "Capacity"], rows))
    params = layout.get("stagedParameters")
    if params:
        if out:
            out.append("")
        zr = format_zone_redundancy(params.get("zoneRedundancy"))
        out.append(f"Zone redundancy: {zr}")
    return out


def has_staged(layout: dict[str, Any]) -> bool:
    return bool(layout.get("stagedRoleChanges")) or bool(layout.get("stagedParameters"))


def render_layout_show(layout: dict[str, Any], preview: dict[str, Any] | None) -> str:
    """Current layout, staged changes and the preview of the next layout."""
    out = ["==== CURRENT CLUSTER LAYOUT ===="]
    if layout.get("roles"):
        out.append(render_roles(layout))
    else:
        out.append("No nodes currently have a role in the cluster.")
        out.append("See `garage status` to view available nodes.")
    out.append("")
    params = layout.get("parameters") or {}
    out.append(f"Zone redundancy: {format_zone_redundancy(params.get('zoneRedundancy'))}")
    out.append("")
    version = int(layout.get("version", 0))
    out.append(f"Current cluster layout version: {version}")

    if not has_staged(layout):
        out += ["", "No staged role changes."]
        return "\n".join(out)

    out += ["", "==== STAGED ROLE CHANGES ===="]
    out += render_staged(layout)
    out.append("")
    if preview is None or "error" in preview:
        err = (preview or {}).get("error", "no preview available")
        out += [
            f"Error while trying to compute the assignment: {err}",
            "This new layout cannot yet be applied.",
            "You can also revert all proposed changes with: garage layout revert --yes",
        ]
        return "\n".join(out)

    new_layout = preview.get("newLayout") or {}
    out += ["==== NEW CLUSTER LAYOUT AFTER APPLYING CHANGES ===="]
    out.append(render_roles(new_layout))
    out.append("")
    out += [str(line) for line in preview.get("message") or []]
    out += [
        "",
        "To enact the staged role changes, type:",
        "",
        f"    garage layout apply --version {version + 1}",
        "",
        "You can also revert all proposed changes with: garage layout revert --yes",
    ]
    return "\n".join(out)


def render_history(hist: dict[str, Any]) -> str:
    """Layout versions (current, draining, historical) and, while several versions are live,
    the per-node update trackers."""
    rows = [
        [
            f"#{v['version']}",
            str(v.get("status", "")).lower(),
            str(v.get("storageNodes", "")),
            str(v.get("gatewayNodes", "")),
        ]
        for v in hist.get("versions", [])
    ]
    out = ["==== LAYOUT HISTORY ===="]
    out.append(format_table(["Version", "Status", "Storage nodes", "Gateway nodes"], rows))
    out.append("")
    current = hist.get("currentVersion")
    trackers = hist.get("updateTrackers")
    if trackers:
        out.append("==== UPDATE TRACKERS ====")
        out.append("Several layout versions are currently live in the cluster, and data is "
                   "being migrated.")
        out.append("This is the internal data that Garage stores to know which nodes have "
                   "what data.")
        out.append("")
        trows = [
            [short_id(nid), str(t.get("ack")), str(t.get("sync")), str(t.get("syncAck"))]
            for nid, t in sorted(trackers.items())
        ]
        out.append(format_table(["Node", "Ack", "Sync", "Sync-ack"], trows))
        out.append("")
        out.append("If some nodes are not catching up to the latest layout version in the "
                   "update trackers,")
        out.append("it might be because they are offline or unable to complete a sync "
                   "successfully.")
        flag = "" if int(hist.get("minAck", current or 0)) < int(current or 0) \
            else " --allow-missing-data"
        out.append(f"You may force progress using `garage layout skip-dead-nodes --version "
                   f"{current}{flag}`.")
    else:
        out.append("Your cluster is currently in a stable state with a single live layout "
                   "version.")
        out.append("No metadata migration is in progress. Note that the migration of data "
                   "blocks is not tracked,")
        out.append("so you might want to keep old nodes online until their data directories "
                   "become empty.")
    return "\n".join(out)
