"""Races between requests, against a real server: DeleteBucket vs PutObject, two creates of
one bucket name; and DeleteBucket aborting unfinished multipart uploads (blocks freed)."""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.error import HTTPError

import pytest
from botocore.exceptions import ClientError
from s3helpers import RawClient, head_lines, read_http_response

from pygarage.testing.node import GarageNode
from pygarage.util.ids import block_hash

ROUNDS = 40
PUTS = 4
# Inline (metadata only), one block, several blocks (the node's block size is 1 MiB).
SIZES = [100, 200 * 1024, 2 * 1024 * 1024 + 5]


def _code(e: ClientError) -> tuple[int, str]:
    r = e.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def _run_together(fns: list[Callable[[], Any]]) -> list[Any]:
    """Start every fn at the same moment (a barrier); -> each result or what it raised."""
    barrier = threading.Barrier(len(fns))
    out: list[Any] = [None] * len(fns)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fns[i]()
        except (ClientError, HTTPError) as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def _after(delay: float, fn: Callable[[], Any]) -> Any:
    time.sleep(delay)
    return fn()


def _refcount(node: GarageNode, h: bytes) -> int:
    info = node.admin("GetBlockInfo", body={"blockHash": h.hex()})
    return int(info["success"][next(iter(info["success"]))]["refcount"])


def _wait_unreferenced(node: GarageNode, hashes: list[bytes]) -> None:
    deadline = time.monotonic() + 20
    while any(_refcount(node, h) for h in hashes):
        assert time.monotonic() < deadline, "blocks still referenced"
        time.sleep(0.1)


def test_delete_bucket_racing_puts(node: GarageNode, creds: tuple[str, str]) -> None:
    """Of a DeleteBucket and PutObjects on an empty bucket at the same moment, never both:
    either the delete fails (BucketNotEmpty) and every PUT that succeeded is readable, or the
    delete succeeds and every PUT fails with NoSuchBucket (its blocks freed)."""
    rng = random.Random(5)
    clients = [node.s3(*creds) for _ in range(PUTS + 1)]
    both, deleted, refused_blocks = 0, 0, []
    for rnd in range(ROUNDS):
        name = f"race-{rnd}-{secrets.token_hex(4)}"
        clients[0].create_bucket(Bucket=name)
        size = SIZES[rnd % len(SIZES)]
        bodies = [os.urandom(size) for _ in range(PUTS)]
        delay = rng.uniform(0, 0.03)

        puts_fns = [partial(clients[i].put_object, Bucket=name, Key=f"k{i}", Body=bodies[i])
                    for i in range(PUTS)]
        delete = partial(_after, delay, partial(clients[PUTS].delete_bucket, Bucket=name))
        results = _run_together([*puts_fns, delete])
        puts, dele = results[:PUTS], results[PUTS]
        ok = [i for i, r in enumerate(puts) if not isinstance(r, ClientError)]
        for r in puts:
            if isinstance(r, ClientError):
                assert _code(r) == (404, "NoSuchBucket"), r
        if not isinstance(dele, ClientError):
            deleted += 1
            both += bool(ok)
            if size == SIZES[1]:  # a refused single-block PUT had stored its block
                refused_blocks += [block_hash(b) for b in bodies]
            continue
        assert _code(dele) == (409, "BucketNotEmpty")
        assert ok, "BucketNotEmpty, but no PUT succeeded"
        for i in ok:
            got = clients[0].get_object(Bucket=name, Key=f"k{i}")["Body"].read()
            assert got == bodies[i]
            clients[0].delete_object(Bucket=name, Key=f"k{i}")
        clients[0].delete_bucket(Bucket=name)
    assert both == 0, f"{both} of {ROUNDS} rounds: DeleteBucket and a PutObject both succeeded"
    assert 0 < deleted < ROUNDS, "the race was not exercised both ways"
    _wait_unreferenced(node, refused_blocks)


def test_concurrent_creates_of_one_name(node: GarageNode, creds: tuple[str, str]) -> None:
    """Exactly one CreateBucket wins; the others get BucketAlreadyOwnedByYou, and no bucket
    is left behind without a name."""
    clients = [node.s3(*creds) for _ in range(4)]
    before = len(node.admin("ListBuckets"))
    for rnd in range(10):
        name = f"twin-{rnd}-{secrets.token_hex(4)}"
        results = _run_together([partial(c.create_bucket, Bucket=name) for c in clients])
        errs = [r for r in results if isinstance(r, ClientError)]
        assert len(errs) == len(clients) - 1, results
        assert all(_code(e) == (409, "BucketAlreadyOwnedByYou") for e in errs)
        clients[0].head_bucket(Bucket=name)
    buckets = node.admin("ListBuckets")
    assert len(buckets) == before + 10
    assert all(b["globalAliases"] or b["localAliases"] for b in buckets)


def test_concurrent_admin_creates_of_one_global_alias(node: GarageNode) -> None:
    before = len(node.admin("ListBuckets"))
    name = "twin-global-" + secrets.token_hex(4)
    results = _run_together([lambda: node.admin("CreateBucket", body={"globalAlias": name})
                             for _ in range(4)])
    assert sum(1 for r in results if isinstance(r, dict) and "id" in r) == 1
    assert all(r.code == 409 for r in results if isinstance(r, HTTPError)), results
    assert len(node.admin("ListBuckets")) == before + 1


def test_concurrent_admin_creates_of_one_local_alias(node: GarageNode,
                                                    creds: tuple[str, str]) -> None:
    before = len(node.admin("ListBuckets"))
    name = "twin-local-" + secrets.token_hex(4)
    body = {"localAlias": {"accessKeyId": creds[0], "alias": name,
                           "allow": {"read": True, "write": True}}}
    results = _run_together([partial(node.admin, "CreateBucket", body=body)
                             for _ in range(4)])
    assert sum(1 for r in results if isinstance(r, dict) and "id" in r) == 1, results
    assert all(r.code == 409 for r in results if isinstance(r, HTTPError)), results
    assert len(node.admin("ListBuckets")) == before + 1
    node.s3(*creds).head_bucket(Bucket=name)  # permissions were set with the alias


def test_delete_bucket_aborts_unfinished_uploads(node: GarageNode,
                                                 creds: tuple[str, str]) -> None:
    s3 = node.s3(*creds)
    name = "mpu-del-" + secrets.token_hex(4)
    s3.create_bucket(Bucket=name)
    parts = [os.urandom(300 * 1024) for _ in range(2)]
    for key in ("a", "b/c"):
        uid = s3.create_multipart_upload(Bucket=name, Key=key)["UploadId"]
        for n, data in enumerate(parts, start=1):
            s3.upload_part(Bucket=name, Key=key, UploadId=uid, PartNumber=n,
                           Body=data + key.encode())
    hashes = [block_hash(d + k.encode()) for k in ("a", "b/c") for d in parts]
    assert all(_refcount(node, h) == 1 for h in hashes)
    assert s3.delete_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        s3.head_bucket(Bucket=name)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    _wait_unreferenced(node, hashes)
    # The name is free again, and the new bucket is empty.
    s3.create_bucket(Bucket=name)
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    s3.delete_bucket(Bucket=name)


def test_delete_bucket_refused_while_put_in_progress(node: GarageNode,
                                                     creds: tuple[str, str]) -> None:
    """A multi-block PutObject still receiving its body makes the bucket non-empty."""
    s3 = node.s3(*creds)
    name = "slow-put-" + secrets.token_hex(4)
    s3.create_bucket(Bucket=name)
    data = os.urandom(3 * 1024 * 1024)
    raw = RawClient(node, creds)
    signed = raw.sign("PUT", f"/{name}/slow", payload_hash="UNSIGNED-PAYLOAD")
    headers = {**signed.headers, "Content-Length": str(len(data))}
    with raw.raw_socket() as sock:
        sock.sendall(head_lines("PUT", f"/{name}/slow", headers) + data[:2 * 1024 * 1024 + 1])
        time.sleep(1.0)  # the server has read two blocks: the upload is under way
        with pytest.raises(ClientError) as ei:
            s3.delete_bucket(Bucket=name)
        assert _code(ei.value) == (409, "BucketNotEmpty")
        sock.sendall(data[2 * 1024 * 1024 + 1:])
        status, _, _ = read_http_response(sock)
    assert status == 200
    assert s3.get_object(Bucket=name, Key="slow")["Body"].read() == data
    s3.delete_object(Bucket=name, Key="slow")
    s3.delete_bucket(Bucket=name)


def test_upload_part_racing_delete_bucket_frees_its_blocks(node: GarageNode,
                                                          creds: tuple[str, str]) -> None:
    """DeleteBucket aborts an upload while one of its parts is still being received: the
    blocks that part writes afterwards end up unreferenced, not referenced forever."""
    s3 = node.s3(*creds)
    name = "part-race-" + secrets.token_hex(4)
    s3.create_bucket(Bucket=name)
    uid = s3.create_multipart_upload(Bucket=name, Key="big")["UploadId"]
    mib = 1024 * 1024
    data = os.urandom(3 * mib)
    raw = RawClient(node, creds)
    query = f"partNumber=1&uploadId={uid}"
    signed = raw.sign("PUT", f"/{name}/big", query, payload_hash="UNSIGNED-PAYLOAD")
    headers = {**signed.headers, "Content-Length": str(len(data))}
    with raw.raw_socket() as sock:
        sock.sendall(head_lines("PUT", f"/{name}/big?{query}", headers) + data[:2 * mib + 1])
        time.sleep(1.0)  # the part is registered and its first blocks are written
        assert s3.delete_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
        sock.sendall(data[2 * mib + 1:])
        status, _, _ = read_http_response(sock)
    assert status in (200, 404)
    _wait_unreferenced(node, [block_hash(data[i:i + mib]) for i in range(0, len(data), mib)])


def test_upload_left_by_a_crash_does_not_keep_bucket_alive(private_node: GarageNode) -> None:
    """A PutObject cut by kill -9 leaves an Uploading version that no process will finish:
    after the restart, DeleteBucket aborts it instead of answering BucketNotEmpty forever.
    (Blocks stored but not yet listed in the version when the process died stay referenced:
    that needs a repair pass over block references, as Garage's.)"""
    node = private_node
    node.start()
    creds = node.create_key("crash")
    s3 = node.s3(*creds)
    s3.create_bucket(Bucket="crashed")
    mib = 1024 * 1024
    data = os.urandom(3 * mib)
    raw = RawClient(node, creds)
    signed = raw.sign("PUT", "/crashed/cut", payload_hash="UNSIGNED-PAYLOAD")
    headers = {**signed.headers, "Content-Length": str(len(data))}
    with raw.raw_socket() as sock:
        sock.sendall(head_lines("PUT", "/crashed/cut", headers) + data[:2 * mib + 1])
        time.sleep(1.0)  # the upload is under way, two blocks stored
        node.kill()
    node.start()
    s3 = node.s3(*creds)
    assert s3.delete_bucket(Bucket="crashed")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        s3.head_bucket(Bucket="crashed")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
