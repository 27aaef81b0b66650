"""Host names to bucket names (pure)."""

from __future__ import annotations


def host_to_bucket(host: str, root_domain: str) -> str | None:
    """'photos.s3.example.org' with root '.s3.example.org' -> 'photos'; None when the host
    is not strictly under the root domain (the root itself included)."""
    root = root_domain.lower().lstrip(".")
    host = host.lower()
    if not root or not host.endswith("." + root):
        return None
    bucket = host[: -len(root) - 1]
    return bucket or None
