"""Admin API dispatch: one function per Garage admin v2 endpoint name, used by the HTTP
admin API and by the CLI over RPC alike."""

from __future__ import annotations

from typing import Any

from ...model.garage import Garage
from . import buckets_keys, cluster, node_ops
from .errors import AdminError
from .schema import check_body

_BUCKET_KEY = {"ListBuckets", "GetBucketInfo", "CreateBucket", "DeleteBucket", "UpdateBucket",
               "AllowBucketKey", "DenyBucketKey", "AddBucketAlias", "RemoveBucketAlias",
               "ListKeys", "GetKeyInfo", "CreateKey", "ImportKey", "UpdateKey", "DeleteKey"}

# Endpoints the daemon answers 501 for; the CLI test fake answers them the same way.
NOT_YET = {"LaunchRepairOperation": "repair operations",
            "CleanupIncompleteUploads": "cleanup of incomplete uploads",
            "InspectObject": "object inspection", "CreateMetadataSnapshot": "snapshots",
            "GetWorkerInfo": "worker info", "GetWorkerVariable": "worker variables",
            "SetWorkerVariable": "worker variables", "RetryBlockResync": "block resync",
            "PurgeBlocks": "block purge"}


async def admin_call(g: Garage, endpoint: str, query: dict[str, str], body: Any) -> Any:
    check_body(endpoint, body)
    body = body if body is not None else {}
    if endpoint in _BUCKET_KEY:
        return await buckets_keys.call(g, endpoint, query, body)
    if endpoint == "GetNodeInfo":
        return await node_ops.multi(g, endpoint, query, body,
                                    lambda: cluster.get_node_info(g))
    if endpoint == "GetClusterStatus":
        return cluster.get_cluster_status(g)
    if endpoint == "GetClusterHealth":
        return cluster.get_cluster_health(g)
    if endpoint == "ConnectClusterNodes":
        return await cluster.connect_cluster_nodes(g, body)
    if endpoint == "GetClusterLayout":
        return cluster.get_cluster_layout(g)
    if endpoint == "UpdateClusterLayout":
        return cluster.update_cluster_layout(g, body)
    if endpoint == "PreviewClusterLayoutChanges":
        return await cluster.preview_cluster_layout(g)
    if endpoint == "ApplyClusterLayout":
        return await cluster.apply_cluster_layout(g, body)
    if endpoint == "RevertClusterLayout":
        return cluster.revert_cluster_layout(g)
    if endpoint == "GetClusterLayoutHistory":
        return cluster.get_layout_history(g)
    if endpoint == "ClusterLayoutSkipDeadNodes":
        return await cluster.skip_dead_nodes(g, body)
    if endpoint == "GetNodeStatistics":
        return await node_ops.multi(g, endpoint, query, body,
                                    lambda: node_ops.node_statistics(g))
    if endpoint == "GetClusterStatistics":
        return node_ops.cluster_statistics(g)
    if endpoint == "ListWorkers":
        return await node_ops.multi(g, endpoint, query, body,
                                    lambda: node_ops.list_workers(g, body))
    if endpoint == "ListBlockErrors":
        return await node_ops.multi(g, endpoint, query, body, lambda: [])
    if endpoint == "GetBlockInfo":
        return await node_ops.multi(g, endpoint, query, body,
                                    lambda: node_ops.block_info(g, body))
    if endpoint in NOT_YET:
        raise node_ops.not_yet(NOT_YET[endpoint])
    raise AdminError(400, "InvalidRequest", f"unknown admin endpoint: {endpoint}")
