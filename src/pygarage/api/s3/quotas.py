"""Bucket quotas (max size, max objects), checked before a new object version is made
visible by PutObject, CopyObject and CompleteMultipartUpload.

As in Garage: the check compares the bucket's counters plus what this write adds (an
overwrite first takes away the replaced object's count and size), and a write that adds
nothing (same count, not larger) always passes, so a full bucket can still be cleaned up
or overwritten with smaller data. Concurrent writes may overshoot a little: the counters are
read, not reserved.
"""

from __future__ import annotations

from typing import Any

from ...model.counters import object_counts
from ...model.helpers.bucket import BucketHelper
from ...model.s3.object_table import Object
from ..common import errors
from .context import ReqCtx


def quota_violation(quotas: dict[str, Any] | None, counts: dict[str, int],
                    replaced: dict[str, int], size: int) -> str | None:
    """(pure) The reason a write of `size` bytes that replaces an object counted as
    `replaced` breaks the quotas, or None. Garage's messages, word for word."""
    quotas = quotas or {}
    max_objects, max_size = quotas.get("max_objects"), quotas.get("max_size")
    objects_diff = 1 - replaced.get("objects", 0)
    size_diff = size - replaced.get("bytes", 0)
    if max_objects is not None and objects_diff > 0 and \
            counts.get("objects", 0) + objects_diff > max_objects:
        return f"Object quota is reached, maximum objects for this bucket: {max_objects}"
    if max_size is not None and size_diff > 0 and counts.get("bytes", 0) + size_diff > max_size:
        current = counts.get("bytes", 0)
        return (f"Bucket size quota is reached, maximum total size of objects for this "
                f"bucket: {max_size}. The bucket is already {current} bytes, and this object "
                f"would add {size_diff} bytes.")
    return None


async def check_quotas(ctx: ReqCtx, size: int, existing: Object | None) -> None:
    """Raise Garage's 403 if writing `size` bytes over `existing` would break the quotas."""
    assert ctx.bucket is not None
    quotas = ctx.bucket.quotas[1] or {}
    if quotas.get("max_objects") is None and quotas.get("max_size") is None:
        return
    counts = await BucketHelper(ctx.garage).usage(ctx.bucket_id)
    reason = quota_violation(quotas, counts, object_counts(existing), size)
    if reason is not None:
        raise errors.AccessDenied(f"Forbidden: {reason}")
