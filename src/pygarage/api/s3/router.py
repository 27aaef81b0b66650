"""Request -> Endpoint (pure): which S3 operation a method, path and query name.

Path-style (/bucket/key) always works; vhost-style (bucket.<root_domain>) when root_domain
is set. Keys are percent-decoded from the raw path, never normalised: `a/../b` is a key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from ..common import errors

# Sub-resources pygarage does not implement: answered 501 NotImplemented, by name.
_UNSUPPORTED_BUCKET = {
    "policy": "BucketPolicy", "policyStatus": "BucketPolicyStatus", "tagging": "BucketTagging",
    "encryption": "BucketEncryption", "replication": "BucketReplication",
    "logging": "BucketLogging", "notification": "BucketNotification",
    "object-lock": "ObjectLockConfiguration", "ownershipControls": "BucketOwnershipControls",
    "publicAccessBlock": "PublicAccessBlock", "requestPayment": "BucketRequestPayment",
    "accelerate": "BucketAccelerateConfiguration", "analytics": "BucketAnalyticsConfiguration",
    "inventory": "BucketInventoryConfiguration", "metrics": "BucketMetricsConfiguration",
    "intelligent-tiering": "BucketIntelligentTieringConfiguration",
}
_UNSUPPORTED_OBJECT = {
    "acl": "ObjectAcl", "tagging": "ObjectTagging", "retention": "ObjectRetention",
    "legal-hold": "ObjectLegalHold", "torrent": "ObjectTorrent", "restore": "RestoreObject",
    "select": "SelectObjectContent",
}


@dataclass(frozen=True)
class Endpoint:
    name: str
    bucket: str | None = None
    key: str | None = None


def split_path(raw_path: str, host: str | None, root_domain: str | None
               ) -> tuple[str | None, str | None]:
    """-> (bucket, key), decoded. Key None means a bucket-level request."""
    path = raw_path.split("?", 1)[0]
    if root_domain and host:
        hostname = _strip_port(host).lower()
        suffix = root_domain.lower()
        if not suffix.startswith("."):
            suffix = "." + suffix
        if hostname.endswith(suffix) and len(hostname) > len(suffix):
            bucket = hostname[: -len(suffix)]
            key = _decode(path[1:]) if path.startswith("/") else _decode(path)
            return bucket, key or None
    if not path.startswith("/"):
        raise errors.InvalidRequest("invalid request path")
    rest = path[1:]
    if not rest:
        return None, None
    bucket_raw, sep, key_raw = rest.partition("/")
    bucket = _decode(bucket_raw)
    key = _decode(key_raw) if sep else ""
    return bucket, key or None


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _decode(s: str) -> str:
    try:
        return unquote_to_bytes(s).decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidRequest("object key is not valid UTF-8") from None


def route(method: str, bucket: str | None, key: str | None, query: Mapping[str, str],
          headers: Mapping[str, str]) -> Endpoint:
    def ep(name: str) -> Endpoint:
        return Endpoint(name, bucket, key)

    if method == "OPTIONS":
        return ep("Options")
    if bucket is None:
        if method in ("GET", "HEAD"):
            return ep("ListBuckets")
        raise errors.MethodNotAllowed()
    if key is None:
        return _route_bucket(method, query, ep)
    return _route_object(method, query, headers, ep)


def _not_implemented(what: str) -> errors.S3Error:
    return errors.NotImplementedErr(f"{what} is not implemented by pygarage")


def _route_bucket(method: str, q: Mapping[str, str], make: Callable[[str], Endpoint]
                  ) -> Endpoint:
    for sub, what in _UNSUPPORTED_BUCKET.items():
        if sub in q:
            raise _not_implemented(("Get" if method == "GET" else method.title()) + what)
    if method == "HEAD":
        return make("HeadBucket")
    if method == "GET":
        for sub, name in (("location", "GetBucketLocation"), ("versioning", "GetBucketVersioning"),
                          ("uploads", "ListMultipartUploads"), ("versions", "ListObjectVersions"),
                          ("cors", "GetBucketCors"), ("website", "GetBucketWebsite"),
                          ("lifecycle", "GetBucketLifecycle"), ("acl", "GetBucketAcl")):
            if sub in q:
                return make(name)
        if "list-type" in q:
            if q["list-type"] != "2":
                raise errors.InvalidArgument("list-type must be 2")
            return make("ListObjectsV2")
        return make("ListObjects")
    if method == "PUT":
        for sub, name in (("cors", "PutBucketCors"), ("website", "PutBucketWebsite"),
                          ("lifecycle", "PutBucketLifecycle"),
                          ("versioning", "PutBucketVersioning"), ("acl", "PutBucketAcl")):
            if sub in q:
                return make(name)
        return make("CreateBucket")
    if method == "DELETE":
        for sub, name in (("cors", "DeleteBucketCors"), ("website", "DeleteBucketWebsite"),
                          ("lifecycle", "DeleteBucketLifecycle")):
            if sub in q:
                return make(name)
        return make("DeleteBucket")
    if method == "POST":
        if "delete" in q:
            return make("DeleteObjects")
        return make("PostObject")
    raise errors.MethodNotAllowed()


def _route_object(method: str, q: Mapping[str, str], h: Mapping[str, str],
                  make: Callable[[str], Endpoint]) -> Endpoint:
    for sub, what in _UNSUPPORTED_OBJECT.items():
        if sub in q:
            raise _not_implemented(("Get" if method == "GET" else method.title()) + what)
    if method == "GET":
        if "uploadId" in q:
            return make("ListParts")
        if "attributes" in q:
            return make("GetObjectAttributes")
        return make("GetObject")
    if method == "HEAD":
        return make("HeadObject")
    if method == "PUT":
        copy = "x-amz-copy-source" in h
        if "partNumber" in q or "uploadId" in q:
            if "partNumber" not in q or "uploadId" not in q:
                raise errors.InvalidRequest("UploadPart needs both partNumber and uploadId")
            return make("UploadPartCopy" if copy else "UploadPart")
        return make("CopyObject" if copy else "PutObject")
    if method == "POST":
        if "uploads" in q:
            return make("CreateMultipartUpload")
        if "uploadId" in q:
            return make("CompleteMultipartUpload")
        raise errors.InvalidRequest("unsupported POST on an object")
    if method == "DELETE":
        if "uploadId" in q:
            return make("AbortMultipartUpload")
        return make("DeleteObject")
    raise errors.MethodNotAllowed()
