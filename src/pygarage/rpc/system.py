"""This node in the cluster: identity (ed25519), the layout, and what we know of peers.

Multi-node peering lands with the cluster work; the layout, its persistence and the node
status reported here are already the ones a cluster uses.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from ..util.codec import pack, unpack
from ..util.config import Config
from .layout.history import LayoutHistory
from .layout.version import LayoutVersion
from .replication_mode import ReplicationMode

log = logging.getLogger(__name__)

VERSION = "pygarage-0.1.0"
_LAYOUT_MARKER = b"PGlayout1"


def load_or_create_node_key(metadata_dir: Path) -> SigningKey:
    path = metadata_dir / "node_key"
    if path.exists():
        return SigningKey(path.read_bytes()[:32])
    metadata_dir.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(bytes(key))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    (metadata_dir / "node_key.pub").write_bytes(bytes(key.verify_key))
    return key


class System:
    def __init__(self, config: Config):
        self.config = config
        self.node_key = load_or_create_node_key(config.metadata_dir)
        self.node_id: str = bytes(self.node_key.verify_key).hex()
        self.replication = ReplicationMode(config.replication_factor, config.consistency_mode)
        self.hostname = socket.gethostname()
        self._layout_path = config.metadata_dir / "cluster_layout"
        self.layout = self._load_layout()

    # -- layout
    def _load_layout(self) -> LayoutHistory:
        if self._layout_path.exists():
            h = LayoutHistory.from_obj(unpack(_LAYOUT_MARKER, self._layout_path.read_bytes()))
            if h.current.replication_factor != self.config.replication_factor:
                raise RuntimeError(
                    f"replication_factor changed from {h.current.replication_factor} to "
                    f"{self.config.replication_factor}: this is not supported")
            return h
        return LayoutHistory.new(self.config.replication_factor)

    def save_layout(self) -> None:
        tmp = self._layout_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(pack(_LAYOUT_MARKER, self.layout.to_obj()))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._layout_path)

    @property
    def current_layout(self) -> LayoutVersion:
        return self.layout.current

    def layout_ready(self) -> bool:
        return bool(self.layout.current.ring)

    # -- status of nodes
    def local_status(self) -> dict[str, Any]:
        data = _disk_usage(self.config.data_dir)
        meta = _disk_usage(self.config.metadata_dir)
        return {"id": self.node_id, "hostname": self.hostname,
                "addr": self.config.rpc_public_addr or self.config.rpc_bind_addr,
                "garageVersion": VERSION, "dataPartition": data, "metadataPartition": meta}

    def known_nodes(self) -> list[dict[str, Any]]:
        """Every node we know of: ourselves, and the nodes the layout names."""
        out = [dict(self.local_status(), isUp=True, lastSeenSecsAgo=None)]
        others = set(self.layout.current.roles) | {
            n for n, r in self.layout.staged_roles.items() if r is not None}
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
