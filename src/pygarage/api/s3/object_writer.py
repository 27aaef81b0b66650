"""Write a whole new object version from a stream of plain bytes, optionally SSE-C
encrypted: for the writes that are not a plain PutObject (SSE-C PutObject, copies that
decrypt or encrypt, PostObject). Small plaintext objects go inline in the object entry;
encrypted ones always go to blocks (except the empty object), so that only stream_blocks,
which refuses to serve an encrypted version without its key, ever reads their bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from ...model.s3.object_table import (
    COMPLETE,
    FIRST_BLOCK,
    INLINE,
    UPLOADING,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from ...model.s3.version_table import Version
from ...util.clock import SYSTEM_CLOCK, next_timestamp
from ...util.ids import gen_uuid
from ..common.signature import checksum as ck
from . import encryption, xml
from .context import ReqCtx
from .encryption import Sealed
from .get import stream_blocks
from .meta import headers_to_store
from .names import check_object_key
from .put import (
    INLINE_THRESHOLD,
    Reader,
    Written,
    _abort,
    _put_response,
    checksum_algo_for,
    new_checksummer,
    verify_body_checksums,
    write_blocks,
)
from .quotas import check_quotas

Verify = Callable[[Written], "tuple[str, str] | None"]


async def write_object(ctx: ReqCtx, key: str, read: Reader, stored: list[tuple[str, str]],
                       sse: Sealed | None, summer: ck.Checksummer, verify: Verify
                       ) -> ObjectVersion:
    """Store `read()`'s bytes as the new current version of `key`; verify(written) checks
    the checksums and returns the one to keep, before the version becomes visible."""
    g = ctx.garage
    existing = await g.object_table.get(ctx.bucket_id, key.encode())
    ts = next_timestamp(SYSTEM_CLOCK, existing.newest_timestamp() if existing else None)
    vid = gen_uuid()
    bs = g.config.block_size
    if sse is not None:
        stored = encryption.strip_stored(stored) + [sse.stored_header()]
    first = await read(bs)
    if not first or (sse is None and len(first) < INLINE_THRESHOLD):
        rest = await read(bs) if first else b""
        if not rest:
            summer.update(first)
            w = Written(len(first), summer.result(), None, first)
            meta = _meta(w, stored, sse, verify(w))
            await check_quotas(ctx, w.size, existing)
            done = ObjectVersion(vid, ts, COMPLETE, kind=INLINE, meta=meta, inline=first)
            await g.object_table.insert(Object(ctx.bucket_id, key, [done]))
            return done
        first += rest
    uploading = ObjectVersion(vid, ts, UPLOADING, upload_headers=stored)
    await g.object_table.insert(Object(ctx.bucket_id, key, [uploading]))
    await g.version_table.insert(Version(vid, backlink=("object", ctx.bucket_id, key)))
    try:
        size, first_hash = await write_blocks(g, vid, 0, read, summer, first,
                                              pack=sse.pack if sse is not None else None)
        w = Written(size, summer.result(), first_hash, None)
        meta = _meta(w, stored, sse, verify(w))
        await check_quotas(ctx, size, existing)  # over quota: aborted, its blocks freed
    except BaseException:
        await _abort(g, ctx.bucket_id, key, uploading)
        raise
    done = ObjectVersion(vid, ts, COMPLETE, kind=FIRST_BLOCK, meta=meta, first_block=first_hash)
    await g.object_table.insert(Object(ctx.bucket_id, key, [done]))
    return done


def _meta(w: Written, stored: list[tuple[str, str]], sse: Sealed | None,
          checksum: tuple[str, str] | None) -> ObjectMeta:
    assert w.checksums.md5 is not None
    return ObjectMeta(w.size, encryption.etag(sse, w.checksums.md5), stored, checksum)


async def put_encrypted(ctx: ReqCtx, read: Reader, trailers: Callable[[], dict[str, str]],
                        sse: Sealed) -> web.Response:
    """PutObject with SSE-C headers."""
    check_object_key(ctx.key)
    stored = headers_to_store(ctx.headers, list(ctx.headers.items()))
    algo, declared = checksum_algo_for(ctx)
    done = await write_object(ctx, ctx.key, read, stored, sse, new_checksummer(ctx, algo),
                              lambda w: verify_body_checksums(ctx, w, trailers(), declared))
    assert done.meta is not None
    resp = _put_response(done.uuid, done.meta)
    resp.headers.update(encryption.response_headers(sse))
    return resp


def chunk_reader(chunks: AsyncIterator[bytes]) -> Reader:
    """A Reader (read(n) -> up to n bytes, fewer only at the end) over a chunk stream."""
    buf = bytearray()
    done = False

    async def read(n: int) -> bytes:
        nonlocal done
        while len(buf) < n and not done:
            try:
                buf.extend(await anext(chunks))
            except StopAsyncIteration:
                done = True
        out = bytes(buf[:n])
        del buf[:n]
        return out
    return read


def source_reader(ctx: ReqCtx, src: ObjectVersion, src_sse: Sealed | None,
                  start: int, end: int) -> Reader:
    """Plain bytes [start, end) of a source version, decrypted if it is SSE-C."""
    if src.inline is not None:
        data = src.inline[start:end]

        async def one() -> AsyncIterator[bytes]:
            yield data
        return chunk_reader(one())
    return chunk_reader(stream_blocks(ctx.garage, src, start, end,
                                      decrypt=src_sse.decrypt if src_sse else None))


async def copy_reencrypt(ctx: ReqCtx, src: ObjectVersion, src_sse: Sealed | None,
                         dst_sse: Sealed | None, headers: list[tuple[str, str]]
                         ) -> web.Response:
    """CopyObject from or to an SSE-C object: the data is decrypted and written again
    (blocks cannot be shared: they are encrypted under another key, or not at all)."""
    assert src.meta is not None
    algo = src.meta.checksum[0] if src.meta.checksum else None
    summer = ck.Checksummer([algo] if algo else [], md5=True)

    def verify(w: Written) -> tuple[str, str] | None:
        # Recomputed over the whole data: a multipart source's composite checksum does
        # not describe the new single-part object.
        return (algo, w.checksums.extra[algo]) if algo else None

    read = source_reader(ctx, src, src_sse, 0, src.meta.size)
    stored = encryption.strip_stored(headers)
    done = await write_object(ctx, ctx.key, read, stored, dst_sse, summer, verify)
    assert done.meta is not None
    out = {"x-amz-version-id": done.uuid.hex(), "x-amz-copy-source-version-id": src.uuid.hex()}
    out.update(encryption.response_headers(dst_sse))
    return web.Response(body=xml.copy_object_xml(done.meta.etag, done.timestamp),
                        content_type="application/xml", headers=out)
