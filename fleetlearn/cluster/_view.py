"""A cluster as Ray sees it, read from the head's GCS (no ``ray.init``, no driver).

``cluster_view(address)`` asks the GCS for every node it knows (alive and dead) and
for the resource state the raylets report (about once a second): totals, what is
available, and the resource requests waiting for room (tasks and actors that
cannot be placed yet: "pending"). Ray's ``memory`` and ``object_store_memory`` are
*logical* resources: "in use" is what running tasks reserved, not the bytes they
touch. Ray is imported on the first call only (the API process must not load it at
import time).
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from fleetlearn.cluster._discover import recorded_security_env
from fleetlearn.errors import ClusterError
from fleetlearn.security import check_tls, ray_client_env, security_vars

__all__ = ["NodeView", "ClusterView", "cluster_view", "RESOURCE_KEYS"]

#: Ray resource name → the name used in views, JSON and metrics.
RESOURCE_KEYS = {"CPU": "cpus", "memory": "memory", "object_store_memory": "object_store"}


@dataclass(frozen=True)
class NodeView:
    """One node as the GCS reports it."""

    node_id: str
    ip: str
    alive: bool
    is_head: bool
    state: str  # RUNNING | IDLE | DRAINING | DEAD
    #: per resource ("cpus", "memory", "object_store"): {"total": x, "used": y}
    resources: dict[str, dict[str, float]]
    start_time: float | None = None
    end_time: float | None = None
    death_reason: str | None = None

    def total(self, key: str) -> float:
        return self.resources.get(key, {}).get("total", 0.0)

    def used(self, key: str) -> float:
        return self.resources.get(key, {}).get("used", 0.0)


@dataclass(frozen=True)
class ClusterView:
    """Every node, the cluster's totals and what waits for resources."""

    address: str
    nodes: list[NodeView] = field(default_factory=list)
    pending_tasks: int = 0
    pending_placement_groups: int = 0

    @property
    def alive(self) -> list[NodeView]:
        return [n for n in self.nodes if n.alive]

    @property
    def dead(self) -> list[NodeView]:
        return [n for n in self.nodes if not n.alive]

    def totals(self) -> dict[str, dict[str, float]]:
        """Resources summed over the alive nodes."""
        out = {key: {"total": 0.0, "used": 0.0} for key in RESOURCE_KEYS.values()}
        for node in self.alive:
            for key in out:
                out[key]["total"] += node.total(key)
                out[key]["used"] += node.used(key)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"mode": "cluster", "address": self.address,
                "nodes_alive": len(self.alive), "nodes_dead": len(self.dead),
                "resources": self.totals(), "pending_tasks": self.pending_tasks,
                "pending_placement_groups": self.pending_placement_groups,
                "nodes": [asdict(n) for n in self.nodes]}


def _resources(total: dict[str, float], available: dict[str, float] | None) -> dict:
    out = {}
    for ray_key, key in RESOURCE_KEYS.items():
        t = float(total.get(ray_key, 0.0))
        used = t - float(available.get(ray_key, 0.0)) if available is not None else 0.0
        out[key] = {"total": t, "used": max(0.0, used)}
    return out


def cluster_view(address: str, timeout: float = 5.0,
                 env: dict[str, str] | None = None) -> ClusterView:
    """Read the cluster at ``address`` (the head's GCS ``host:port``) from Ray itself.

    ``env``: the TLS and token variables to read it with; by default those of the
    cluster recorded at that address on this machine, else this process's own.

    Raises
    ------
    ClusterError
        Nothing answers at ``address`` within ``timeout`` seconds.
    """
    try:
        from ray._raylet import GcsClient
        from ray.core.generated import autoscaler_pb2
    except ImportError as exc:  # pragma: no cover - Ray is a dependency
        raise ClusterError(f"Ray is not installed ({exc}).") from exc
    host, _, port = address.rpartition(":")
    try:  # refused or unroutable answers at once, where the GCS client would retry
        socket.create_connection((host, int(port)), timeout=min(timeout, 2.0)).close()
    except (OSError, ValueError) as exc:
        raise ClusterError(f"No Ray head answers at {address} ({exc}).") from exc
    if env is None:
        env = recorded_security_env(address) or security_vars(os.environ)
    # Ray's GCS client hangs on a TLS mismatch instead of failing: find it first.
    check_tls(address, env, timeout=min(timeout, 5.0), who="this process")
    try:
        with ray_client_env(env):
            client = GcsClient(address=address)
            infos = client.get_all_node_info(timeout=timeout)
            reply = autoscaler_pb2.GetClusterResourceStateReply()
            reply.ParseFromString(client.get_cluster_resource_state(timeout_s=timeout))
    except Exception as exc:  # RpcError, timeouts, refused: the head is not there
        first = " ".join(str(exc).split())[:200]
        raise ClusterError(f"No Ray head answers at {address} ({first}).") from exc
    state = reply.cluster_resource_state
    by_id = {n.node_id.hex(): n for n in state.node_states}
    status_names = {v: k for k, v in autoscaler_pb2.NodeStatus.items()}
    nodes = []
    for raw_id, info in infos.items():
        node_id = raw_id.hex()  # bytes or Ray's NodeID: both have hex()
        usage = by_id.get(node_id)
        alive = info.state == 0  # GcsNodeInfo.ALIVE
        status = status_names.get(usage.status, "UNSPECIFIED") if usage else (
            "RUNNING" if alive else "DEAD")
        available = dict(usage.available_resources) if (usage and alive) else None
        nodes.append(NodeView(
            node_id=node_id, ip=info.node_manager_address, alive=alive,
            is_head=bool(info.is_head_node), state="DEAD" if not alive else status,
            resources=_resources(dict(info.resources_total), available),
            start_time=info.start_time_ms / 1000 if info.start_time_ms else None,
            end_time=info.end_time_ms / 1000 if info.end_time_ms else None,
            death_reason=(info.death_info.reason_message or None) if not alive else None))
    nodes.sort(key=lambda n: (not n.is_head, not n.alive, _ip_key(n.ip), n.node_id))
    pending = sum(r.count for r in state.pending_resource_requests)
    return ClusterView(address=address, nodes=nodes, pending_tasks=int(pending),
                       pending_placement_groups=len(state.pending_gang_resource_requests))


def _ip_key(ip: str) -> tuple:
    try:
        return tuple(int(p) for p in ip.split("."))
    except ValueError:
        return (ip,)
