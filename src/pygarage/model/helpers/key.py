"""Access keys: create, import, find by id prefix or name, rename, flags, delete."""

from __future__ import annotations

import re

from ...util.clock import now_msec
from ...util.crdt.lww import lww_update
from ...util.ids import gen_key_id, gen_secret, is_key_id
from ..garage import Garage
from ..key_table import Key
from .errors import BadRequest, NoSuchKeyErr


class KeyHelper:
    def __init__(self, garage: Garage):
        self.g = garage

    async def get(self, key_id: str) -> Key | None:
        k = await self.g.key_table.get(key_id.encode())
        return None if k is None or k.deleted else k

    async def get_existing(self, key_id: str) -> Key:
        k = await self.get(key_id)
        if k is None:
            raise NoSuchKeyErr(f"access key not found: {key_id}")
        return k

    async def list_all(self) -> list[Key]:
        keys = await self.g.key_table.get_all_local()
        return sorted((k for k in keys if not k.deleted), key=lambda k: k.created)

    async def search(self, pattern: str) -> Key:
        """By exact id, id prefix, or exact name; ambiguous patterns are an error."""
        exact = await self.get(pattern)
        if exact:
            return exact
        keys = await self.list_all()
        found = [k for k in keys if k.key_id.startswith(pattern)] or \
            [k for k in keys if k.name[1] == pattern]
        if not found:
            raise NoSuchKeyErr(f"no access key matches {pattern!r}")
        if len(found) > 1:
            raise BadRequest(f"{pattern!r} matches {len(found)} keys; be more specific")
        return found[0]

    async def create(self, name: str, allow_create_bucket: bool = False) -> Key:
        now = now_msec()
        k = Key(gen_key_id(), gen_secret(), created=now, name=(now, name),
                allow_create_bucket=(now, allow_create_bucket))
        await self.g.key_table.insert(k)
        return k

    async def import_key(self, key_id: str, secret: str, name: str) -> Key:
        if not is_key_id(key_id):
            raise BadRequest("the key id must be 'GK' followed by 24 hex digits")
        if not re.fullmatch(r"[0-9a-f]{64}", secret):
            raise BadRequest("the secret key must be 64 hex digits")
        existing = await self.g.key_table.get(key_id.encode())
        if existing is not None:
            raise BadRequest(f"key {key_id} already exists"
                             + (" (it was deleted and cannot be re-imported)"
                                if existing.deleted else ""))
        now = now_msec()
        k = Key(key_id, secret, created=now, name=(now, name))
        await self.g.key_table.insert(k)
        return k

    async def update(self, k: Key, *, name: str | None = None,
                     allow_create_bucket: bool | None = None) -> Key:
        now = now_msec()
        if name is not None:
            k.name = lww_update(k.name, now, name)
        if allow_create_bucket is not None:
            k.allow_create_bucket = lww_update(k.allow_create_bucket, now, allow_create_bucket)
        await self.g.key_table.insert(k)
        return k

    async def delete(self, k: Key) -> None:
        from .bucket import BucketHelper
        bh = BucketHelper(self.g)
        for bucket_hex in list(k.authorized_buckets):
            b = await bh.get(bytes.fromhex(bucket_hex))
            if b is not None:
                await bh.set_permissions(b, k, False, False, False)
        for alias, (_, target) in list(k.local_aliases.items()):
            if target:
                b = await bh.get(bytes.fromhex(target))
                if b is not None:
                    await bh.unalias_local(b, k, alias, force=True)
        k = await self.get_existing(k.key_id)
        k.deleted = True
        k.merge(k)
        await self.g.key_table.insert(k)
