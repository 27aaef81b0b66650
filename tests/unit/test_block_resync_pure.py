"""Pure parts of the resync queue and refcounts: backoff schedule, queue key order, picking
the next due block past the busy ones, error records, refcount states."""

from __future__ import annotations

from pygarage.block.rc import RcEntry, decode_rc
from pygarage.block.resync import (
    MAX_BACKOFF_POWER,
    RETRY_BASE_MS,
    ErrorRecord,
    first_failure,
    pick_due,
    pick_due_many,
    queue_key,
    retry_delay_ms,
    split_queue_key,
)


def test_backoff_doubles_then_caps() -> None:
    assert [retry_delay_ms(e) // 60_000 for e in range(9)] == [1, 2, 4, 8, 16, 32, 64, 64, 64]
    assert retry_delay_ms(-3) == RETRY_BASE_MS
    assert retry_delay_ms(100, base_ms=10) == 10 << MAX_BACKOFF_POWER


def test_error_records_follow_the_schedule() -> None:
    r = first_failure(1000, 60_000)
    assert (r.errors, r.last_try_ms, r.next_try_ms) == (1, 1000, 61_000)
    r = r.failed_again(70_000, 60_000)
    assert (r.errors, r.next_try_ms) == (2, 70_000 + 120_000)
    for _ in range(10):
        r = r.failed_again(0, 60_000)
    assert r.next_try_ms == 60_000 * 64
    assert ErrorRecord.decode(r.encode()) == r
    assert ErrorRecord.decode(None) is None


def test_failures_while_a_holder_is_unreachable_do_not_grow_the_delay() -> None:
    r = first_failure(0, 60_000)
    delays = []
    for i in range(10):  # a long partition: every try fails, the delay stops at 4 min
        r = r.failed_unreachable(i * 600_000, 60_000)
        delays.append((r.next_try_ms - i * 600_000) // 60_000)
    assert delays == [2, 4, 4, 4, 4, 4, 4, 4, 4, 4] and r.errors == 11
    r = r.failed_again(600_000, 60_000)  # reachable and still failing: the backoff resumes
    assert r.next_try_ms == 600_000 + 60_000 * 64


def test_queue_keys_sort_by_time_then_hash() -> None:
    a, b = b"\x01" * 32, b"\x00" * 32
    keys = sorted([queue_key(5, a), queue_key(300, b), queue_key(5, b), queue_key(1 << 40, a)])
    assert [split_queue_key(k) for k in keys] == [(5, b), (5, a), (300, b), (1 << 40, a)]
    assert split_queue_key(queue_key(-5, a)) == (0, a)


def test_pick_due_skips_busy_blocks_and_reports_the_next_time() -> None:
    a, b, c = b"a" * 32, b"b" * 32, b"c" * 32
    keys = [queue_key(10, a), queue_key(20, b), queue_key(30, c)]
    assert pick_due(keys, set(), 15) == (keys[0], None)
    assert pick_due(keys, {a}, 15) == (None, 20)  # b is the next, not due yet
    assert pick_due(keys, {a}, 25) == (keys[1], None)
    assert pick_due(keys, {a, b, c}, 100) == (None, None)
    assert pick_due([], set(), 0) == (None, None)


def test_pick_due_many_takes_one_key_per_block_up_to_the_limit() -> None:
    a, b, c = b"a" * 32, b"b" * 32, b"c" * 32
    keys = [queue_key(10, a), queue_key(11, b), queue_key(12, a), queue_key(13, c),
            queue_key(40, b)]
    # a's second key waits for the next batch: one worker holds a block at a time.
    assert pick_due_many(keys, set(), 20, 10) == ([keys[0], keys[1], keys[3]], None)
    assert pick_due_many(keys, set(), 20, 2) == ([keys[0], keys[1]], None)
    assert pick_due_many(keys, {a}, 11, 10) == ([keys[1]], None)  # c is not due yet
    assert pick_due_many(keys, {a, b}, 11, 10) == ([], 13)
    assert pick_due_many(keys, {a, b, c}, 100, 10) == ([], None)
    assert pick_due_many([], set(), 0, 10) == ([], None)


def test_refcount_states() -> None:
    assert RcEntry().absent and RcEntry().is_deletable(0)
    assert RcEntry(2, 0).is_needed(10**15)
    pending = RcEntry(0, 1000)  # unreferenced, delay not over
    assert pending.is_needed(999) and pending.is_deletable(1000) and not pending.absent
    assert decode_rc(None) == RcEntry()


def test_pick_due_many_lets_a_short_batch_settle() -> None:
    a, b, c = b"a" * 32, b"b" * 32, b"c" * 32
    keys = [queue_key(10, a), queue_key(11, b), queue_key(16, c)]
    # Two due, fewer than the limit, the first due for 2 ms only: none yet, look at 15.
    assert pick_due_many(keys, set(), 12, 10, settle_ms=5) == ([], 15)
    # Once the first has been due for settle_ms, all that are due go together.
    assert pick_due_many(keys, set(), 15, 10, settle_ms=5) == ([keys[0], keys[1]], None)
    assert pick_due_many(keys, set(), 20, 10, settle_ms=5) == (keys, None)
    # A full batch does not wait.
    assert pick_due_many(keys, set(), 12, 2, settle_ms=5) == ([keys[0], keys[1]], None)
    # Busy blocks do not count: the first free one (b, due at 11) sets the time.
    assert pick_due_many(keys, {a}, 12, 10, settle_ms=5) == ([], 16)
    # Nothing due: the next due time, as without settling.
    assert pick_due_many(keys, set(), 5, 10, settle_ms=5) == ([], 10)
    assert pick_due_many([], set(), 5, 10, settle_ms=5) == ([], None)
