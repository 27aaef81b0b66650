"""What every S3 handler gets: the request, the authenticated key, the resolved bucket."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDictProxy

from ...model.bucket_table import Bucket
from ...model.garage import Garage
from ...model.key_table import Key
from ..common.signature.sigv4 import AuthResult
from .router import Endpoint


@dataclass
class ReqCtx:
    garage: Garage
    request: web.BaseRequest
    endpoint: Endpoint
    query: dict[str, str]
    api_key: Key
    auth: AuthResult
    bucket_name: str | None = None
    bucket: Bucket | None = None
    # Added to every successful answer to this request: the bucket's CORS headers.
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.request.headers

    @property
    def bucket_id(self) -> bytes:
        assert self.bucket is not None
        return self.bucket.id

    @property
    def key(self) -> str:
        assert self.endpoint.key is not None
        return self.endpoint.key

    @property
    def region(self) -> str:
        return self.garage.config.s3_api.s3_region
