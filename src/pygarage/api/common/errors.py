"""S3 errors: each one carries the HTTP status and S3 code a client expects.

    S3Error (status, code)
    ├── 400: InvalidRequest, InvalidArgument, MalformedXML, InvalidDigest, BadDigest,
    │        AuthorizationHeaderMalformed, AuthorizationQueryParametersError,
    │        XAmzContentSHA256Mismatch, IncompleteBody,
    │        InvalidBucketName, InvalidPart, InvalidPartOrder, EntityTooSmall,
    │        KeyTooLongError, MissingSecurityHeader, InvalidEncryptionAlgorithm
    ├── 403: AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId, RequestTimeTooSkewed
    ├── 404: NoSuchBucket, NoSuchKey, NoSuchUpload, NoSuchWebsiteConfiguration, ...
    ├── 409: BucketAlreadyExists, BucketAlreadyOwnedByYou, BucketNotEmpty
    ├── 412: PreconditionFailed     304: NotModified      416: InvalidRange
    └── 500: InternalError   501: NotImplemented   503: ServiceUnavailable

Raise them anywhere under api/; the server turns them into XML bodies.
"""

from __future__ import annotations


class S3Error(Exception):
    status: int = 500
    code: str = "InternalError"
    default_message: str = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        self.message = message or self.default_message
        # Extra response headers (e.g. Content-Range on 416, x-amz-bucket-region).
        self.headers = headers or {}
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status} {self.code}: {self.message})"


def _err(name: str, status: int, code: str | None = None, message: str = "") -> type[S3Error]:
    cls = type(name, (S3Error,), {"status": status, "code": code or name,
                                   "default_message": message or name})
    return cls


InternalError = _err("InternalError", 500, message="We encountered an internal error.")
NotImplementedErr = _err("NotImplementedErr", 501, "NotImplemented",
                         "This operation is not implemented by pygarage.")
ServiceUnavailable = _err("ServiceUnavailable", 503, message="Service unavailable, retry later.")

InvalidRequest = _err("InvalidRequest", 400, message="Invalid request.")
InvalidArgument = _err("InvalidArgument", 400, message="Invalid argument.")
MalformedXML = _err("MalformedXML", 400, message="The XML you provided was not well-formed.")
InvalidDigest = _err("InvalidDigest", 400, message="The Content-MD5 you specified is not valid.")
BadDigest = _err("BadDigest", 400,
                 message="The checksum you specified did not match what we received.")
AuthorizationHeaderMalformed = _err("AuthorizationHeaderMalformed", 400,
                                    message="The authorization header is malformed.")
AuthorizationQueryParametersError = _err(
    "AuthorizationQueryParametersError", 400,
    message="The query-string authentication parameters are malformed.")
XAmzContentSHA256Mismatch = _err(
    "XAmzContentSHA256Mismatch", 400,
    message="The provided 'x-amz-content-sha256' header does not match what was computed.")
IncompleteBody = _err("IncompleteBody", 400,
                      message="You did not provide the number of bytes specified by the "
                              "Content-Length HTTP header.")
InvalidBucketName = _err("InvalidBucketName", 400, message="The specified bucket is not valid.")
InvalidPart = _err("InvalidPart", 400, message="One or more of the specified parts could not "
                                               "be found.")
InvalidPartOrder = _err("InvalidPartOrder", 400,
                        message="The list of parts was not in ascending order.")
EntityTooSmall = _err("EntityTooSmall", 400, message="Your proposed upload is smaller than the "
                                                     "minimum allowed object size.")
EntityTooLarge = _err("EntityTooLarge", 400, message="Your proposed upload exceeds the maximum "
                                                     "allowed size.")
KeyTooLongError = _err("KeyTooLongError", 400, message="Your key is too long.")
MissingSecurityHeader = _err("MissingSecurityHeader", 400,
                             message="Your request is missing a required header.")
InvalidEncryptionAlgorithm = _err("InvalidEncryptionAlgorithm", 400,
                                  "InvalidEncryptionAlgorithmError",
                                  "The encryption request you specified is not valid.")
MissingContentLength = _err("MissingContentLength", 411,
                            message="You must provide the Content-Length HTTP header.")

AccessDenied = _err("AccessDenied", 403, message="Access Denied")
SignatureDoesNotMatch = _err(
    "SignatureDoesNotMatch", 403,
    message="The request signature we calculated does not match the signature you provided.")
InvalidAccessKeyId = _err("InvalidAccessKeyId", 403,
                          message="The AWS access key Id you provided does not exist in our "
                                  "records.")
RequestTimeTooSkewed = _err("RequestTimeTooSkewed", 403,
                            message="The difference between the request time and the current "
                                    "time is too large.")

NoSuchBucket = _err("NoSuchBucket", 404, message="The specified bucket does not exist.")
NoSuchKey = _err("NoSuchKey", 404, message="The specified key does not exist.")
NoSuchUpload = _err("NoSuchUpload", 404, message="The specified multipart upload does not exist.")
NoSuchVersion = _err("NoSuchVersion", 404, message="The specified version does not exist.")
NoSuchWebsiteConfiguration = _err("NoSuchWebsiteConfiguration", 404,
                                  message="The specified bucket does not have a website "
                                          "configuration.")
NoSuchCORSConfiguration = _err("NoSuchCORSConfiguration", 404,
                               message="The CORS configuration does not exist.")
NoSuchLifecycleConfiguration = _err("NoSuchLifecycleConfiguration", 404,
                                    message="The lifecycle configuration does not exist.")
MethodNotAllowed = _err("MethodNotAllowed", 405,
                        message="The specified method is not allowed against this resource.")

BucketAlreadyExists = _err("BucketAlreadyExists", 409,
                           message="The requested bucket name is not available.")
BucketAlreadyOwnedByYou = _err("BucketAlreadyOwnedByYou", 409,
                               message="The bucket you tried to create already exists, and you "
                                       "own it.")
BucketNotEmpty = _err("BucketNotEmpty", 409,
                      message="The bucket you tried to delete is not empty.")

PreconditionFailed = _err("PreconditionFailed", 412,
                          message="At least one of the pre-conditions you specified did not "
                                  "hold.")
NotModified = _err("NotModified", 304, message="Not Modified")
InvalidRange = _err("InvalidRange", 416, message="The requested range is not satisfiable.")
