"""The layout history (layout.md §4): live versions, update trackers, staged changes.

Pure data and rules, no I/O. Several versions are live while data moves from the old ring to
the new one; per-node trackers say how far each node got (ack: knows the version and has no
older write in flight; sync: finished a full sync for it; sync_ack: reads from it). Old
versions are pruned once every node of the current version reads from a newer one.

`merge` is a join (commutative, associative, idempotent) so histories can be gossiped in any
order: the active range is [max of the min_stored, max of the currents] (a version pruned by
anyone was safe to prune), trackers merge by pointwise max, staging is last-writer-wins.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from ...util.clock import Clock
from ...util.codec import packb
from ...util.crdt.lww import Lww, LwwMap, lww_map_canonical, lww_map_merge, lww_merge, lww_update
from .assign import Previous, check_optimal, compute_assignment
from .version import MAXIMUM, N_PARTITIONS, LayoutError, LayoutVersion, NodeRole, ZoneRedundancy

log = logging.getLogger(__name__)

OLD_VERSION_COUNT = 5  # inactive versions kept to find blocks that have not moved yet

# Versions already found optimal, by digest: tracker gossip re-sends the same versions, and
# recomputing the optimal partition size takes max flows (layout.md §2.8).
_OPTIMAL_CHECKED: dict[bytes, None] = {}
_OPTIMAL_CACHE_SIZE = 64


def check_version(v: LayoutVersion) -> None:
    """Garage's full check of a version received from another node: the structural
    invariants and the optimality of its partition size. Raises LayoutError."""
    v.check()
    key = v.digest()
    if key in _OPTIMAL_CHECKED:
        return
    check_optimal(v.node_roles(), v.replication_factor, v.zone_redundancy, v.partition_size,
                  v.partitions)
    if len(_OPTIMAL_CHECKED) >= _OPTIMAL_CACHE_SIZE:
        _OPTIMAL_CHECKED.pop(next(iter(_OPTIMAL_CHECKED)))
    _OPTIMAL_CHECKED[key] = None


# ---- update trackers ---------------------------------------------------------------------------

@dataclass
class UpdateTrackers:
    ack: dict[str, int] = field(default_factory=dict)
    sync: dict[str, int] = field(default_factory=dict)
    sync_ack: dict[str, int] = field(default_factory=dict)

    def maps(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        return self.ack, self.sync, self.sync_ack

    def merge(self, other: UpdateTrackers) -> bool:
        changed = False
        for mine, theirs in zip(self.maps(), other.maps(), strict=True):
            for node, v in theirs.items():
                if set_max(mine, node, v):
                    changed = True
        return changed

    def to_obj(self) -> dict[str, Any]:
        return {"ack": dict(sorted(self.ack.items())), "sync": dict(sorted(self.sync.items())),
                "sync_ack": dict(sorted(self.sync_ack.items()))}

    @staticmethod
    def from_obj(o: dict[str, Any]) -> UpdateTrackers:
        return UpdateTrackers(*({str(k): int(v) for k, v in o.get(name, {}).items()}
                                for name in ("ack", "sync", "sync_ack")))


def set_max(m: dict[str, int], node: str, v: int) -> bool:
    if m.get(node, -1) < v:
        m[node] = v
        return True
    return False


# ---- staging ----------------------------------------------------------------------------------

@dataclass
class Staging:
    """An LWW register of {parameters (LWW), roles (LWW map)}: a newer register (apply,
    revert) replaces the whole staging; equal timestamps merge their contents."""

    ts: int = 0
    parameters: Lww = (0, MAXIMUM)
    roles: LwwMap = field(default_factory=dict)

    def merge(self, other: Staging) -> None:
        if other.ts > self.ts:
            self.ts, self.parameters, self.roles = other.ts, other.parameters, dict(other.roles)
        elif other.ts == self.ts:
            self.parameters = lww_merge(self.parameters, other.parameters)
            self.roles = lww_map_merge(self.roles, other.roles)

    @property
    def zone_redundancy(self) -> ZoneRedundancy:
        zr: ZoneRedundancy = self.parameters[1]
        return zr

    def to_obj(self) -> dict[str, Any]:
        return {"ts": self.ts, "params": list(self.parameters),
                "roles": {n: [ts, v] for n, (ts, v) in lww_map_canonical(self.roles).items()}}

    @staticmethod
    def from_obj(o: dict[str, Any]) -> Staging:
        zr = o["params"][1]
        return Staging(int(o["ts"]), (int(o["params"][0]), zr if zr == MAXIMUM else int(zr)),
                       {str(n): (int(e[0]), e[1]) for n, e in o["roles"].items()})


# ---- the history -------------------------------------------------------------------------------

@dataclass
class LayoutHistory:
    versions: list[LayoutVersion]  # active, ascending; last = current
    old_versions: list[LayoutVersion] = field(default_factory=list)
    trackers: UpdateTrackers = field(default_factory=UpdateTrackers)
    staging: Staging = field(default_factory=Staging)

    @staticmethod
    def new(rf: int, partitions: int = N_PARTITIONS) -> LayoutHistory:
        return LayoutHistory([LayoutVersion(version=0, replication_factor=rf,
                                            partitions=partitions)])

    # -- who stores what
    @property
    def current(self) -> LayoutVersion:
        return self.versions[-1]

    @property
    def min_stored(self) -> int:
        return self.versions[0].version

    def all_nodes(self) -> list[str]:
        """Nodes with a role (storage or gateway) in some active version."""
        return sorted({n for v in self.versions for n in v.node_id_vec})

    def all_storage_nodes(self) -> list[str]:
        return sorted({n for v in self.versions for n in v.storage_nodes()})

    def write_sets(self, partition: int) -> list[list[str]]:
        """Writes go to the partition's nodes in every active version, with a write quorum
        in each set (identical sets counted once)."""
        out: list[list[str]] = []
        for v in self.versions:
            nodes = v.nodes_of(partition)
            if nodes and sorted(nodes) not in [sorted(s) for s in out]:
                out.append(nodes)
        return out

    def storage_nodes_of(self, partition: int) -> list[str]:
        """A node stores a partition if it holds it in any active version."""
        return sorted({n for s in self.write_sets(partition) for n in s})

    def version(self, number: int) -> LayoutVersion | None:
        for v in (*self.versions, *self.old_versions):
            if v.version == number:
                return v
        return None

    def read_nodes_of(self, partition: int, read_version: int) -> list[str]:
        """Reads use the partition's nodes in the read version (see read_version)."""
        v = self.version(read_version) or self.current
        return v.nodes_of(partition)

    def read_version(self, write_quorum: int) -> int:
        """The oldest version reads must still use for read-after-write consistency: the
        lowest sync value reached by a write quorum of each old storage set."""
        if len(self.versions) == 1:
            return self.current.version
        min_v = self.min_stored
        sync = self.trackers.sync
        storage = self.all_storage_nodes()
        global_min = min((sync.get(n, min_v) for n in storage), default=min_v)
        if write_quorum >= self.current.replication_factor:
            return global_min
        best = self.current.version
        done: set[tuple[str, ...]] = set()
        for p in range(self.current.partitions):
            for v in self.versions[:-1]:
                nodes = tuple(sorted(v.nodes_of(p)))
                if not nodes or nodes in done:
                    continue
                done.add(nodes)
                values = sorted(sync.get(n, min_v) for n in nodes)
                best = min(best, values[max(0, len(values) - write_quorum)])
                if best <= global_min:
                    return global_min
        return best

    def tracker(self, which: dict[str, int], node: str) -> int:
        return which.get(node, self.min_stored)

    def ack_min(self) -> int:
        nodes = self.all_nodes()
        return min((self.tracker(self.trackers.ack, n) for n in nodes),
                   default=self.current.version)

    # -- staging
    def staged_roles(self) -> dict[str, NodeRole | None]:
        """Staged role changes that differ from the current roles (None: removal)."""
        cur = self.current.roles
        out: dict[str, NodeRole | None] = {}
        for n, (_, v) in sorted(self.staging.roles.items()):
            if n in cur and cur[n][1] == v or n not in cur and v is None:
                continue
            out[n] = NodeRole.from_obj(v) if v is not None else None
        return out

    def staged_zone_redundancy(self) -> ZoneRedundancy | None:
        zr = self.staging.zone_redundancy
        return None if zr == self.current.zone_redundancy else zr

    def has_staged(self) -> bool:
        return bool(self.staged_roles()) or self.staged_zone_redundancy() is not None

    def stage_role(self, node: str, role: NodeRole | None, clock: Clock) -> None:
        """Stage a role (None: removal), newer than both the current and the staged entry."""
        cur = self.current.roles.get(node)
        staged = self.staging.roles.get(node)
        newest = max((e for e in (cur, staged) if e is not None), default=None,
                     key=lambda e: e[0])
        entry = lww_update(newest, clock.now_msec(), role.to_obj() if role else None)
        self.staging.roles = lww_map_merge(self.staging.roles, {node: entry})

    def stage_parameters(self, zone_redundancy: ZoneRedundancy, clock: Clock) -> None:
        self.staging.parameters = lww_update(self.staging.parameters, clock.now_msec(),
                                             zone_redundancy)

    def preview(self) -> tuple[LayoutVersion, list[str]]:
        """The next version the staged changes give (pure; raises LayoutError)."""
        cur = self.current
        roles = {n: e for n, e in lww_map_merge(cur.roles, self.staging.roles).items()
                 if e[1] is not None}
        zr = self.staging.zone_redundancy
        prev = Previous(cur.node_id_vec, cur.ring, cur.partition_size) \
            if cur.ring_ready() else None
        a = compute_assignment({n: NodeRole.from_obj(e[1]) for n, e in roles.items()},
                               cur.replication_factor, zr, prev, cur.partitions)
        new = LayoutVersion(cur.version + 1, cur.replication_factor, zr, roles, a.node_id_vec,
                            a.nongateway_count, a.ring, a.partition_size, cur.partitions)
        new.check()
        return new, a.message

    def apply(self, version: int, clock: Clock) -> list[str]:
        if version != self.current.version + 1:
            raise LayoutError(f"Invalid new layout version: the next version is "
                              f"{self.current.version + 1}, not {version} "
                              f"(use --version {self.current.version + 1})")
        if not self.has_staged():
            raise LayoutError("There are no staged changes to apply")
        new, message = self.preview()
        self.versions.append(new)
        self.prune()
        # A strictly newer empty staging: stale staged entries elsewhere cannot come back.
        self.staging = Staging(lww_update((self.staging.ts, None), clock.now_msec(), None)[0],
                               self.staging.parameters, {})
        return message

    def revert(self, clock: Clock) -> None:
        ts = lww_update((self.staging.ts, None), clock.now_msec(), None)[0]
        self.staging = Staging(ts, (ts, self.current.zone_redundancy), {})

    # -- trackers and pruning
    def prune(self) -> None:
        if len(self.versions) > 1 and self.current.is_valid():
            while len(self.versions) > 1 and not self.versions[0].is_valid():
                log.info("layout history: pruning invalid version %d", self.versions[0].version)
                self.versions.pop(0)
        nodes = self.current.node_id_vec
        m = min((self.tracker(self.trackers.sync_ack, n) for n in nodes), default=0)
        while len(self.versions) > 1 and self.min_stored < m:
            old = self.versions.pop(0)
            log.info("layout history: version %d is no longer used", old.version)
            self.old_versions.append(old)
        self.old_versions = self.old_versions[-OLD_VERSION_COUNT:]

    def keep_current_version_only(self) -> None:
        """Degraded/dangerous consistency: no transition, only the current version counts."""
        while len(self.versions) > 1:
            self.old_versions.append(self.versions.pop(0))
        self.old_versions = self.old_versions[-OLD_VERSION_COUNT:]

    def clamp_trackers(self) -> None:
        min_v = self.min_stored
        for node in self.all_nodes():
            for m in self.trackers.maps():
                set_max(m, node, min_v)

    def refresh_local(self, node: str, write_quorum: int, ack: int | None = None,
                      synced: int | None = None) -> None:
        """This node's trackers after any change: ack (the oldest version a write in flight
        still uses, else current), sync (at least min_stored, or what a finished sync pass
        reached), sync_ack (the read version); then prune."""
        self.clamp_trackers()
        set_max(self.trackers.ack, node, self.current.version if ack is None else ack)
        set_max(self.trackers.sync, node, self.min_stored if synced is None else synced)
        set_max(self.trackers.sync_ack, node, self.read_version(write_quorum))
        self.prune()
        self.clamp_trackers()

    def skip_dead_nodes(self, version: int, up: set[str],
                        allow_missing_data: bool) -> tuple[list[str], list[str]]:
        """Operator escape hatch: raise the ack trackers of nodes that are down (of every
        node with allow_missing_data, which also raises their sync trackers)."""
        if len(self.versions) == 1:
            raise LayoutError("This command cannot be called when there is only one live "
                              "cluster layout version")
        min_v = self.min_stored
        if version <= min_v or version > self.current.version:
            allowed = " ".join(str(v) for v in range(min_v + 1, self.current.version + 1))
            raise LayoutError(f"Invalid version, you may use the following version numbers: "
                              f"{allowed}")
        ack_updated, sync_updated = [], []
        for node in self.all_nodes():
            if (allow_missing_data or node not in up) and \
                    set_max(self.trackers.ack, node, version):
                ack_updated.append(node)
            if allow_missing_data and set_max(self.trackers.sync, node, version):
                sync_updated.append(node)
        return ack_updated, sync_updated

    # -- gossip
    def check_received(self, other: LayoutHistory) -> None:
        """Refuse a history from another node that cannot be merged into ours: another
        replication factor, or a current version failing the full check (unless ours fails
        it too, as Garage does). Raises LayoutError."""
        rf = self.current.replication_factor
        if other.current.replication_factor != rf:
            raise LayoutError(f"received a layout with replication factor "
                              f"{other.current.replication_factor}, ours is {rf}")
        if other.current.version == 0:
            return  # a fresh node's empty history: nothing to check
        try:
            check_version(other.current)
        except LayoutError:
            if self.current.is_valid():
                raise

    def merge(self, other: LayoutHistory) -> bool:
        """Join with a history received from another node; True if ours changed."""
        before = self.encode_obj()
        low = max(self.min_stored, other.min_stored)
        high = max(self.current.version, other.current.version)
        known: dict[int, LayoutVersion] = {}
        for v in (*self.versions, *self.old_versions, *other.versions, *other.old_versions):
            mine = known.get(v.version)
            if mine is not None and mine != v:
                log.error("inconsistent layout histories: two different layouts have version "
                          "%d; the cluster is broken until a newer version replaces it",
                          v.version)
                v = max(mine, v, key=lambda x: x.digest())
            known[v.version] = v
        if any(n not in known for n in range(low, high + 1)):
            raise LayoutError(f"cannot merge layout histories: a version between {low} and "
                              f"{high} is missing")
        self.versions = [known[n] for n in range(low, high + 1)]
        # Old versions only serve to find data: a version without a ring is not kept.
        self.old_versions = [known[n] for n in sorted(known)
                             if n < low and known[n].ring_ready()][-OLD_VERSION_COUNT:]
        self.trackers.merge(other.trackers)
        self.staging.merge(other.staging)
        return self.encode_obj() != before

    def digest(self) -> tuple[int, int, bytes, bytes]:
        """What nodes compare in their status to decide what to pull (layout.md §4)."""
        return (self.current.version, len(self.versions),
                hashlib.blake2b(packb(self.trackers.to_obj()), digest_size=16).digest(),
                hashlib.blake2b(packb(self.staging.to_obj()), digest_size=16).digest())

    # -- encoding
    def encode_obj(self) -> dict[str, Any]:
        return {"versions": [v.to_obj() for v in self.versions],
                "old": [v.to_obj() for v in self.old_versions],
                "trackers": self.trackers.to_obj(), "staging": self.staging.to_obj()}

    @staticmethod
    def decode_obj(o: dict[str, Any]) -> LayoutHistory:
        versions = [LayoutVersion.from_obj(v) for v in o["versions"]]
        if not versions:
            raise LayoutError("a layout history has at least one version")
        return LayoutHistory(versions, [LayoutVersion.from_obj(v) for v in o.get("old", [])],
                             UpdateTrackers.from_obj(o.get("trackers", {})),
                             Staging.from_obj(o["staging"]))

    @staticmethod
    def migrate_v1(o: dict[str, Any], now_msec: int) -> LayoutHistory:
        """The previous stored format: one `current` version (ring as node id lists), staged
        roles as a plain dict and an optional staged zone redundancy."""
        cur = o["current"]
        rf = int(cur["rf"])
        roles = {str(n): NodeRole.from_obj(r) for n, r in cur["roles"].items()}
        storage = sorted(n for n, r in roles.items() if r.capacity is not None)
        gateways = sorted(n for n, r in roles.items() if r.capacity is None)
        vec = tuple(storage + gateways)
        ring = bytes(vec.index(n) for nodes in cur["ring"] for n in nodes)
        zr = cur["zr"] if cur["zr"] == MAXIMUM else int(cur["zr"])
        version = LayoutVersion(int(cur["version"]), rf, zr,
                                {n: (0, r.to_obj()) for n, r in sorted(roles.items())},
                                vec, len(storage), ring, int(cur["psize"]))
        h = LayoutHistory([version])
        h.staging = Staging(0, (0, zr), {})
        clock = _Fixed(now_msec)
        for n, r in (o.get("staged") or {}).items():
            h.stage_role(str(n), NodeRole.from_obj(r) if r else None, clock)
        if o.get("staged_zr") is not None:
            szr = o["staged_zr"]
            h.stage_parameters(szr if szr == MAXIMUM else int(szr), clock)
        return h

    def copy(self) -> LayoutHistory:
        return LayoutHistory(list(self.versions), list(self.old_versions),
                             UpdateTrackers.from_obj(self.trackers.to_obj()),
                             replace(self.staging, roles=dict(self.staging.roles)))


@dataclass(frozen=True)
class _Fixed:
    ms: int

    def now_msec(self) -> int:
        return self.ms
