"""Garage's `repair aliases`: make bucket names consistent again across the three full-copy
tables that hold them (after a crash between their writes, or concurrent changes on two
nodes). The alias table and the keys' local aliases are the truth for where a name points,
except that a name pointing to a deleted or missing bucket is removed; each live bucket's
own lists of its global and local aliases are then set to match.

Everything is read and the fixes computed in one db transaction (all three are full copies:
this node has every entry); the fixed entries are queued for a replicated insert to every
node, as table hooks do, so the repair never writes half of a decision."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ...db.base import Transaction
from ...util.clock import now_msec
from ...util.crdt.lww import lww_update
from ..bucket_table import Bucket
from ..garage import Garage
from ..key_table import BucketAlias, Key

log = logging.getLogger(__name__)


@dataclass
class AliasFixes:
    aliases: list[BucketAlias] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    buckets: list[Bucket] = field(default_factory=list)


def alias_fixes(buckets: list[Bucket], aliases: list[BucketAlias], keys: list[Key],
                now: int) -> AliasFixes:
    """(pure) The entries to rewrite so that the three tables agree."""
    live = {b.id for b in buckets if not b.deleted}
    out = AliasFixes()
    global_of: dict[bytes, set[str]] = {}
    for a in aliases:
        target = a.bucket_id()
        if target is None:
            continue
        if target in live:
            global_of.setdefault(target, set()).add(a.name)
        else:
            log.warning("global alias %s -> %s: removed (bucket deleted)", a.name, target.hex())
            out.aliases.append(BucketAlias(a.name, lww_update(a.state, now, None)))
    local_of: dict[bytes, set[str]] = {}
    for k in keys:
        if k.deleted:
            continue
        changed = False
        for name, (ts, target) in list(k.local_aliases.items()):
            if not target:
                continue
            bid = bytes.fromhex(target)
            if bid in live:
                local_of.setdefault(bid, set()).add(f"{k.key_id}/{name}")
            else:
                log.warning("local alias %s of key %s: removed (bucket deleted)", name, k.key_id)
                k.local_aliases[name] = lww_update((ts, target), now, None)
                changed = True
        if changed:
            out.keys.append(k)
    for b in buckets:
        if b.deleted:
            continue
        changed = _match(b.aliases, global_of.get(b.id, set()), now)
        changed = _match(b.local_aliases, local_of.get(b.id, set()), now) or changed
        if changed:
            log.warning("bucket %s: aliases set to %s, local aliases to %s", b.id.hex(),
                        b.global_aliases(), [f"{k}/{a}" for k, a in b.local_alias_list()])
            out.buckets.append(b)
    return out


def _match(flags: dict[str, tuple[int, bool]], names: set[str], now: int) -> bool:
    """Set the bucket's alias flags to exactly `names`; -> whether any changed."""
    changed = False
    for name, (ts, on) in list(flags.items()):
        if on and name not in names:
            flags[name] = lww_update((ts, on), now, False)
            changed = True
    for name in names:
        cur = flags.get(name)
        if cur is None or not cur[1]:
            flags[name] = lww_update(cur, now, True)
            changed = True
    return changed


async def repair_aliases(g: Garage) -> AliasFixes:
    def tx_fn(tx: Transaction) -> AliasFixes:
        def all_of(store: str) -> list[bytes]:
            return [v for _, v in tx.range(store)]
        fixes = alias_fixes(
            [Bucket.decode(v) for v in all_of(g.bucket_table.data.store)],
            [BucketAlias.decode(v) for v in all_of(g.bucket_alias_table.data.store)],
            [Key.decode(v) for v in all_of(g.key_table.data.store)], now_msec())
        for a in fixes.aliases:
            g.bucket_alias_table.data.queue_insert(tx, a)
        for k in fixes.keys:
            g.key_table.data.queue_insert(tx, k)
        for b in fixes.buckets:
            g.bucket_table.data.queue_insert(tx, b)
        return fixes

    fixes = await g.db.write(tx_fn)
    log.info("repair aliases done: %d global aliases, %d keys, %d buckets fixed",
             len(fixes.aliases), len(fixes.keys), len(fixes.buckets))
    return fixes
