"""LocalCluster's head CPUs and workers' extra environment (no process started)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fleetlearn.cluster import LocalCluster, NodeOptions
from fleetlearn.cluster._state import ClusterState, NodeRecord, write_state
from fleetlearn.errors import ConfigError


def _record(name: str, ip: str, role: str, cpus: int) -> NodeRecord:
    return NodeRecord(name=name, role=role, ip=ip, pid=999_999, home="/h", temp_dir="/t",
                      log="/l", num_cpus=cpus, memory=2**31, object_store_memory=100 * 2**20,
                      started_at=0.0)


def test_a_head_without_cpus_and_workers_with_extra_variables(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, options=NodeOptions(num_cpus=2), head_cpus=0,
                           worker_env={"RAY_SERVE_WORKER_PROXY_HTTP_PORT": "18001"})
    assert cluster.head_cpus == 0
    assert cluster._resource_args(cluster.head_cpus)[:2] == ["--num-cpus", "0"]
    assert cluster._resource_args()[:2] == ["--num-cpus", "2"]
    assert cluster.worker_env == {"RAY_SERVE_WORKER_PROXY_HTTP_PORT": "18001"}
    assert LocalCluster(tmp_path, options=NodeOptions(num_cpus=3)).head_cpus == 3
    with pytest.raises(ConfigError, match=r"'head_cpus' option must be an int in the range "
                                          r"\[0, inf\)\. Got -1 instead"):
        LocalCluster(tmp_path, head_cpus=-1)


def test_attach_takes_the_workers_resources_and_the_heads_cpus(tmp_path: Path) -> None:
    head = _record("head", "127.0.1.1", "head", 0)
    worker = replace(_record("worker-2", "127.0.0.2", "worker", 2), memory=2**30)
    write_state(ClusterState(dir=str(tmp_path), address="127.0.1.1:5000", port=5000,
                             redis_url=None, created_at=1.0, nodes=[head, worker]))
    cluster = LocalCluster.attach(tmp_path)  # a head with 0 CPUs is not a bad option
    assert cluster.head_cpus == 0
    assert cluster.options == NodeOptions(num_cpus=2, memory=2**30,
                                          object_store_memory=100 * 2**20)
