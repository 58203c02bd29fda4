"""The state file of a local cluster, and the address file workers read.

``<dir>/state.json`` records everything ``fleetlearn cluster up`` started, so
``status`` and ``down`` (another process, later) act on exactly those processes, by
PID. ``<dir>/address`` holds the head's ``host:port`` alone: what a worker started
as ``fleetlearn cluster join`` reads to find the head (the env variable
``FLEETLEARN_CLUSTER_ADDRESS`` beats it). Both are written atomically (a temp file
renamed over the old one), so a reader never sees half a file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetlearn.config import HomeSettings
from fleetlearn.errors import ClusterError

__all__ = ["NodeRecord", "ClusterState", "default_cluster_dir", "read_state", "write_state",
           "write_atomic", "ADDRESS_FILE", "STATE_FILE", "ADDRESS_ENV", "ADDRESS_FILE_ENV"]

STATE_FILE = "state.json"
ADDRESS_FILE = "address"
#: The head's ``host:port`` for ``fleetlearn cluster join`` (beats the address file).
ADDRESS_ENV = "FLEETLEARN_CLUSTER_ADDRESS"
#: Where ``fleetlearn cluster join`` reads the address when the variable above is unset.
ADDRESS_FILE_ENV = "FLEETLEARN_CLUSTER_ADDRESS_FILE"


def default_cluster_dir() -> Path:
    """``<FLEETLEARN_HOME>/cluster`` (not created here).

    Examples
    --------
    >>> default_cluster_dir().name
    'cluster'
    """
    return HomeSettings().home_folder / "cluster"


@dataclass
class NodeRecord:
    """One ``ray start --block`` process this cluster started.

    ``pid`` is the ``ray start`` (or ``fleetlearn cluster join``, which becomes
    ``ray start`` by ``exec``) process: its process tree is the node. ``node_id`` is
    Ray's, filled in once Ray reports the node.
    """

    name: str
    role: str  # "head" | "worker"
    ip: str
    pid: int
    home: str
    temp_dir: str
    log: str
    num_cpus: int
    memory: int
    object_store_memory: int
    started_at: float
    node_id: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    #: A worker's node: the environment and command it was started with, so the
    #: cluster can start it again; not needed by readers.
    command: list[str] = field(default_factory=list)


@dataclass
class ClusterState:
    """What ``up`` started: the head's address, the Redis URL (GCS fault tolerance)
    and every node."""

    dir: str
    address: str
    port: int
    redis_url: str | None
    created_at: float
    nodes: list[NodeRecord] = field(default_factory=list)
    #: What a driver or CLI run against this cluster should add to its environment.
    env: dict[str, str] = field(default_factory=dict)
    #: The GCS's key namespace in Redis (``RAY_external_storage_namespace``).
    namespace: str = ""
    #: Ray TLS: the folder of the CA and node certificates (None: no TLS, --insecure).
    certs_dir: str | None = None
    #: Ray token authentication: the token file (None: no token, --insecure).
    token_file: str | None = None

    @property
    def security_env(self) -> dict[str, str] | None:
        """The TLS and token variables of :attr:`env` (what a GCS client of this
        cluster needs), or None for a state written before clusters had them."""
        keys = ("RAY_USE_TLS", "RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY", "RAY_TLS_CA_CERT",
                "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
        found = {k: v for k, v in self.env.items() if k in keys}
        return found or None

    @property
    def head(self) -> NodeRecord:
        return next(n for n in self.nodes if n.role == "head")

    @property
    def workers(self) -> list[NodeRecord]:
        return [n for n in self.nodes if n.role == "worker"]

    def node(self, ip: str) -> NodeRecord:
        for n in self.nodes:
            if n.ip == ip or n.name == ip:
                return n
        known = ", ".join(f"{n.name} ({n.ip})" for n in self.nodes)
        raise ClusterError(f"No node {ip!r} in the cluster at {self.address}; its nodes: {known}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterState:
        nodes = [NodeRecord(**n) for n in data.get("nodes", [])]
        return cls(**{**data, "nodes": nodes})


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_state(state: ClusterState) -> None:
    folder = Path(state.dir)
    write_atomic(folder / STATE_FILE, json.dumps(state.to_dict(), indent=2) + "\n")
    write_atomic(folder / ADDRESS_FILE, state.address + "\n")


def read_state(folder: Path | str | None = None) -> ClusterState | None:
    """The state of the cluster recorded in ``folder`` (default
    :func:`default_cluster_dir`), or None when there is none."""
    path = Path(folder or default_cluster_dir()) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ClusterError(f"The cluster state file {path} cannot be read ({exc}); "
                           "remove it if no cluster runs.") from exc
    return ClusterState.from_dict(data)
