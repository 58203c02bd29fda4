"""A Ray cluster on one machine, and how nodes find its head.

- :class:`LocalCluster`: a head and N workers as separate ``ray start --block``
  processes, each with its own loopback IP, resources, HOME and temp folder; state
  in ``<dir>/state.json`` (:class:`ClusterState`), stop by PID.
- :func:`join` / :func:`wait_for_head`: a worker reads the head's address from
  ``--address``, ``$FLEETLEARN_CLUSTER_ADDRESS`` or the address file, waits with
  backoff until the head answers, then becomes ``ray start --address ... --block``.
- :func:`cluster_view`: the cluster as Ray's GCS reports it (nodes alive and dead,
  resources total and in use, pending tasks), without ``ray.init``.
- Secure by default: Ray TLS between every node and driver (the certificates in
  ``<dir>/certs``) and Ray token authentication (``<dir>/token``); the variables a
  driver needs are in the state (:func:`recorded_security_env`).

Ray is imported only inside the functions that talk to it.
"""

from fleetlearn.cluster._discover import discover_address, recorded_security_env
from fleetlearn.cluster._exposure import exposure_lines, listening, reach
from fleetlearn.cluster._join import (
    head_answers,
    join,
    parse_address,
    ray_executable,
    resolve_address,
    wait_for_head,
)
from fleetlearn.cluster._local import (
    CERTS_DIR,
    FAST_HEALTH_CHECK,
    GCS_RECONNECT_TIMEOUT_S,
    LOOPBACK_PORTS_ENV,
    STOP_GRACE_S,
    TOKEN_FILE,
    LocalCluster,
    NodeOptions,
    StoppedNode,
    free_port,
    node_env,
    parse_redis_url,
)
from fleetlearn.cluster._report import (
    format_size,
    node_rows,
    parse_size,
    security_record,
    status_record,
)
from fleetlearn.cluster._state import (
    ADDRESS_ENV,
    ADDRESS_FILE_ENV,
    ClusterState,
    NodeRecord,
    default_cluster_dir,
    read_state,
    write_state,
)
from fleetlearn.cluster._view import ClusterView, NodeView, cluster_view

__all__ = [
    "ADDRESS_ENV",
    "ADDRESS_FILE_ENV",
    "CERTS_DIR",
    "TOKEN_FILE",
    "FAST_HEALTH_CHECK",
    "GCS_RECONNECT_TIMEOUT_S",
    "STOP_GRACE_S",
    "ClusterState",
    "ClusterView",
    "LOOPBACK_PORTS_ENV",
    "LocalCluster",
    "NodeOptions",
    "NodeRecord",
    "NodeView",
    "StoppedNode",
    "cluster_view",
    "default_cluster_dir",
    "discover_address",
    "exposure_lines",
    "format_size",
    "free_port",
    "head_answers",
    "join",
    "listening",
    "node_env",
    "node_rows",
    "parse_address",
    "parse_redis_url",
    "parse_size",
    "ray_executable",
    "reach",
    "read_state",
    "recorded_security_env",
    "resolve_address",
    "security_record",
    "status_record",
    "wait_for_head",
    "write_state",
]
