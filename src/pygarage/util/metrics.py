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
# host: "" unless [s3_web] add_host_to_metrics (then only hosts naming a website bucket, so
# clients cannot grow the label set at will).
web_requests = Counter("web_request_counter", "Website requests", ["method", "host"],
                       registry=REGISTRY)
web_errors = Counter("web_error_counter", "Website requests that failed",
                     ["method", "status_code", "host"], registry=REGISTRY)
web_duration = Histogram("web_request_duration", "Website request duration (seconds)",
                         ["method", "host"], registry=REGISTRY)
block_bytes_written = Counter("block_bytes_written", "Bytes of blocks written to disk",
                              registry=REGISTRY)
block_bytes_read = Counter("block_bytes_read", "Bytes of blocks read from disk",
                           registry=REGISTRY)
cluster_healthy = Gauge("cluster_healthy", "1 if every storage node is up", registry=REGISTRY)
block_ram_buffer_free_kb = Gauge("block_ram_buffer_free_kb",
                                 "Room left for upload data held in memory (KiB)",
                                 registry=REGISTRY)
block_bytes_sendfile = Counter("block_bytes_sendfile",
                               "Bytes of verified block files sent to clients by the kernel "
                               "(sendfile), without a copy through the process",
                               registry=REGISTRY)
