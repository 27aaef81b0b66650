"""Buckets: create, resolve names (a key's local aliases first, then global aliases),
aliases, permissions on both sides, website and quotas, deletion when empty.
Callers check alias names against S3 rules first (that check lives in api/)."""

from __future__ import annotations

import asyncio
from typing import Any

from ...util.clock import now_msec
from ...util.crdt.lww import lww_update
from ..bucket_table import Bucket
from ..garage import Garage
from ..key_table import BucketAlias, Key
from .bucket_lifecycle import NameTaken, create_bucket, delete_bucket
from .errors import BadRequest, BucketAlreadyExistsErr, NoSuchBucketErr


class BucketHelper:
    def __init__(self, garage: Garage):
        self.g = garage

    async def get(self, bucket_id: bytes) -> Bucket | None:
        b = await self.g.bucket_table.get(bucket_id)
        return None if b is None or b.deleted else b

    async def get_existing(self, bucket_id: bytes) -> Bucket:
        b = await self.get(bucket_id)
        if b is None:
            raise NoSuchBucketErr(f"bucket not found: {bucket_id.hex()}")
        return b

    async def list_all(self) -> list[Bucket]:
        return sorted((b for b in await self.g.bucket_table.get_all_local() if not b.deleted),
                      key=lambda b: b.created)

    async def resolve_global(self, name: str) -> bytes | None:
        a = await self.g.bucket_alias_table.get(name.encode())
        return a.bucket_id() if a else None

    async def resolve(self, name: str, key: Key | None) -> bytes | None:
        if key is not None:
            local = key.local_alias(name)
            if local is not None:
                return local
        return await self.resolve_global(name)

    async def search(self, pattern: str) -> Bucket:
        """By global alias, full id, or id prefix."""
        bid = await self.resolve_global(pattern)
        if bid is not None:
            return await self.get_existing(bid)
        if len(pattern) == 64:
            try:
                b = await self.get(bytes.fromhex(pattern))
            except ValueError:
                b = None
            if b:
                return b
        found = [b for b in await self.list_all() if pattern and b.id.hex().startswith(pattern)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise BadRequest(f"{pattern!r} matches {len(found)} buckets; be more specific")
        raise NoSuchBucketErr(f"bucket not found: {pattern}")

    # -- creation and deletion
    async def create(self, global_alias: str | None = None) -> Bucket:
        try:
            b = await create_bucket(self.g, global_alias)
        except NameTaken:
            raise BucketAlreadyExistsErr(f"bucket {global_alias!r} already exists") from None
        await asyncio.sleep(0)
        return b

    async def create_local(self, key: Key, alias: str, perm: tuple[bool, bool, bool],
                           shadow_global: bool = False) -> Bucket:
        """A new bucket named `alias` in the key's namespace; NameTaken if in use."""
        b = await create_bucket(self.g, None, (key.key_id, alias, perm), shadow_global)
        await asyncio.sleep(0)
        return b

    async def delete(self, b: Bucket) -> None:
        """Raises BucketNotEmptyErr if the bucket holds objects or a PutObject in progress;
        unfinished multipart uploads are aborted (see bucket_lifecycle for the design)."""
        await delete_bucket(self.g, b.id)
        await asyncio.sleep(0)

    # -- aliases
    async def alias_global(self, b: Bucket, alias: str) -> None:
        current = await self.resolve_global(alias)
        if current is not None and current != b.id:
            raise BadRequest(f"alias {alias!r} already points to another bucket")
        now = now_msec()
        a = await self.g.bucket_alias_table.get(alias.encode()) or BucketAlias(alias)
        a.state = lww_update(a.state, now, b.id.hex())
        await self.g.bucket_alias_table.insert(a)
        b.aliases[alias] = lww_update(b.aliases.get(alias), now, True)
        await self.g.bucket_table.insert(b)

    def _n_aliases(self, b: Bucket) -> int:
        return len(b.global_aliases()) + len(b.local_alias_list())

    async def unalias_global(self, b: Bucket, alias: str, force: bool = False) -> None:
        if alias not in b.global_aliases():
            raise BadRequest(f"bucket has no global alias {alias!r}")
        if not force and self._n_aliases(b) <= 1:
            raise BadRequest("cannot remove the last alias of a bucket (delete the bucket "
                             "instead, or add another alias first)")
        now = now_msec()
        a = await self.g.bucket_alias_table.get(alias.encode()) or BucketAlias(alias)
        a.state = lww_update(a.state, now, None)
        await self.g.bucket_alias_table.insert(a)
        b.aliases[alias] = lww_update(b.aliases.get(alias), now, False)
        await self.g.bucket_table.insert(b)

    async def alias_local(self, b: Bucket, k: Key, alias: str) -> None:
        existing = k.local_alias(alias)
        if existing is not None and existing != b.id:
            raise BadRequest(f"key already has a local alias {alias!r} for another bucket")
        now = now_msec()
        k.local_aliases[alias] = lww_update(k.local_aliases.get(alias), now, b.id.hex())
        await self.g.key_table.insert(k)
        lk = f"{k.key_id}/{alias}"
        b.local_aliases[lk] = lww_update(b.local_aliases.get(lk), now, True)
        await self.g.bucket_table.insert(b)

    async def unalias_local(self, b: Bucket, k: Key, alias: str, force: bool = False) -> None:
        if k.local_alias(alias) != b.id:
            raise BadRequest(f"key has no local alias {alias!r} for this bucket")
        if not force and self._n_aliases(b) <= 1:
            raise BadRequest("cannot remove the last alias of a bucket")
        now = now_msec()
        k.local_aliases[alias] = lww_update(k.local_aliases.get(alias), now, None)
        await self.g.key_table.insert(k)
        lk = f"{k.key_id}/{alias}"
        b.local_aliases[lk] = lww_update(b.local_aliases.get(lk), now, False)
        await self.g.bucket_table.insert(b)

    # -- permissions, stored on both the bucket and the key
    async def set_permissions(self, b: Bucket, k: Key, read: bool, write: bool,
                              owner: bool) -> None:
        now = now_msec()
        perm = [read, write, owner]
        b.authorized_keys[k.key_id] = lww_update(b.authorized_keys.get(k.key_id), now, perm)
        await self.g.bucket_table.insert(b)
        bh = b.id.hex()
        k.authorized_buckets[bh] = lww_update(k.authorized_buckets.get(bh), now, perm)
        await self.g.key_table.insert(k)

    async def set_website(self, b: Bucket, config: dict[str, Any] | None) -> None:
        b.website = lww_update(b.website, now_msec(), config)
        await self.g.bucket_table.insert(b)

    async def set_cors(self, b: Bucket, rules: list[Any] | None) -> None:
        b.cors = lww_update(b.cors, now_msec(), rules)
        await self.g.bucket_table.insert(b)

    async def set_lifecycle(self, b: Bucket, rules: list[dict[str, Any]] | None) -> None:
        b.lifecycle = lww_update(b.lifecycle, now_msec(), rules)
        await self.g.bucket_table.insert(b)

    async def usage(self, bucket_id: bytes) -> dict[str, int]:
        """The bucket's counters (objects, bytes, unfinished uploads...): the one place
        quotas and bucket info read them. Exact in a cluster: see model/counters.py."""
        return await self.g.counters.usage(bucket_id)

    async def set_quotas(self, b: Bucket, max_size: int | None, max_objects: int | None) -> None:
        b.quotas = lww_update(b.quotas, now_msec(),
                              {"max_size": max_size, "max_objects": max_objects})
        await self.g.bucket_table.insert(b)
