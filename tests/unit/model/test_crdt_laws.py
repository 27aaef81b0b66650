"""CRDT laws for every replicated entry type: merge is commutative, associative and
idempotent. Entries are compared by their encode() bytes (what replicas store and hash).

The generators only build states that real writes can produce: for one id, the fields that
a writer sets once (a version's timestamp, a block at (part, offset), a part's etag...) have
one value, while fields that are legitimately written concurrently vary freely.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from pygarage.model.bucket_table import Bucket
from pygarage.model.key_table import BucketAlias, Key
from pygarage.model.lifecycle import LifecycleRule, stored_rules
from pygarage.model.s3.block_ref_table import BlockRef
from pygarage.model.s3.mpu_table import MpuPart, MultipartUpload
from pygarage.model.s3.object_table import (
    ABORTED,
    COMPLETE,
    DELETE_MARKER,
    FIRST_BLOCK,
    INLINE,
    UPLOADING,
    Object,
    ObjectMeta,
    ObjectVersion,
)
from pygarage.model.s3.version_table import Version, VersionBlock
from pygarage.util.codec import packb
from pygarage.util.crdt.lww import lww_map_merge, lww_merge, lww_update

E = TypeVar("E")
SETTINGS = settings(max_examples=300, deadline=None)


def h(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def merged(decode: Callable[[bytes], Any], a: Any, b: Any) -> Any:
    """merge(a, b) without touching a or b."""
    out = decode(a.encode())
    out.merge(decode(b.encode()))
    return out


def check_laws(decode: Callable[[bytes], Any], a: Any, b: Any, c: Any) -> None:
    before = (a.encode(), b.encode(), c.encode())
    ab, ba = merged(decode, a, b), merged(decode, b, a)
    assert ab.encode() == ba.encode(), "merge is not commutative"
    left = merged(decode, ab, c)
    right = merged(decode, a, merged(decode, b, c))
    assert left.encode() == right.encode(), "merge is not associative"
    assert merged(decode, a, a).encode() == a.encode(), "merge is not idempotent"
    assert merged(decode, ab, a).encode() == ab.encode(), "merging a part back changes it"
    assert (a.encode(), b.encode(), c.encode()) == before, "merge mutated its argument"


# ---------------------------------------------------------------- LWW helpers

values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3) | st.binary(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner), max_leaves=6)
lww = st.tuples(st.integers(0, 4), values)
lww_map = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), lww, max_size=4)


@SETTINGS
@given(lww, lww, lww)
def test_lww_merge_laws(a: Any, b: Any, c: Any) -> None:
    assert packb(lww_merge(a, b)) == packb(lww_merge(b, a))
    assert packb(lww_merge(lww_merge(a, b), c)) == packb(lww_merge(a, lww_merge(b, c)))
    assert packb(lww_merge(a, a)) == packb(a)
    winner = lww_merge(a, b)
    assert winner[0] == max(a[0], b[0])
    assert packb(winner) in (packb(a), packb(b))


@SETTINGS
@given(lww_map, lww_map, lww_map)
def test_lww_map_merge_laws(a: Any, b: Any, c: Any) -> None:
    # Results are canonical (sorted by key): equal maps encode to equal bytes.
    assert packb(lww_map_merge(a, b)) == packb(lww_map_merge(b, a))
    assert packb(lww_map_merge(lww_map_merge(a, b), c)) == \
        packb(lww_map_merge(a, lww_map_merge(b, c)))
    assert packb(lww_map_merge(a, a)) == _canon(a)
    assert set(lww_map_merge(a, b)) == set(a) | set(b)
    a_copy = dict(a)
    lww_map_merge(a, b)
    assert a == a_copy, "lww_map_merge mutated its argument"


def _canon(m: dict[str, Any]) -> bytes:
    return packb(dict(sorted(m.items())))


@SETTINGS
@given(st.none() | lww, st.integers(0, 6), values)
def test_lww_update_is_always_newer(current: Any, ts: int, value: Any) -> None:
    new = lww_update(current, ts, value)
    assert new[1] is value
    if current is not None:
        assert new[0] > current[0]
        assert lww_merge(current, new) is new
        assert lww_merge(new, current) is new
    else:
        assert new[0] == ts


# ---------------------------------------------------------------- Object

BUCKET = h("bucket")
UUIDS = [h("version", i) for i in range(5)]


def _version_state(i: int, state: int, variant: int) -> ObjectVersion:
    uuid = UUIDS[i]
    ts = 1000 + (i // 2) * 10  # versions 0/1 and 2/3 share a timestamp: uuid breaks the tie
    multipart = i % 2 == 1
    if state == UPLOADING:
        return ObjectVersion(uuid, ts, UPLOADING, multipart=multipart,
                             upload_headers=[("content-type", f"t/{i}")],
                             upload_checksum_algo="crc32" if i == 3 else None)
    if state == ABORTED:
        return ObjectVersion(uuid, ts, ABORTED, multipart=multipart)
    kind = [DELETE_MARKER, INLINE, FIRST_BLOCK][(i + variant) % 3]
    if multipart:
        ts += 5  # a multipart upload completes with a new timestamp (the last to complete wins)
        kind = INLINE if kind == DELETE_MARKER else kind  # (inline when 0 bytes)
    if kind == DELETE_MARKER:
        return ObjectVersion(uuid, ts, COMPLETE, kind=DELETE_MARKER)
    meta = ObjectMeta(10 + variant, f"etag{i}{variant}", [("x-amz-meta-v", str(variant))],
                      ("crc32", "AAAAAA==") if variant else None, variant)
    if kind == INLINE:
        return ObjectVersion(uuid, ts, COMPLETE, multipart=multipart, kind=INLINE, meta=meta,
                             inline=bytes([variant]) * 3)
    return ObjectVersion(uuid, ts, COMPLETE, multipart=multipart, kind=FIRST_BLOCK, meta=meta,
                         first_block=h("block", i, variant))


object_versions = st.builds(_version_state, st.integers(0, len(UUIDS) - 1),
                            st.sampled_from([UPLOADING, COMPLETE, ABORTED]),
                            st.integers(0, 1))


@st.composite
def objects(draw: st.DrawFn) -> Object:
    vs = draw(st.lists(object_versions, max_size=4, unique_by=lambda v: v.uuid))
    o = Object(BUCKET, "some/key", [])
    # Stored objects are always the result of a merge (sorted, pruned).
    o.merge(Object(BUCKET, "some/key", vs))
    return o


@SETTINGS
@given(objects(), objects(), objects())
def test_object_laws(a: Object, b: Object, c: Object) -> None:
    check_laws(Object.decode, a, b, c)


@SETTINGS
@given(objects(), objects())
def test_object_merge_keeps_newest_complete(a: Object, b: Object) -> None:
    m = merged(Object.decode, a, b)
    assert [v.order() for v in m.versions] == sorted(v.order() for v in m.versions)
    aborted = {v.uuid for v in a.versions + b.versions if v.state == ABORTED}
    completes = [v for v in a.versions + b.versions if v.supersedes_older()]
    if completes:
        # The newest version that ever completed is the current one, unless it was aborted.
        newest = max(completes, key=ObjectVersion.order)
        last = m.last_complete()
        if newest.uuid in aborted:
            assert last is None
        else:
            assert last is not None and last.uuid == newest.uuid
    # Nothing older than the newest version that completed (even if aborted since) survives,
    # but multipart uploads: in progress, or as a tombstone once finished.
    cuts = [v.order() for v in m.versions if v.supersedes_older()]
    if cuts:
        assert all(v.order() >= max(cuts) or (v.multipart and v.state != COMPLETE)
                   for v in m.versions)


@SETTINGS
@given(objects(), objects())
def test_object_merge_keeps_uploads_in_progress(a: Object, b: Object) -> None:
    """A newer write never removes an upload in progress, whatever the merge order."""
    m = merged(Object.decode, a, b)
    finished = {v.uuid for v in a.versions + b.versions if v.state != UPLOADING}
    uploading = {v.uuid for v in a.versions + b.versions
                 if v.state == UPLOADING and v.multipart} - finished
    assert uploading <= {v.uuid for v in m.versions if v.state == UPLOADING}


def test_late_uploading_state_does_not_resurrect_a_finished_upload() -> None:
    up = ObjectVersion(UUIDS[1], 1000, UPLOADING, multipart=True)
    done = ObjectVersion(UUIDS[1], 1005, COMPLETE, multipart=True, kind=INLINE,
                         meta=ObjectMeta(1, "e", []), inline=b"x")
    newer = ObjectVersion(UUIDS[2], 1010, COMPLETE, kind=INLINE, meta=ObjectMeta(1, "f", []),
                          inline=b"y")
    o = Object(BUCKET, "k", [])
    o.merge(Object(BUCKET, "k", [done]))
    o.merge(Object(BUCKET, "k", [newer]))
    o.merge(Object(BUCKET, "k", [up]))
    assert [(v.uuid, v.state) for v in o.versions] == [(UUIDS[1], ABORTED), (UUIDS[2], COMPLETE)]


# ---------------------------------------------------------------- Version

VUUID = h("the version")
BACKLINKS: list[tuple[Any, ...]] = [(), ("mpu", VUUID), ("object", BUCKET, "k")]


def _block(part: int, off: int) -> VersionBlock:
    return VersionBlock(h("blk", part, off), 1000 + part * 7 + off)


@st.composite
def versions(draw: st.DrawFn) -> Version:
    keys = draw(st.lists(st.tuples(st.integers(1, 3), st.sampled_from([0, 1000, 2000])),
                         max_size=5, unique=True))
    deleted = draw(st.booleans())
    v = Version(VUUID, deleted=False, blocks={k: _block(*k) for k in keys},
                backlink=draw(st.sampled_from(BACKLINKS)))
    if deleted:
        v.merge(Version(VUUID, deleted=True))
    return v


@SETTINGS
@given(versions(), versions(), versions())
def test_version_laws(a: Version, b: Version, c: Version) -> None:
    check_laws(Version.decode, a, b, c)


@SETTINGS
@given(versions(), versions())
def test_version_deleted_absorbs(a: Version, b: Version) -> None:
    m = merged(Version.decode, a, b)
    assert m.deleted == (a.deleted or b.deleted)
    if m.deleted:
        assert m.blocks == {}
    else:
        assert set(m.blocks) == set(a.blocks) | set(b.blocks)


# ---------------------------------------------------------------- BlockRef

block_refs = st.builds(BlockRef, st.just(h("b")), st.just(h("v")), st.booleans())


@SETTINGS
@given(block_refs, block_refs, block_refs)
def test_block_ref_laws(a: BlockRef, b: BlockRef, c: BlockRef) -> None:
    check_laws(BlockRef.decode, a, b, c)


# ---------------------------------------------------------------- MultipartUpload

UPLOAD = h("upload")


@st.composite
def mpu_parts(draw: st.DrawFn) -> tuple[tuple[int, int], MpuPart]:
    n, ts = draw(st.integers(1, 3)), draw(st.sampled_from([10, 20]))
    # A part entry starts bare, then gets its etag/size/checksum (always the same ones).
    done = draw(st.booleans())
    return (n, ts), MpuPart(h("part", n, ts), f"etag{n}{ts}" if done else None,
                            n * 100 + ts if done else None,
                            draw(st.sampled_from([None, f"ck{n}{ts}"])) if done else None)


@st.composite
def mpus(draw: st.DrawFn) -> MultipartUpload:
    parts = dict(draw(st.lists(mpu_parts(), max_size=5)))
    m = MultipartUpload(UPLOAD, BUCKET, "key", 5, parts=parts)
    if draw(st.booleans()):
        m.merge(MultipartUpload(UPLOAD, BUCKET, "key", 5, deleted=True))
    return m


@SETTINGS
@given(mpus(), mpus(), mpus())
def test_multipart_upload_laws(a: MultipartUpload, b: MultipartUpload,
                               c: MultipartUpload) -> None:
    check_laws(MultipartUpload.decode, a, b, c)


@st.composite
def tied_mpus(draw: st.DrawFn) -> MultipartUpload:
    """Concurrent uploads of one part number in one millisecond: same (number, timestamp)
    key, different part versions, each bare or finished."""
    parts = {}
    for _ in range(draw(st.integers(0, 3))):
        n, which = draw(st.integers(1, 2)), draw(st.integers(0, 2))
        done = draw(st.booleans())
        parts[(n, 10)] = MpuPart(h("tied", n, which), f"etag{n}/{which}" if done else None,
                                 which if done else None, f"ck{which}" if done else None)
    m = MultipartUpload(UPLOAD, BUCKET, "key", 5, parts=parts)
    if draw(st.integers(0, 4)) == 0:
        m.merge(MultipartUpload(UPLOAD, BUCKET, "key", 5, deleted=True,
                                completed=[f"e{draw(st.integers(0, 2))}", None, None, 7]))
    return m


@SETTINGS
@given(tied_mpus(), tied_mpus(), tied_mpus())
def test_multipart_upload_laws_with_ties(a: MultipartUpload, b: MultipartUpload,
                                         c: MultipartUpload) -> None:
    check_laws(MultipartUpload.decode, a, b, c)
    m = merged(MultipartUpload.decode, a, b)
    for key, p in m.parts.items():
        # The winner is whole: never one upload's version with the other's ETag.
        assert p.etag is None or p.etag.endswith(
            f"/{[i for i in range(3) if h('tied', key[0], i) == p.version][0]}")


@SETTINGS
@given(mpus(), mpus())
def test_multipart_latest_parts_is_newest(a: MultipartUpload, b: MultipartUpload) -> None:
    m = merged(MultipartUpload.decode, a, b)
    for n, (ts, part) in m.latest_parts().items():
        done = [t for (pn, t), p in m.parts.items() if pn == n and p.etag is not None]
        assert ts == max(done)
        assert part.etag == f"etag{n}{ts}"


# ---------------------------------------------------------------- Bucket, Key, BucketAlias

perm = st.lists(st.booleans(), min_size=3, max_size=3)
small_lww_map = st.dictionaries(st.sampled_from(["x", "y", "z"]),
                                st.tuples(st.integers(0, 3), st.booleans()), max_size=3)


lifecycle_rules = st.builds(
    LifecycleRule, st.none() | st.sampled_from(["r1", "r2"]), st.booleans(),
    st.none() | st.sampled_from(["", "logs/"]), st.none() | st.integers(0, 9),
    st.none() | st.integers(10, 20), st.none() | st.integers(1, 3),
    st.none() | st.sampled_from(["2030-01-01"]), st.none() | st.integers(1, 3))


@st.composite
def buckets(draw: st.DrawFn) -> Bucket:
    b = Bucket(
        h("bucket id"), created=draw(st.integers(0, 3)), deleted=False,
        aliases=draw(small_lww_map), local_aliases=draw(small_lww_map),
        authorized_keys=draw(st.dictionaries(st.sampled_from(["GK1", "GK2"]),
                                             st.tuples(st.integers(0, 3), perm), max_size=2)),
        website=draw(st.tuples(st.integers(0, 3),
                               st.none() | st.fixed_dictionaries({"index": st.sampled_from(
                                   ["index.html", "i.htm"]), "error": st.none()}))),
        cors=draw(st.tuples(st.integers(0, 3), st.none() | st.lists(st.text(max_size=2),
                                                                    max_size=2))),
        lifecycle=draw(st.tuples(st.integers(0, 3), st.none() | st.lists(
            lifecycle_rules.map(LifecycleRule.to_stored), max_size=2))),
        quotas=draw(st.tuples(st.integers(0, 3), st.fixed_dictionaries(
            {"max_size": st.none() | st.integers(0, 9),
             "max_objects": st.none() | st.integers(0, 9)}))))
    if draw(st.booleans()):
        b.merge(Bucket(b.id, deleted=True))
    return b


@SETTINGS
@given(buckets(), buckets(), buckets())
def test_bucket_laws(a: Bucket, b: Bucket, c: Bucket) -> None:
    check_laws(Bucket.decode, a, b, c)


@SETTINGS
@given(buckets(), buckets())
def test_bucket_lifecycle_survives_merge_and_encoding(a: Bucket, b: Bucket) -> None:
    m = merged(Bucket.decode, a, b)
    if m.deleted:
        assert m.lifecycle == (0, None)
        return
    # The winner is one of the two writes, rules intact after the msgpack round trip.
    assert m.lifecycle in (a.lifecycle, b.lifecycle)
    assert stored_rules(m.lifecycle[1]) == stored_rules(
        (a.lifecycle if m.lifecycle == a.lifecycle else b.lifecycle)[1])


@st.composite
def keys(draw: st.DrawFn) -> Key:
    # Several secrets: concurrent creations of one key id must still merge deterministically.
    k = Key("GKtest", draw(st.sampled_from(["", "the-secret", "other-secret"])),
            created=draw(st.integers(0, 3)),
            name=draw(st.tuples(st.integers(0, 3), st.sampled_from(["", "a", "b"]))),
            allow_create_bucket=draw(st.tuples(st.integers(0, 3), st.booleans())),
            authorized_buckets=draw(st.dictionaries(
                st.sampled_from(["aa", "bb"]), st.tuples(st.integers(0, 3), perm), max_size=2)),
            local_aliases=draw(st.dictionaries(
                st.sampled_from(["l1", "l2"]),
                st.tuples(st.integers(0, 3), st.none() | st.sampled_from(["aa", "bb"])),
                max_size=2)))
    if draw(st.booleans()):
        k.merge(Key(k.key_id, "", deleted=True))
    return k


@SETTINGS
@given(keys(), keys(), keys())
def test_key_laws(a: Key, b: Key, c: Key) -> None:
    check_laws(Key.decode, a, b, c)


def test_key_secret_merge_is_order_independent() -> None:
    a, b = Key("GKtest", "secret-a", created=1), Key("GKtest", "secret-b", created=1)
    assert merged(Key.decode, a, b).secret == merged(Key.decode, b, a).secret == "secret-b"
    assert merged(Key.decode, a, Key("GKtest", "")).secret == "secret-a"


aliases = st.builds(BucketAlias, st.just("my-bucket"),
                    st.tuples(st.integers(0, 3), st.none() | st.sampled_from(["aa", "bb"])))


@SETTINGS
@given(aliases, aliases, aliases)
def test_bucket_alias_laws(a: BucketAlias, b: BucketAlias, c: BucketAlias) -> None:
    check_laws(BucketAlias.decode, a, b, c)
