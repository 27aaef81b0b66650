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


def test_sse_c_is_refused_not_ignored(s3: Any, bucket: str) -> None:
    import pytest
    key = os.urandom(32)
    with pytest.raises(Exception, match="NotImplemented"):
        s3.put_object(Bucket=bucket, Key="secret", Body=b"data", SSECustomerAlgorithm="AES256",
                      SSECustomerKey=key)
    with pytest.raises(Exception, match="NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="secret")
