"""A real multi-node Ray cluster of processes for the slow suites (fault tests).

Built on :class:`fleetlearn.cluster.LocalCluster`: a head and N workers, each a
separate ``ray start --block`` process tree with its own loopback IP, HOME, Ray temp
folder and resources; workers find the head through the address file
(``fleetlearn cluster join``), as in production. Imported by ``tests/slow/conftest.py``.

Interface (stable: other suites depend on it)::

    def test_x(process_cluster):
        cluster = process_cluster(workers=2, cpus_per_node=1, redis_url=None,
                                  worker_home_isolated=True, head_cpus=None,
                                  worker_env=None)
        cluster.address            # "127.A.B.1:PORT", the head's GCS: --address / RAY_ADDRESS
        cluster.env                # env for a driver or CLI subprocess: RAY_ADDRESS and the
                                   # cluster's TLS and token variables set, no other RAY_*
                                   # variable, its own HOME and short RAY_TMPDIR,
                                   # FLEETLEARN_* as in this process (read when accessed)
        cluster.security_env       # just the TLS and token variables (RAY_USE_TLS,
                                   # RAY_TLS_*, RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH)
        cluster.head_ip, cluster.worker_ips
        cluster.nodes              # [ClusterNode(name, role, ip, pid, home, temp_dir, log,
                                   #  node_id)] (node_id: Ray's, once it reported the node)
        cluster.node(ip)           # one of them
        cluster.wait_alive(n, timeout=180)   # until Ray reports n alive nodes -> ClusterView
        cluster.wait_dead(ip, timeout=60)    # until Ray reports the node at ip dead
        cluster.alive_node_ids()   # set of Ray node ids alive, from the GCS (Ray's view,
                                   # not our bookkeeping)
        cluster.view()             # fleetlearn.cluster.ClusterView: nodes alive and dead,
                                   # resources total/used, pending tasks
        cluster.kill_node(ip, sig=signal.SIGKILL)  # every process of that node at once
                                   # (raylet, workers, agents): a crashed machine; -> count
        cluster.terminate_node(ip) # SIGTERM to its ray start; -> seconds until all exited
        cluster.restart_node(ip)   # start a killed worker again (same IP)
        cluster.kill_head(sig=signal.SIGKILL)
        cluster.restart_head()     # same IP, port and Redis namespace (GCS FT tests)
        cluster.down()             # stop everything (also done at teardown)

Every cluster gets its own IP block ``127.A.B.0/24`` (head ``.1``, workers ``.2``,
``.3`` …), so clusters of parallel test runs never share an IP or a port.
``redis_url`` turns on GCS fault tolerance (the head keeps its state in that Redis
under its own namespace; every node waits 180 s for a restarted head). The
``redis_server`` fixture starts a private ``redis-server`` on a free port
(``.url``, ``.port``, ``.stop()``, ``.start()``): never use the shared 6379 for a test
that restarts Redis. Teardown stops every
process it started, by PID (SIGTERM, SIGKILL after 10 s), and fails the test if one
survives.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetlearn.cluster import ClusterView, LocalCluster, NodeOptions, free_port

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
_BLOCKS = itertools.count()


@dataclass(frozen=True)
class ClusterNode:
    name: str
    role: str
    ip: str
    pid: int
    home: str
    temp_dir: str
    log: str
    node_id: str | None


def next_ip_block() -> str:
    """``127.A.B`` unique to this process and call (A from the PID, B counting)."""
    pid = os.getpid()
    n = next(_BLOCKS)
    return f"127.{100 + pid % 150}.{1 + (pid // 150 + n) % 250}"


class ProcessCluster:
    """A running :class:`LocalCluster` with what fault tests need (see module doc)."""

    def __init__(self, folder: Path, *, workers: int, cpus_per_node: int,
                 redis_url: str | None, worker_home_isolated: bool,
                 memory_per_node: int, object_store_per_node: int, timeout: float,
                 head_cpus: int | None = None,
                 worker_env: dict[str, str] | None = None) -> None:
        block = next_ip_block()
        base = dict(os.environ)
        # Ray workers import with the raylet's environment: this checkout and tests/
        # (test-support estimators given as module.Class) must be on their path.
        base["PYTHONPATH"] = os.pathsep.join(
            p for p in (TESTS_DIR, os.environ.get("PYTHONPATH")) if p)
        self._driver_home = tempfile.mkdtemp(prefix="flcd-", dir="/tmp")
        self.cluster = LocalCluster(
            folder, options=NodeOptions(num_cpus=cpus_per_node, memory=memory_per_node,
                                        object_store_memory=object_store_per_node),
            redis_url=redis_url, head_ip=f"{block}.1", ip_prefix=block,
            isolated=worker_home_isolated, env=base, head_cpus=head_cpus,
            worker_env=worker_env)
        self._base_pythonpath = base["PYTHONPATH"]
        try:
            self.cluster.up(workers, timeout=timeout)  # stops what it started on failure
        except BaseException:
            self.cluster.cleanup()
            shutil.rmtree(self._driver_home, ignore_errors=True)
            raise

    # ------------------------------------------------------------ what it is
    @property
    def address(self) -> str:
        return self.cluster.address

    @property
    def head_ip(self) -> str:
        return self.cluster.head_ip

    @property
    def worker_ips(self) -> list[str]:
        assert self.cluster.state is not None
        return [n.ip for n in self.cluster.state.workers]

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env.update(RAY_ADDRESS=self.address, HOME=self._driver_home,
                   RAY_TMPDIR=self._driver_home, PYTHONUNBUFFERED="1",
                   PYTHONPATH=self._base_pythonpath)
        env.update(self.security_env)
        return env

    @property
    def security_env(self) -> dict[str, str]:
        """The cluster's Ray TLS and token variables (on by default, as in production)."""
        assert self.cluster.state is not None
        return dict(self.cluster.state.security_env or {})

    @property
    def nodes(self) -> list[ClusterNode]:
        assert self.cluster.state is not None
        return [ClusterNode(n.name, n.role, n.ip, n.pid, n.home, n.temp_dir, n.log, n.node_id)
                for n in self.cluster.state.nodes]

    def node(self, ip: str) -> ClusterNode:
        return next(n for n in self.nodes if n.ip == ip or n.name == ip)

    # --------------------------------------------------------- Ray's own view
    def view(self, timeout: float = 5.0) -> ClusterView:
        return self.cluster.view(timeout=timeout)

    def alive_node_ids(self) -> set[str]:
        return {n.node_id for n in self.view().alive}

    def wait_alive(self, n: int, timeout: float = 180.0) -> ClusterView:
        return self.cluster.wait_alive(n, timeout=timeout)

    def wait_dead(self, ip: str, timeout: float = 60.0) -> ClusterView:
        """Until Ray reports no alive node at ``ip`` and at least one dead one there."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.view()
            if not any(n.ip == ip for n in view.alive) and any(n.ip == ip for n in view.dead):
                return view
            assert time.monotonic() < deadline, f"Ray never reported {ip} dead: {view}"
            time.sleep(0.2)

    # ------------------------------------------------------------------ faults
    def kill_node(self, ip: str, sig: int = signal.SIGKILL) -> int:
        return self.cluster.kill_node(ip, sig)

    def terminate_node(self, ip: str, timeout: float = 30.0) -> float:
        """SIGTERM to the node's ``ray start``; seconds until its whole tree exited."""
        return self.cluster.terminate_node(ip, timeout=timeout)

    def restart_node(self, ip: str, timeout: float = 180.0) -> ClusterNode:
        record = self.cluster.restart_node(ip)
        return self.node(record.ip)

    def kill_head(self, sig: int = signal.SIGKILL) -> int:
        return self.kill_node(self.head_ip, sig)

    def restart_head(self, timeout: float = 180.0) -> ClusterNode:
        record = self.cluster.restart_head(timeout=timeout)
        return self.node(record.ip)

    # -------------------------------------------------------------------- stop
    def down(self) -> None:
        self.cluster.stop()
        state = self.cluster.state
        survivors = [n.name for n in (state.nodes if state else [])
                     if self.cluster.processes(n.ip)]
        self.cluster.cleanup()
        shutil.rmtree(self._driver_home, ignore_errors=True)
        assert not survivors, f"still running after down: {survivors}"


@pytest.fixture
def process_cluster(tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Callable[..., ProcessCluster]]:
    """Factory of real process clusters; every one is stopped at teardown."""
    made: list[ProcessCluster] = []

    def make(workers: int = 2, cpus_per_node: int = 1, redis_url: str | None = None,
             worker_home_isolated: bool = True, memory_per_node: int = 2 * 2**30,
             object_store_per_node: int = 100 * 2**20,
             timeout: float = 300.0, head_cpus: int | None = None,
             worker_env: dict[str, str] | None = None) -> ProcessCluster:
        folder = tmp_path_factory.mktemp("cluster")
        # On a failed start, up() has stopped what it started.
        cluster = ProcessCluster(folder, workers=workers, cpus_per_node=cpus_per_node,
                                 redis_url=redis_url, worker_home_isolated=worker_home_isolated,
                                 memory_per_node=memory_per_node,
                                 object_store_per_node=object_store_per_node, timeout=timeout,
                                 head_cpus=head_cpus, worker_env=worker_env)
        made.append(cluster)
        return cluster

    yield make
    for cluster in reversed(made):
        cluster.down()


class RedisServer:
    """A private ``redis-server`` on a free loopback port (never the shared 6379):
    ``.url``, ``.stop()``, ``.start()`` (same port and data folder: a restart)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", "--appendonly", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.proc.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server never listened"
                time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis for GCS fault tolerance (``process_cluster(redis_url=...url)``)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
