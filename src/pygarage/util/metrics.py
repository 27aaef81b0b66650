"""Prometheus metrics, named as Garage names them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

api_requests = Counter("api_s3_request_counter", "S3 API requests", ["api_endpoint"],
                       registry=REGISTRY)
api_errors = Counter("api_s3_error_counter", "S3 API requests that failed",
                     ["api_endpoint", "status_code"], registry=REGISTRY)
api_duration = Histogram("api_s3_request_duration", "S3 API request duration (seconds)",
                         ["api_endpoint"], registry=REGISTRY)
web_requests = Counter("web_request_counter", "Website requests", ["method"],
                       registry=REGISTRY)
block_bytes_written = Counter("block_bytes_written", "Bytes of blocks written to disk",
                              registry=REGISTRY)
block_bytes_read = Counter("block_bytes_read", "Bytes of blocks read from disk",
                           registry=REGISTRY)
cluster_healthy = Gauge("cluster_healthy", "1 if every storage node is up", registry=REGISTRY)
block_ram_buffer_free_kb = Gauge("block_ram_buffer_free_kb",
                                 "Room left for upload data held in memory (KiB)",
                                 registry=REGISTRY)
