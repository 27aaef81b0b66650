"""`metadata_dir/peer_list`: the nodes this node knows and where to reach them, so that a
restarted node rejoins the cluster alone. JSON, replaced atomically (temp file, fsync,
rename, fsync of the directory)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..util.atomic_file import write_atomic
from ..util.peer_addr import PeerAddrError, format_addr, parse_peer

log = logging.getLogger(__name__)

FILE_NAME = "peer_list"


def save_peer_list(metadata_dir: Path, peers: dict[bytes, tuple[str, int]]) -> None:
    path = metadata_dir / FILE_NAME
    data = json.dumps(sorted(f"{n.hex()}@{format_addr(h, p)}" for n, (h, p) in peers.items()),
                      indent=0).encode()
    write_atomic(path, data)


def load_peer_list(metadata_dir: Path) -> dict[bytes, tuple[str, int]]:
    """The stored peers; an unreadable file is logged and ignored (bootstrap_peers and
    gossip rebuild it)."""
    path = metadata_dir / FILE_NAME
    try:
        entries = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable peer list %s: %s", path, e)
        return {}
    out: dict[bytes, tuple[str, int]] = {}
    for entry in entries if isinstance(entries, list) else []:
        try:
            node, host, port = parse_peer(str(entry))
        except PeerAddrError as err:
            log.warning("peer list %s: %s", path, err)
            continue
        out[node] = (host, port)
    return out
