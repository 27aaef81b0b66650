"""Admin API errors: JSON {code, message}, with an HTTP status."""

from __future__ import annotations


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(msg: str) -> AdminError:
    return AdminError(400, "InvalidRequest", msg)


def not_found(what: str) -> AdminError:
    return AdminError(404, "NotFound", what)
