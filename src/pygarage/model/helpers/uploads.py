"""Garage's `cleanup-incomplete-uploads`: abort a bucket's unfinished uploads older than a
limit, through the replicated object table (quorum reads, page by page, and quorum writes).
The aborts are the writes AbortMultipartUpload makes: the table hooks then free the
upload's versions, parts and blocks as usual."""

from __future__ import annotations

from ..garage import Garage
from ..s3.object_table import ABORTED, UPLOADING, Object, ObjectVersion

PAGE = 1000


def stale_uploads(g: Garage, obj: Object, cutoff_ms: int) -> list[ObjectVersion]:
    """(pure) The aborts for the object's uploads started before cutoff_ms. A PutObject
    upload under way in this process is not unfinished, whatever its age."""
    return [ObjectVersion(v.uuid, v.timestamp, ABORTED, multipart=v.multipart)
            for v in obj.versions
            if v.state == UPLOADING and v.timestamp < cutoff_ms
            and (v.multipart or v.uuid not in g.puts_in_progress)]


async def cleanup_incomplete_uploads(g: Garage, bucket_id: bytes, cutoff_ms: int) -> int:
    """Abort every upload of the bucket started before cutoff_ms; -> how many."""
    count = 0
    start: bytes | None = None
    while True:
        page = await g.object_table.get_range(bucket_id, start, "unfinished", PAGE)
        aborts = []
        for obj in page:
            stale = stale_uploads(g, obj, cutoff_ms)
            if stale:
                aborts.append(Object(bucket_id, obj.key, stale))
                count += len(stale)
        if aborts:
            await g.object_table.insert_many(aborts)
        if len(page) < PAGE:
            return count
        start = page[-1].sort_key() + b"\x00"
