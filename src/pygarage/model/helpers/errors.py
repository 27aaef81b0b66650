"""Errors of bucket/key management, mapped to S3 codes by api/ and to messages by the CLI."""

from __future__ import annotations


class HelperError(Exception):
    code = "InvalidRequest"
    status = 400


class NoSuchBucketErr(HelperError):
    code, status = "NoSuchBucket", 404


class NoSuchKeyErr(HelperError):
    code, status = "NoSuchAccessKey", 404


class BucketNotEmptyErr(HelperError):
    code, status = "BucketNotEmpty", 409


class BucketAlreadyExistsErr(HelperError):
    code, status = "BucketAlreadyExists", 409


class BadRequest(HelperError):
    code, status = "InvalidRequest", 400
