"""Errors below the API layer. The API maps every one of them to 503 ServiceUnavailable.

    GarageError
    ├── LayoutNotReady    no layout applied yet: nobody owns any partition
    ├── QuorumError       not enough nodes answered
    ├── CorruptData       a block's content does not match its hash
    └── MissingBlock      no copy of a block could be found
"""

from __future__ import annotations


class GarageError(Exception):
    pass


class StartupError(Exception):
    """The node cannot start for a reason its operator can fix (a port already in use):
    said in one line, without a traceback."""


class LayoutNotReady(GarageError):
    def __init__(self) -> None:
        super().__init__("the cluster layout is not ready: assign a role to this node "
                         "(garage layout assign ...) and apply it (garage layout apply)")


class QuorumError(GarageError):
    pass


class CorruptData(GarageError):
    pass


class MissingBlock(GarageError):
    pass
