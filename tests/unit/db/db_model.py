"""Shared by the db tests that check an engine against a dict model (imported by the test
modules of this directory; pytest puts it on sys.path)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pygarage.db.base import Db, Transaction, TxAbort


def apply_batch(db: Db, ops: Sequence[tuple[str, bytes, bytes]], fail: bool,
                model: dict[bytes, bytes]) -> None:
    """`ops` ("insert" or "remove", key, value) on tree "t" in one transaction, aborted
    (TxAbort) after the last one when `fail`; the model takes them only when committed."""
    def batch(tx: Transaction) -> None:
        for op, k, v in ops:
            if op == "insert":
                tx.insert("t", k, v)
            else:
                tx.remove("t", k)
        if fail:
            raise TxAbort()

    if fail:
        with pytest.raises(TxAbort):
            db.transaction(batch)
        return
    db.transaction(batch)
    for op, k, v in ops:
        if op == "insert":
            model[k] = v
        else:
            model.pop(k, None)
