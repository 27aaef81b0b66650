"""PutObject, and the block writer shared by UploadPart and copies.

Flow: read the first block; under INLINE_THRESHOLD it goes inside the object entry. Otherwise
the object gets an Uploading version, then each block_size chunk is checksummed (MD5 for the
ETag, plus what the client asked) in order in the upload's own worker thread, while chunks are
hashed, compressed and stored concurrently (at most MAX_IN_FLIGHT). Stored blocks are listed in
the version entry VERSION_BATCH at a time. The version becomes Complete only after every block
is stored and listed and every checksum verified; any failure marks it Aborted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web

from ...block.block import DataBlock
from ...model.garage import Garage
from ...model.s3.block_ref_table import BlockRef
from ...model.s3.object_table import (
    ABORTED,
    COMPLETE,
    FIRST_BLOCK,
    INLINE,
    UPLOADING,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from ...model.s3.version_table import Version, VersionBlock
from ...util.clock import SYSTEM_CLOCK, next_timestamp
from ...util.ids import gen_uuid
from ..common import errors
from ..common.signature import checksum as ck
from .context import ReqCtx
from .meta import headers_to_store
from .names import check_object_key
from .quotas import check_quotas

log = logging.getLogger(__name__)

INLINE_THRESHOLD = 3072
MAX_IN_FLIGHT = 3
# The version entry holds every block of the object and each write of it re-encodes it all:
# listing blocks one by one would cost O(blocks^2) for a large object.
VERSION_BATCH = 8
THREAD_MIN = 64 * 1024  # smaller blocks are hashed and packed inline: cheaper than a thread

Reader = Callable[[int], Awaitable[bytes]]


@dataclass
class Written:
    size: int
    checksums: ck.Checksums
    first_block: bytes | None  # None when inline
    inline: bytes | None


def new_checksummer(ctx: ReqCtx, algo: str | None) -> ck.Checksummer:
    body_sha = ctx.auth.content_sha256
    want_sha = len(body_sha) == 64 and not body_sha.startswith("STREAMING")
    return ck.Checksummer([algo] if algo else [], md5=True, sha256_hex=want_sha)


async def write_blocks(garage: Garage, version: bytes, part: int, read: Reader,
                       summer: ck.Checksummer, first: bytes,
                       pack: Callable[[bytes], tuple[bytes, DataBlock]] | None = None
                       ) -> tuple[int, bytes | None]:
    """Store blocks of (first + the rest of read()) for `version`; -> (size, first hash).
    `pack` turns plain data into a block (SSE-C encrypts there); the block manager's by
    default."""
    bs = garage.config.block_size
    bm = garage.block_manager
    packer = pack or bm.pack
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: list[asyncio.Task[bytes]] = []
    offset = 0
    # Checksums must see the blocks in order: a worker thread of this upload's own takes them
    # in turn, so hashing overlaps reading and storing instead of gating them.
    hasher: ThreadPoolExecutor | None = None
    summing: deque[asyncio.Future[None]] = deque()
    unlisted: dict[tuple[int, int], VersionBlock] = {}  # stored, not yet in the version

    async def list_stored() -> None:
        if unlisted:
            blocks = dict(unlisted)
            unlisted.clear()
            await garage.version_table.insert(Version(version, blocks=blocks))

    async def store(data: bytes, off: int, held: int) -> bytes:
        try:
            h, block = (packer(data) if len(data) < THREAD_MIN
                        else await asyncio.to_thread(packer, data))
            # Reference first, then write: GC never deletes a block between the two.
            await garage.block_ref_table.insert(BlockRef(h, version))
            await bm.put_block(h, block)
            unlisted[(part, off)] = VersionBlock(h, len(data))
            if len(unlisted) >= VERSION_BATCH:
                await list_stored()
            return h
        finally:
            sem.release()
            bm.ram_buffer.release(held)

    try:
        async with asyncio.TaskGroup() as tg:
            data = first
            while data:
                if hasher is None and len(data) < THREAD_MIN:
                    summer.update(data)
                else:
                    if hasher is None:
                        hasher = ThreadPoolExecutor(1, thread_name_prefix="put-checksum")
                    summing.append(loop.run_in_executor(hasher, summer.update, data))
                    if len(summing) > MAX_IN_FLIGHT:
                        await summing.popleft()
                # block_ram_buffer_max: room for this block from now until it is stored.
                held = await bm.ram_buffer.acquire(len(data))
                try:
                    await sem.acquire()
                    tasks.append(tg.create_task(store(data, offset, held)))
                except BaseException:
                    bm.ram_buffer.release(held)
                    raise
                offset += len(data)
                data = await read(bs)
            while summing:
                await summing.popleft()
    except BaseExceptionGroup as group:
        # The TaskGroup wraps the body's own error (a bad chunk signature or a cut body,
        # raised by read()) and its tasks' errors: the client gets the S3 error they carry.
        raise _first_error(group) from None
    finally:
        if hasher is not None:
            hasher.shutdown(wait=False, cancel_futures=True)
        await list_stored()  # on failure too: aborting the version frees what it lists
    return offset, (tasks[0].result() if tasks else None)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error a TaskGroup failure stands for: its first S3 error, else its first leaf."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        e = pending.pop(0)
        if isinstance(e, BaseExceptionGroup):
            pending[:0] = e.exceptions
        else:
            leaves.append(e)
    return next((e for e in leaves if isinstance(e, errors.S3Error)), leaves[0])


def verify_body_checksums(ctx: ReqCtx, w: Written, trailers: dict[str, str],
                          declared: tuple[str, str] | None) -> tuple[str, str] | None:
    """Compare what we computed with what the client declared; -> the checksum to store."""
    if ctx.auth.content_sha256 and len(ctx.auth.content_sha256) == 64 and \
            w.checksums.sha256_hex != ctx.auth.content_sha256.lower():
        raise errors.XAmzContentSHA256Mismatch()
    md5_hdr = ctx.headers.get("content-md5")
    if md5_hdr is not None and w.checksums.md5 is not None and \
            not ck.content_md5_matches(md5_hdr, w.checksums.md5):
        raise errors.BadDigest("The Content-MD5 you specified did not match what we received.")
    if declared is None:
        for name, value in trailers.items():
            if name.startswith("x-amz-checksum-"):
                declared = (name[len("x-amz-checksum-"):], value)
    if declared is not None:
        ck.verify(declared[1], declared[0], w.checksums)
        return declared
    algo = next(iter(w.checksums.extra), None)
    return (algo, w.checksums.extra[algo]) if algo else None


def checksum_algo_for(ctx: ReqCtx) -> tuple[str | None, tuple[str, str] | None]:
    lower = {k.lower(): v for k, v in ctx.headers.items()}
    declared = ck.parse_checksum_headers(lower)
    algo = declared[0] if declared else ck.requested_algorithm(lower)
    return algo, declared


async def handle_put_object(ctx: ReqCtx, read: Reader,
                            trailers: Callable[[], dict[str, str]]) -> web.StreamResponse:
    g = ctx.garage
    check_object_key(ctx.key)
    stored = headers_to_store(ctx.headers, list(ctx.headers.items()))
    algo, declared = checksum_algo_for(ctx)
    existing = await g.object_table.get(ctx.bucket_id, ctx.key.encode())
    ts = next_timestamp(SYSTEM_CLOCK, existing.newest_timestamp() if existing else None)
    vid = gen_uuid()
    summer = new_checksummer(ctx, algo)
    bs = g.config.block_size

    first = await read(bs)
    if len(first) < INLINE_THRESHOLD:
        rest = await read(bs)
        if not rest:  # small object: one metadata write, no blocks
            await asyncio.to_thread(summer.update, first)
            w = Written(len(first), summer.result(), None, first)
            checksum = verify_body_checksums(ctx, w, trailers(), declared)
            await check_quotas(ctx, w.size, existing)
            meta = ObjectMeta(w.size, _etag(w), stored, checksum)
            done = ObjectVersion(vid, ts, COMPLETE, kind=INLINE, meta=meta, inline=first)
            await g.object_table.insert(Object(ctx.bucket_id, ctx.key, [done]))
            return _put_response(vid, meta)
        first += rest

    if len(first) <= bs:
        more = await read(bs)
        if not more:
            async with g.block_manager.ram_buffer.hold(len(first)):  # block_ram_buffer_max
                return await _put_one_block(ctx, vid, ts, stored, summer, first,
                                            trailers, declared, existing)
        read = _prepend(more, read)

    uploading = ObjectVersion(vid, ts, UPLOADING, upload_headers=stored,
                              upload_checksum_algo=algo)
    await g.object_table.insert(Object(ctx.bucket_id, ctx.key, [uploading]))
    await g.version_table.insert(Version(vid, backlink=("object", ctx.bucket_id, ctx.key)))
    try:
        size, first_hash = await write_blocks(g, vid, 0, read, summer, first)
        w = Written(size, summer.result(), first_hash, None)
        checksum = verify_body_checksums(ctx, w, trailers(), declared)
        await check_quotas(ctx, w.size, existing)
    except BaseException:
        await _abort(g, ctx.bucket_id, ctx.key, uploading)
        raise
    meta = ObjectMeta(w.size, _etag(w), stored, checksum)
    done = ObjectVersion(vid, ts, COMPLETE, kind=FIRST_BLOCK, meta=meta, first_block=first_hash)
    await g.object_table.insert(Object(ctx.bucket_id, ctx.key, [done]))
    return _put_response(vid, meta)


def _prepend(data: bytes, read: Reader) -> Reader:
    """`read`, giving back `data` (already read, at most one block) first."""
    pending = [data]

    async def reader(n: int) -> bytes:
        return pending.pop() if pending else await read(n)
    return reader


async def _put_one_block(ctx: ReqCtx, vid: bytes, ts: int, stored: list[tuple[str, str]],
                         summer: ck.Checksummer, data: bytes,
                         trailers: Callable[[], dict[str, str]],
                         declared: tuple[str, str] | None,
                         existing: Object | None) -> web.StreamResponse:
    """The whole body is one block, already read: checksums are verified before anything is
    written, and no Uploading object entry is needed, since nothing is visible before the
    Complete one. Block reference, block, version with its block, then the object; a failure
    before the object entry unreferences the block; a crash leaves at most a version that no
    object points to."""
    g = ctx.garage
    bm = g.block_manager
    if len(data) < THREAD_MIN:
        summer.update(data)
        h, block = bm.pack(data)
    else:
        def sum_and_pack() -> tuple[bytes, DataBlock]:
            summer.update(data)
            return bm.pack(data)
        h, block = await asyncio.to_thread(sum_and_pack)
    w = Written(len(data), summer.result(), h, None)
    checksum = verify_body_checksums(ctx, w, trailers(), declared)
    await check_quotas(ctx, w.size, existing)
    try:
        # Reference first, then write: GC never deletes a block between the two.
        await g.block_ref_table.insert(BlockRef(h, vid))
        await bm.put_block(h, block)
        await g.version_table.insert(Version(vid, blocks={(0, 0): VersionBlock(h, len(data))},
                                             backlink=("object", ctx.bucket_id, ctx.key)))
    except BaseException:
        await _unreference(g, vid, h)
        raise
    meta = ObjectMeta(w.size, _etag(w), stored, checksum)
    done = ObjectVersion(vid, ts, COMPLETE, kind=FIRST_BLOCK, meta=meta, first_block=h)
    await g.object_table.insert(Object(ctx.bucket_id, ctx.key, [done]))
    return _put_response(vid, meta)


async def _unreference(g: Garage, vid: bytes, h: bytes) -> None:
    """Free the block of a single-block upload that failed before its object entry."""
    try:
        await asyncio.shield(g.version_table.insert(Version(vid, deleted=True)))
        await asyncio.shield(g.block_ref_table.insert(BlockRef(h, vid, deleted=True)))
    except Exception as e:  # the original error matters more
        log.warning("could not unreference failed upload %s: %s", vid.hex(), e)


def _etag(w: Written) -> str:
    assert w.checksums.md5 is not None
    return w.checksums.md5.hex()


def _put_response(vid: bytes, meta: ObjectMeta) -> web.Response:
    headers = {"ETag": f'"{meta.etag}"', "x-amz-version-id": vid.hex()}
    if meta.checksum:
        headers[f"x-amz-checksum-{meta.checksum[0]}"] = meta.checksum[1]
    return web.Response(status=200, headers=headers)


async def _abort(g: Garage, bucket_id: bytes, key: str, v: ObjectVersion) -> None:
    """Mark an interrupted upload Aborted so its blocks get freed; never visible."""
    try:
        aborted = ObjectVersion(v.uuid, v.timestamp, ABORTED, multipart=v.multipart)
        await asyncio.shield(g.object_table.insert(Object(bucket_id, key, [aborted])))
    except Exception as e:  # the original error matters more
        log.warning("could not mark aborted upload %s: %s", v.uuid.hex(), e)
