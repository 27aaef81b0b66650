"""Admin API dispatch: one function per Garage admin v2 endpoint name, used by the HTTP
admin API and by the CLI over RPC alike."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ...model.garage import Garage
from . import blocks, buckets_keys, cluster, node_ops, objects
from .errors import AdminError
from .schema import check_body

_BUCKET_KEY = {"ListBuckets", "GetBucketInfo", "CreateBucket", "DeleteBucket", "UpdateBucket",
               "AllowBucketKey", "DenyBucketKey", "AddBucketAlias", "RemoveBucketAlias",
               "ListKeys", "GetKeyInfo", "CreateKey", "ImportKey", "UpdateKey", "DeleteKey"}

# Endpoints the daemon answers 501 for; the CLI test fake answers them the same way.
NOT_YET: dict[str, str] = {}


# Endpoints answered by one or several nodes (Garage's `?node=self|*|<id>`): each runs on
# every node asked, with that node's Garage.
_PER_NODE: dict[str, Callable[[Garage, Any], Any]] = {
    "GetNodeInfo": lambda g, body: cluster.get_node_info(g),
    "GetNodeStatistics": lambda g, body: node_ops.node_statistics(g),
    "ListWorkers": node_ops.list_workers,
    "GetWorkerInfo": node_ops.worker_info,
    "GetWorkerVariable": node_ops.get_worker_variable,
    "SetWorkerVariable": node_ops.set_worker_variable,
    "LaunchRepairOperation": node_ops.launch_repair_operation,
    "CreateMetadataSnapshot": lambda g, body: node_ops.create_metadata_snapshot(g),
    "ListBlockErrors": lambda g, body: blocks.list_block_errors(g),
    "GetBlockInfo": blocks.block_info,
    "RetryBlockResync": blocks.retry_block_resync,
    "PurgeBlocks": blocks.purge_blocks,
}

# Endpoints answered once, by the node asked (the cluster's view).
_CLUSTER: dict[str, Callable[[Garage, dict[str, str], Any], Any]] = {
    "CleanupIncompleteUploads": lambda g, query, body: objects.cleanup(g, body),
    "InspectObject": lambda g, query, body: objects.inspect_object(g, query),
    "GetClusterStatus": lambda g, query, body: cluster.get_cluster_status(g),
    "GetClusterHealth": lambda g, query, body: cluster.get_cluster_health(g),
    "GetClusterStatistics": lambda g, query, body: node_ops.cluster_statistics(g),
    "ConnectClusterNodes": lambda g, query, body: cluster.connect_cluster_nodes(g, body),
    "GetClusterLayout": lambda g, query, body: cluster.get_cluster_layout(g),
    "UpdateClusterLayout": lambda g, query, body: cluster.update_cluster_layout(g, body),
    "PreviewClusterLayoutChanges": lambda g, query, body: cluster.preview_cluster_layout(g),
    "ApplyClusterLayout": lambda g, query, body: cluster.apply_cluster_layout(g, body),
    "RevertClusterLayout": lambda g, query, body: cluster.revert_cluster_layout(g),
    "GetClusterLayoutHistory": lambda g, query, body: cluster.get_layout_history(g),
    "ClusterLayoutSkipDeadNodes": lambda g, query, body: cluster.skip_dead_nodes(g, body),
}


async def admin_call(g: Garage, endpoint: str, query: dict[str, str], body: Any) -> Any:
    check_body(endpoint, body)
    body = body if body is not None else {}
    if endpoint in _BUCKET_KEY:
        return await buckets_keys.call(g, endpoint, query, body)
    if endpoint in _PER_NODE:
        fn = _PER_NODE[endpoint]
        return await node_ops.multi(g, endpoint, query, body, lambda: fn(g, body))
    if endpoint in _CLUSTER:
        res = _CLUSTER[endpoint](g, query, body)
        return await res if inspect.isawaitable(res) else res
    if endpoint in NOT_YET:
        raise node_ops.not_yet(NOT_YET[endpoint])
    raise AdminError(400, "InvalidRequest", f"unknown admin endpoint: {endpoint}")
