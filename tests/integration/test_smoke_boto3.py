"""End-to-end with boto3 against a real server process: the basic object lifecycle."""

from __future__ import annotations

import hashlib
import os
from typing import Any


def test_put_get_list_delete(s3: Any, bucket: str) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    r = s3.put_object(Bucket=bucket, Key="dir/big", Body=body)
    assert r["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    s3.put_object(Bucket=bucket, Key="small", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="dir/big")["Body"].read() == body
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == b"hello"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["dir/big", "small"]
    s3.delete_object(Bucket=bucket, Key="dir/big")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["small"]


def test_sse_c_is_not_ignored(s3: Any, bucket: str) -> None:
    import pytest
    key = os.urandom(32)
    s3.put_object(Bucket=bucket, Key="secret", Body=b"data", SSECustomerAlgorithm="AES256",
                  SSECustomerKey=key)
    with pytest.raises(Exception, match="InvalidRequest"):  # the key is needed to read it
        s3.get_object(Bucket=bucket, Key="secret")


def test_size_limits_and_missing_length(node: Any, creds: Any, bucket: str) -> None:
    import socket

    # Signed by botocore and sent raw: the size checks run after authentication.
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    def send(headers: dict[str, str]) -> bytes:
        req = AWSRequest("PUT", f"{node.endpoint}/{bucket}/big", headers=headers)
        req.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        req.headers["Host"] = f"127.0.0.1:{node.s3_port}"
        S3SigV4Auth(Credentials(*creds), "s3", "garage").add_auth(req)
        lines = [f"PUT /{bucket}/big HTTP/1.1"] + [f"{k}: {v}" for k, v in req.headers.items()]
        with socket.create_connection(("127.0.0.1", node.s3_port), timeout=10) as s:
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            return s.recv(65536)

    too_big = send({"Content-Length": str(6 * 1024**3)})
    assert b" 400 " in too_big.split(b"\r\n")[0] and b"EntityTooLarge" in too_big
    no_len = send({})
    assert b" 411 " in no_len.split(b"\r\n")[0] and b"MissingContentLength" in no_len
