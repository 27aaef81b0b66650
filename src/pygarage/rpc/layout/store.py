"""The layout history on disk: `metadata_dir/cluster_layout`, msgpack behind a format marker,
replaced atomically (temp file, fsync, rename, fsync of the directory) so a crash leaves the
old or the new history, never a torn one. The previous format (one version) is migrated."""

from __future__ import annotations

from pathlib import Path

from ...util.atomic_file import write_atomic
from ...util.codec import CodecError, pack, unpack
from .history import LayoutHistory

MARKER = b"PGlayout2"
_MARKER_V1 = b"PGlayout1"


def save_history(path: Path, history: LayoutHistory) -> None:
    data = pack(MARKER, history.encode_obj())
    write_atomic(path, data)


def load_history(path: Path, now_msec: int) -> LayoutHistory | None:
    """The stored history, None if there is none. Raises CodecError on an unknown format."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if data.startswith(_MARKER_V1):
        return LayoutHistory.migrate_v1(unpack(_MARKER_V1, data), now_msec)
    try:
        return LayoutHistory.decode_obj(unpack(MARKER, data))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise CodecError(f"corrupt cluster layout file {path}: {e}") from None
