"""This node in the cluster: identity (ed25519), the layout history, and what we know of
peers (through rpc/membership.py once the daemon's RPC is up)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nacl.signing import SigningKey

from ..util.atomic_file import write_atomic
from ..util.clock import SYSTEM_CLOCK, Clock
from ..util.config import Config
from .layout.history import LayoutHistory
from .layout.store import load_history, save_history
from .layout.version import LayoutVersion
from .replication_mode import ReplicationMode

if TYPE_CHECKING:
    from .membership import Membership

log = logging.getLogger(__name__)

VERSION = "pygarage-0.1.0"


def load_or_create_node_key(metadata_dir: Path) -> SigningKey:
    path = metadata_dir / "node_key"
    if path.exists():
        return SigningKey(path.read_bytes()[:32])
    metadata_dir.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    write_atomic(path, bytes(key))
    (metadata_dir / "node_key.pub").write_bytes(bytes(key.verify_key))
    return key


class System:
    def __init__(self, config: Config, clock: Clock = SYSTEM_CLOCK):
        self.config = config
        self.clock = clock
        self.node_key = load_or_create_node_key(config.metadata_dir)
        self.node_id: str = bytes(self.node_key.verify_key).hex()
        self.replication = ReplicationMode(config.replication_factor, config.consistency_mode)
        self.hostname = socket.gethostname()
        self._layout_path = config.metadata_dir / "cluster_layout"
        # Serializes layout computations (apply, skip-dead-nodes), which run in a thread.
        self.layout_lock = asyncio.Lock()
        # Set by Membership.start(): peers, their status, layout gossip.
        self.membership: Membership | None = None
        self.on_layout_saved: list[Callable[[], None]] = []
        self.layout = self._load_layout()
        # The layout version every table's last full sync was for (table/sync.py).
        self.synced_until: int | None = None
        self.read_version = self.layout.current.version
        self._refresh_trackers()

    # -- layout
    def _load_layout(self) -> LayoutHistory:
        h = load_history(self._layout_path, self.clock.now_msec())
        if h is None:
            return LayoutHistory.new(self.config.replication_factor)
        if h.current.replication_factor != self.config.replication_factor:
            raise RuntimeError(
                f"replication_factor changed from {h.current.replication_factor} to "
                f"{self.config.replication_factor}: this is not supported (to start a new "
                f"cluster, delete {self._layout_path})")
        return h

    def _refresh_trackers(self) -> None:
        h = self.layout
        if self.replication.consistency != "consistent":
            h.keep_current_version_only()
        # In sync up to the version of the tables' last full syncs (table/sync.py), or to
        # the current one when this node alone stores every live version: it holds every copy.
        synced = self.synced_until
        if set(h.all_storage_nodes()) <= {self.node_id}:
            synced = h.current.version
        # Read-after-write safety is reasoned with the consistent-mode quorum (layout.md §4).
        quorum = ReplicationMode(self.replication.factor).write_quorum
        h.refresh_local(self.node_id, quorum, synced=synced)
        self.read_version = h.read_version(quorum)

    def save_layout(self) -> None:
        """After any change: refresh this node's trackers, prune, persist atomically."""
        self._refresh_trackers()
        save_history(self._layout_path, self.layout)
        for cb in self.on_layout_saved:
            cb()

    @property
    def current_layout(self) -> LayoutVersion:
        return self.layout.current

    def layout_ready(self) -> bool:
        return self.layout.current.ring_ready()

    # -- where a partition lives (layout.md §4, "Read/write sets during a transition")
    def write_sets_of(self, partition: int) -> list[list[str]]:
        return self.layout.write_sets(partition)

    def read_nodes_of(self, partition: int) -> list[str]:
        return self.layout.read_nodes_of(partition, self.read_version)

    # -- status of nodes
    def local_status(self) -> dict[str, Any]:
        data = _disk_usage(self.config.data_dir)
        meta = _disk_usage(self.config.metadata_dir)
        return {"id": self.node_id, "hostname": self.hostname,
                "addr": (self.membership.public_addr if self.membership is not None
                         else self.config.rpc_public_addr) or self.config.rpc_bind_addr,
                "garageVersion": VERSION, "dataPartition": data, "metadataPartition": meta}

    def known_nodes(self) -> list[dict[str, Any]]:
        """Every node we know of, with isUp and lastSeenSecsAgo: ourselves, our peers and
        the nodes the layout names (down when there is no RPC, as in unit tests)."""
        if self.membership is not None:
            return self.membership.known_nodes()
        out = [dict(self.local_status(), isUp=True, lastSeenSecsAgo=None)]
        others = set(self.layout.all_nodes()) | {
            n for n, r in self.layout.staged_roles().items() if r is not None}
        for n in sorted(others - {self.node_id}):
            out.append({"id": n, "hostname": None, "addr": None, "garageVersion": None,
                        "isUp": False, "lastSeenSecsAgo": None, "dataPartition": None,
                        "metadataPartition": None})
        return out


def _disk_usage(path: Path) -> dict[str, int] | None:
    try:
        u = shutil.disk_usage(path)
    except OSError:
        return None
    return {"available": u.free, "total": u.total}
