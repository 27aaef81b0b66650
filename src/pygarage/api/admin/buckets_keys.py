"""Admin endpoints for buckets and access keys (Garage admin API v2 shapes)."""

from __future__ import annotations

from typing import Any

from ...model.bucket_table import Bucket
from ...model.garage import Garage
from ...model.helpers.bucket import BucketHelper
from ...model.helpers.bucket_lifecycle import NameTaken
from ...model.helpers.errors import HelperError
from ...model.helpers.key import KeyHelper
from ...model.key_table import Key
from ...util.clock import msec_to_rfc3339
from ..s3.names import check_bucket_name
from .errors import AdminError, bad_request


def helper_error(e: HelperError) -> AdminError:
    return AdminError(e.status, e.code, str(e))


def _perm(p: tuple[bool, bool, bool]) -> dict[str, bool]:
    return {"read": p[0], "write": p[1], "owner": p[2]}


def _check_name(g: Garage, name: str) -> None:
    try:
        check_bucket_name(name, g.config.allow_punycode)
    except Exception as e:
        raise bad_request(f"invalid bucket name {name!r}: {getattr(e, 'message', e)}") from None


async def bucket_info(g: Garage, b: Bucket) -> dict[str, Any]:
    keys = []
    for key_id, (_, perm) in sorted(b.authorized_keys.items()):
        if not any(perm):
            continue
        k = await KeyHelper(g).get(key_id)
        if k is None:
            continue
        keys.append({"accessKeyId": key_id, "name": k.name[1],
                     "permissions": _perm(tuple(perm)),  # type: ignore[arg-type]
                     "bucketLocalAliases": [a for a, (_, t) in k.local_aliases.items()
                                            if t == b.id.hex()]})
    c = await BucketHelper(g).usage(b.id)
    web = b.website[1]
    quotas = b.quotas[1] or {}
    return {"id": b.id.hex(), "created": msec_to_rfc3339(b.created),
            "globalAliases": b.global_aliases(),
            "websiteAccess": web is not None,
            "websiteConfig": ({"indexDocument": web.get("index"),
                               "errorDocument": web.get("error")} if web else None),
            "keys": keys, "objects": c["objects"], "bytes": c["bytes"],
            "unfinishedUploads": c["unfinished_uploads"],
            "unfinishedMultipartUploads": c["unfinished_uploads"],
            "unfinishedMultipartUploadParts": c["mpu_parts"],
            "unfinishedMultipartUploadBytes": c["mpu_bytes"],
            "quotas": {"maxSize": quotas.get("max_size"),
                       "maxObjects": quotas.get("max_objects")}}


async def key_info(g: Garage, k: Key, show_secret: bool) -> dict[str, Any]:
    buckets = []
    bh = BucketHelper(g)
    ids = {h for h, (_, p) in k.authorized_buckets.items() if any(p)} | {
        t for _, (_, t) in k.local_aliases.items() if t}
    for h in sorted(ids):
        b = await bh.get(bytes.fromhex(h))
        if b is None:
            continue
        buckets.append({"id": h, "globalAliases": b.global_aliases(),
                        "localAliases": [a for a, (_, t) in k.local_aliases.items() if t == h],
                        "permissions": _perm(k.permissions(b.id))})
    return {"accessKeyId": k.key_id, "name": k.name[1],
            "secretAccessKey": k.secret if show_secret else None,
            "created": msec_to_rfc3339(k.created), "expiration": None, "expired": False,
            "permissions": {"createBucket": bool(k.allow_create_bucket[1])},
            "buckets": buckets}


async def _find_bucket(g: Garage, q: dict[str, str]) -> Bucket:
    bh = BucketHelper(g)
    if q.get("id"):
        try:
            return await bh.get_existing(bytes.fromhex(q["id"]))
        except ValueError:
            raise bad_request("invalid bucket id") from None
    if q.get("globalAlias"):
        bid = await bh.resolve_global(q["globalAlias"])
        if bid is None:
            raise AdminError(404, "NoSuchBucket", f"bucket not found: {q['globalAlias']}")
        return await bh.get_existing(bid)
    if q.get("search"):
        return await bh.search(q["search"])
    raise bad_request("give id, globalAlias or search")


async def _find_key(g: Garage, q: dict[str, Any]) -> Key:
    kh = KeyHelper(g)
    if q.get("id"):
        return await kh.get_existing(str(q["id"]))
    if q.get("accessKeyId"):
        return await kh.get_existing(str(q["accessKeyId"]))
    if q.get("search"):
        return await kh.search(str(q["search"]))
    raise bad_request("give id or search")


async def call(g: Garage, endpoint: str, q: dict[str, str], body: Any) -> Any:
    try:
        return await _call(g, endpoint, q, body if body is not None else {})
    except HelperError as e:
        raise helper_error(e) from None


async def _call(g: Garage, ep: str, q: dict[str, str], body: Any) -> Any:
    bh, kh = BucketHelper(g), KeyHelper(g)
    if ep == "ListBuckets":
        return [{"id": b.id.hex(), "created": msec_to_rfc3339(b.created),
                 "globalAliases": b.global_aliases(),
                 "localAliases": [{"accessKeyId": k, "alias": a}
                                  for k, a in b.local_alias_list()]}
                for b in await bh.list_all()]
    if ep == "GetBucketInfo":
        return await bucket_info(g, await _find_bucket(g, q))
    if ep == "CreateBucket":
        if body.get("globalAlias"):
            _check_name(g, body["globalAlias"])
            b = await bh.create(body["globalAlias"])
        elif body.get("localAlias"):
            la = body["localAlias"]
            _check_name(g, la["alias"])
            k = await kh.get_existing(la["accessKeyId"])
            allow = la.get("allow") or {}
            perm = (bool(allow.get("read")), bool(allow.get("write")), bool(allow.get("owner")))
            try:  # the name is checked free and claimed in one step
                b = await bh.create_local(k, la["alias"], perm, shadow_global=True)
            except NameTaken:
                raise AdminError(409, "BucketAlreadyExists", "local alias already in use") \
                    from None
        else:
            b = await bh.create(None)
        return await bucket_info(g, await bh.get_existing(b.id))
    if ep == "DeleteBucket":
        await bh.delete(await _find_bucket(g, q))
        return {}
    if ep == "UpdateBucket":
        b = await _find_bucket(g, q)
        if "websiteAccess" in body and body["websiteAccess"] is not None:
            wa = body["websiteAccess"]
            if wa.get("enabled"):
                web_cfg = g.config.s3_web
                index = wa.get("indexDocument") or (web_cfg.index if web_cfg else "index.html")
                if "/" in index:
                    # As PutBucketWebsite: the suffix is appended to folder paths.
                    raise bad_request("indexDocument must not contain '/'")
                await bh.set_website(b, {"index": index, "error": wa.get("errorDocument") or None,
                                         "redirect_all": None, "routing_rules": []})
            else:
                await bh.set_website(b, None)
        if body.get("quotas") is not None:
            qt = body["quotas"]
            await bh.set_quotas(await bh.get_existing(b.id), _quota(qt, "maxSize"),
                                _quota(qt, "maxObjects"))
        return await bucket_info(g, await bh.get_existing(b.id))
    if ep in ("AllowBucketKey", "DenyBucketKey"):
        b = await bh.get_existing(_hex(body.get("bucketId")))
        k = await kh.get_existing(str(body.get("accessKeyId")))
        p = body.get("permissions") or {}
        cur = list(b.permissions(k.key_id))
        for i, f in enumerate(("read", "write", "owner")):
            if p.get(f):
                cur[i] = ep == "AllowBucketKey"
        await bh.set_permissions(b, k, cur[0], cur[1], cur[2])
        return await bucket_info(g, await bh.get_existing(b.id))
    if ep in ("AddBucketAlias", "RemoveBucketAlias"):
        b = await bh.get_existing(_hex(body.get("bucketId")))
        add = ep == "AddBucketAlias"
        if body.get("globalAlias"):
            if add:
                _check_name(g, body["globalAlias"])
                await bh.alias_global(b, body["globalAlias"])
            else:
                await bh.unalias_global(b, body["globalAlias"])
        elif body.get("localAlias"):
            k = await kh.get_existing(str(body.get("accessKeyId")))
            if add:
                _check_name(g, body["localAlias"])
                await bh.alias_local(b, k, body["localAlias"])
            else:
                await bh.unalias_local(b, k, body["localAlias"])
        else:
            raise bad_request("give globalAlias, or localAlias and accessKeyId")
        return await bucket_info(g, await bh.get_existing(b.id))
    if ep == "ListKeys":
        return [{"id": k.key_id, "name": k.name[1], "created": msec_to_rfc3339(k.created),
                 "expiration": None, "expired": False} for k in await kh.list_all()]
    if ep == "GetKeyInfo":
        show = str(q.get("showSecretKey", "false")).lower() == "true"
        return await key_info(g, await _find_key(g, q), show)
    if ep == "CreateKey":
        k = await kh.create(str(body.get("name") or "Unnamed key"))
        allow = body.get("allow") or {}
        if allow.get("createBucket"):
            k = await kh.update(k, allow_create_bucket=True)
        return await key_info(g, k, True)
    if ep == "ImportKey":
        k = await kh.import_key(str(body.get("accessKeyId", "")),
                                str(body.get("secretAccessKey", "")),
                                str(body.get("name") or "Imported key"))
        return await key_info(g, k, True)
    if ep == "UpdateKey":
        k = await _find_key(g, q)
        acb = None
        if (body.get("allow") or {}).get("createBucket"):
            acb = True
        if (body.get("deny") or {}).get("createBucket"):
            acb = False
        k = await kh.update(k, name=body.get("name"), allow_create_bucket=acb)
        return await key_info(g, k, False)
    if ep == "DeleteKey":
        await kh.delete(await _find_key(g, q))
        return {}
    raise AdminError(400, "InvalidRequest", f"unknown admin endpoint: {ep}")


MAX_U64 = 2**64 - 1


def _quota(qt: dict[str, Any], name: str) -> int | None:
    """A quota is absent (null: no limit) or a u64, as in Garage."""
    v = qt.get(name)
    if v is not None and not 0 <= v <= MAX_U64:
        raise bad_request(f"body.quotas.{name} must be null or an integer between 0 and "
                          f"{MAX_U64}")
    return v if v is None else int(v)


def _hex(v: Any) -> bytes:
    try:
        return bytes.fromhex(str(v))
    except ValueError:
        raise bad_request(f"invalid id: {v!r}") from None
