"""The open-file limit and what it allows: every connection is a file descriptor, and a
server that runs out of them can no longer accept anyone, nor open a block file."""

from __future__ import annotations

import resource

# Descriptors kept for everything that is not an HTTP connection: the database, block files
# read and written by the thread pool, RPC links, logs, and a burst of connections accepted
# in one event-loop turn before the cap closes them (asyncio accepts up to its backlog).
RESERVED_FDS = 512


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (allowed without privileges).
    -> the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    except (ValueError, OSError):
        return soft


def connection_cap(configured: int, fd_limit: int) -> int:
    """The HTTP connection cap actually used: the configured one, lowered so that the
    connections can never take the descriptors the rest of the server needs."""
    return max(16, min(configured, fd_limit - RESERVED_FDS))
