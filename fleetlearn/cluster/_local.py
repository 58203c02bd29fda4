"""A Ray cluster of separate processes on one machine: a head and N workers.

Each node is its own ``ray start --block`` process tree with its own loopback IP
(head ``127.0.1.1`` by default: Ray rewrites ``127.0.0.1`` to the machine's
outward address; workers ``127.0.0.2``, ``.3`` …), its own ``--num-cpus``,
``--memory`` cap and object store, its own HOME and its own Ray temp folder (so a
head can be restarted while its workers run: Ray refuses a second head in a temp
folder that records a running cluster). Workers are started as ``fleetlearn cluster
join``, which finds the head through the address file like a container would.

Every process is recorded (PID and start time, which guards against a reused PID)
in ``<dir>/state.json``; ``stop`` ends exactly those, by PID: SIGTERM to each node,
SIGKILL to what remains of its process tree after the grace.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from fleetlearn.cluster._join import head_answers, ray_executable
from fleetlearn.cluster._state import (
    ADDRESS_ENV,
    ADDRESS_FILE,
    ADDRESS_FILE_ENV,
    STATE_FILE,
    ClusterState,
    NodeRecord,
    default_cluster_dir,
    read_state,
    write_state,
)
from fleetlearn.cluster._view import ClusterView, cluster_view
from fleetlearn.errors import ClusterError, ConfigError
from fleetlearn.security import cluster_sans, ensure_certs, ensure_token, ray_security_env

__all__ = ["LocalCluster", "NodeOptions", "StoppedNode", "free_port", "parse_redis_url",
           "STOP_GRACE_S", "node_env", "FAST_HEALTH_CHECK", "GCS_RECONNECT_TIMEOUT_S",
           "CERTS_DIR", "TOKEN_FILE"]

#: On the head: a dead node is noticed in about 1.3 s instead of Ray's default ~13 s.
FAST_HEALTH_CHECK = {"RAY_health_check_period_ms": "500",
                     "RAY_health_check_timeout_ms": "500",
                     "RAY_health_check_failure_threshold": "3"}
#: With Redis (GCS fault tolerance), every node waits this long for a restarted head
#: before giving up (Ray's default is 60 s).
GCS_RECONNECT_TIMEOUT_S = 180
#: Ray's unix sockets live under the temp folder and must stay under ~107 bytes;
#: longer cluster folders get their nodes' temp folders in /tmp.
_MAX_TEMP_DIR = 40
#: ray start --block stops its processes within ~3 s of SIGTERM; 10 s is Docker's grace.
STOP_GRACE_S = 10.0
#: Files of a secure cluster, in its folder: the certificates (``fleetlearn certs``) and
#: the Ray token.
CERTS_DIR = "certs"
TOKEN_FILE = "token"
#: The sitecustomize that keeps Ray's metrics servers on loopback, and its variable.
_NODE_SITE = Path(__file__).parent / "_node_site"
LOOPBACK_PORTS_ENV = "FLEETLEARN_LOOPBACK_PORTS"
#: Ports a node records that are not ``ray start`` options: the head's autoscaler and
#: dashboard metrics servers (Ray's AUTOSCALER_METRIC_PORT and DASHBOARD_METRIC_PORT,
#: fixed 44217 and 44227 by default: they would collide between clusters).
_HEAD_METRICS = {"autoscaler-metrics": "AUTOSCALER_METRIC_PORT",
                 "dashboard-metrics": "DASHBOARD_METRIC_PORT"}
#: Worker IPs the cluster's certificates name beyond the workers ``up`` starts.
_SPARE_IPS = 32
#: Starts of one node before ``up`` gives up (see ``_start_head_until_up``): Ray's
#: raylet aborts when its dashboard agent has not reported its ports within 15 s,
#: which a machine loaded by other work misses now and then.
START_ATTEMPTS = 5

GIB = 2**30
MIB = 2**20


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (never 6379)."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


def parse_redis_url(url: str) -> tuple[str, str | None]:
    """``redis://[:password@]host:port`` or ``host:port`` → (``host:port``, password).

    Examples
    --------
    >>> parse_redis_url("redis://:s3cret@127.0.0.1:6380")
    ('127.0.0.1:6380', 's3cret')
    >>> parse_redis_url("127.0.0.1:6380")
    ('127.0.0.1:6380', None)
    """
    text = url.strip()
    parts = urlsplit(text if "://" in text else f"redis://{text}")
    if parts.scheme not in ("redis", "rediss") or not parts.hostname or not parts.port:
        raise ConfigError("The '--redis' option must be a Redis URL like "
                          f"redis://127.0.0.1:6380. Got {url!r} instead.")
    return f"{parts.hostname}:{parts.port}", parts.password or None


@dataclass(frozen=True)
class NodeOptions:
    """Resources each node advertises."""

    num_cpus: int = 1
    memory: int = 2 * GIB
    object_store_memory: int = 100 * MIB

    def __post_init__(self) -> None:
        if self.num_cpus < 1:
            raise ConfigError(f"The 'cpus_per_node' option must be an int in the range "
                              f"[1, inf). Got {self.num_cpus} instead.")
        if self.memory < 256 * MIB:
            raise ConfigError("The 'memory_per_node' option must be at least 256 MiB. "
                              f"Got {self.memory} bytes instead.")
        if self.object_store_memory < 80 * MIB:  # Ray refuses less than ~75 MiB
            raise ConfigError("The 'object_store_per_node' option must be at least 80 MiB. "
                              f"Got {self.object_store_memory} bytes instead.")


@dataclass(frozen=True)
class StoppedNode:
    """What ``stop`` did to one node."""

    name: str
    ip: str
    pid: int
    how: str  # "SIGTERM" | "SIGKILL" | "not running"
    seconds: float
    processes: int


def node_env(base: dict[str, str], home: Path, temp_dir: Path, *,
             isolated: bool = True, security: dict[str, str] | None = None,
             loopback_ports: list[int] | None = None) -> dict[str, str]:
    """A node's environment: ``base`` without Ray's and fleetlearn's variables (an
    isolated node has no ``FLEETLEARN_HOME``: workers never touch the registry), its
    own HOME and Ray temp folder, and the cluster's TLS and token variables
    (``security``; None: neither, token auth off). ``loopback_ports``: ports Ray
    would bind to every interface (its metrics servers) that go to 127.0.0.1 instead
    (``_node_site/sitecustomize.py``, first on the node's PYTHONPATH)."""
    if isolated:
        env = {k: v for k, v in base.items() if not k.startswith(("RAY_", "FLEETLEARN_"))}
        env["HOME"] = str(home)
    else:
        env = {k: v for k, v in base.items() if not k.startswith("RAY_")}
    env.update(RAY_TMPDIR=str(temp_dir), PYTHONUNBUFFERED="1",
               RAY_USAGE_STATS_ENABLED="0",
               # A loaded machine starts the dashboard agent slowly (13 s measured).
               RAY_agent_register_timeout_ms="120000")
    env.update(security or {"RAY_AUTH_MODE": "disabled"})
    if loopback_ports:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_NODE_SITE), env.get("PYTHONPATH")) if p)
        env[LOOPBACK_PORTS_ENV] = ",".join(str(p) for p in loopback_ports)
    return env


def _tree(pid: int, create_time: float | None = None) -> list[psutil.Process]:
    """The process and all its descendants, alive now (empty if the PID is gone or
    reused by another process)."""
    try:
        root = psutil.Process(pid)
        if create_time is not None and abs(root.create_time() - create_time) > 1.0:
            return []
        if root.status() == psutil.STATUS_ZOMBIE:
            return []
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


class LocalCluster:
    """A head and workers as ``ray start`` processes on this machine.

    Parameters
    ----------
    folder : path, optional
        Where the state file, address file, logs and the nodes' HOMEs go
        (default ``<FLEETLEARN_HOME>/cluster``).
    options : NodeOptions
        CPUs, memory and object store of every node.
    redis_url : str, optional
        GCS fault tolerance: the head keeps its state in this Redis (its own
        namespace per cluster), so a restarted head picks the cluster up again.
    head_ip : str
        The head's loopback IP (not ``127.0.0.1``: Ray replaces it with the machine's
        outward address).
    ip_prefix : str
        The first three octets of the workers' loopback IPs: ``<prefix>.2``, ``.3`` …
    isolated : bool
        Nodes get their own HOME and no ``FLEETLEARN_*`` variables.
    env : dict, optional
        The environment nodes start from (default ``os.environ``).
    head_cpus : int, optional
        CPUs the head advertises (default: ``options.num_cpus``). 0 keeps tasks and
        Serve replicas off the head, so losing it loses no work but the GCS's.
    worker_env : dict, optional
        Extra variables for every worker (``RAY_*`` allowed), e.g. Ray Serve's
        ``RAY_SERVE_WORKER_PROXY_HTTP_PORT`` so the workers' proxies listen apart from
        the head's.
    secure : bool
        Ray TLS between every node and driver and Ray token authentication (default):
        the certificates in ``<folder>/certs`` (made, or reused and renewed when they
        end within 30 days or miss a node's IP) and the token in ``<folder>/token``.
        False: neither (``--insecure``).

    Examples
    --------
    >>> cluster = LocalCluster("/tmp/c", options=NodeOptions(num_cpus=1))  # doctest: +SKIP
    >>> cluster.up(workers=2)                                              # doctest: +SKIP
    >>> cluster.view().alive                                               # doctest: +SKIP
    >>> cluster.stop()                                                     # doctest: +SKIP
    """

    def __init__(self, folder: Path | str | None = None, *, options: NodeOptions | None = None,
                 redis_url: str | None = None, head_ip: str = "127.0.1.1",
                 ip_prefix: str = "127.0.0", isolated: bool = True,
                 env: dict[str, str] | None = None, port: int | None = None,
                 head_cpus: int | None = None,
                 worker_env: dict[str, str] | None = None, secure: bool = True) -> None:
        self.folder = Path(folder or default_cluster_dir()).expanduser().absolute()
        self.options = options or NodeOptions()
        self.redis_url = redis_url
        if redis_url:
            parse_redis_url(redis_url)
        self.head_ip = head_ip
        self.ip_prefix = ip_prefix
        self.isolated = isolated
        self.base_env = dict(os.environ if env is None else env)
        self.port = port
        if head_cpus is not None and int(head_cpus) < 0:
            raise ConfigError(f"The 'head_cpus' option must be an int in the range [0, inf). "
                              f"Got {head_cpus} instead.")
        self.head_cpus = self.options.num_cpus if head_cpus is None else int(head_cpus)
        self.worker_env = dict(worker_env or {})
        self.secure = secure
        self.state: ClusterState | None = None
        # Popen handles of nodes this process started: reaped here (no zombies).
        self._procs: dict[int, subprocess.Popen] = {}
        # Nodes taken down on purpose (kill_node): not a start-up failure.
        self._killed: set[str] = set()

    # ----------------------------------------------------------------- discovery
    @classmethod
    def attach(cls, folder: Path | str | None = None) -> LocalCluster:
        """The cluster recorded in ``folder``; ClusterError when none is."""
        path = Path(folder or default_cluster_dir()).expanduser().absolute()
        state = read_state(path)
        if state is None:
            raise ClusterError(f"No cluster is recorded in {path}; start one with "
                               "'fleetlearn cluster up'.")
        head = state.head
        like = state.workers[0] if state.workers else head
        cluster = cls(path, options=NodeOptions(max(1, like.num_cpus), like.memory,
                                                like.object_store_memory),
                      redis_url=state.redis_url, head_ip=head.ip, port=state.port,
                      head_cpus=head.num_cpus, secure=state.certs_dir is not None)
        cluster.state = state
        return cluster

    @property
    def address(self) -> str:
        if self.state is None:
            raise ClusterError("The cluster is not started.")
        return self.state.address

    def running_nodes(self) -> list[NodeRecord]:
        """Recorded nodes whose process still runs (by PID and start time)."""
        if self.state is None:
            return []
        return [n for n in self.state.nodes if self._node_procs(n)]

    # ------------------------------------------------------------------- start
    def up(self, workers: int, *, timeout: float = 120.0,
           on_progress: Callable[[str], None] | None = None) -> ClusterState:
        """Start the head and ``workers`` workers; wait until Ray reports all alive."""
        if workers < 0:
            raise ConfigError(f"The 'workers' option must be an int in the range [0, inf). "
                              f"Got {workers} instead.")
        port = self.preflight()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "logs").mkdir(exist_ok=True)
        self.state = ClusterState(dir=str(self.folder), address=f"{self.head_ip}:{port}",
                                  port=port, redis_url=self.redis_url,
                                  created_at=time.time(),
                                  env={"RAY_ADDRESS": f"{self.head_ip}:{port}"})
        # Each cluster's GCS keys in a shared Redis stay apart (and a restarted head
        # finds its own).
        self.state.namespace = f"fleetlearn-{uuid.uuid4().hex[:12]}"
        self._secure_state(workers)
        say = on_progress or (lambda _: None)
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_head_until_up(timeout, say)
                # One worker at a time: nodes starting together compete for the CPU,
                # and Ray gives a raylet 30 s to register (a loaded 2-core machine
                # misses it).
                for k in range(workers):
                    node = self.add_worker()
                    say(f"worker {node.ip} (pid {node.pid})")
                    self.wait_alive(2 + k, timeout=timeout, on_progress=on_progress,
                                    restarts=START_ATTEMPTS - 1)
                return self.state
            except _HeadExited as exc:
                # The head registered, then one of its processes died (its raylet
                # aborts when its agents report late on a loaded machine): nothing
                # has run on this cluster yet, so it starts again from the head, in a
                # fresh GCS namespace.
                self.stop()
                if attempt == START_ATTEMPTS:
                    raise
                say(f"the head exited while the cluster was starting ({exc}); "
                    "starting the cluster again")
                self.state.nodes = []
                self.state.namespace = f"fleetlearn-{uuid.uuid4().hex[:12]}"
                write_state(self.state)
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _secure_state(self, workers: int) -> None:
        """Certificates and token for this cluster (made or reused), recorded in the
        state with the variables every node and driver needs."""
        assert self.state is not None
        certs = token = None
        if self.secure:
            sans = cluster_sans(self.head_ip, self.ip_prefix, workers + _SPARE_IPS)
            certs = ensure_certs(self.folder / CERTS_DIR, sans=sans)
            token = ensure_token(self.folder / TOKEN_FILE)
            self.state.certs_dir, self.state.token_file = str(certs), str(token)
        self.state.env.update(ray_security_env(certs, token))

    def _security(self) -> dict[str, str]:
        """The TLS and token variables of every node (and of this process's GCS
        clients when it reads the cluster)."""
        found = self.state.security_env if self.state else None
        return found or {"RAY_AUTH_MODE": "disabled"}

    def preflight(self) -> int:
        """Check that ``up`` can start (no cluster of this folder runs, the port is
        free); return the head's port."""
        previous = read_state(self.folder)
        if previous is not None:
            old = LocalCluster.attach(self.folder)
            if old.running_nodes():
                raise ClusterError(
                    f"A cluster already runs from {self.folder} (head {previous.address}, "
                    f"{len(old.running_nodes())} node(s) up); stop it with "
                    "'fleetlearn cluster down' first, or pass another --dir.")
        if self.port and not _port_free(self.head_ip, self.port):
            raise ClusterError(f"Port {self.port} is already in use on {self.head_ip}; "
                               "choose another --port or leave it out.")
        return self.port or free_port(self.head_ip)

    def _node_dirs(self, name: str) -> tuple[Path, Path]:
        home = self.folder / "nodes" / name / "home"
        temp = self.folder / "nodes" / name / "tmp"
        if len(str(temp)) > _MAX_TEMP_DIR:
            tag = uuid.uuid5(uuid.NAMESPACE_URL, str(self.folder)).hex[:8]
            temp = Path("/tmp") / f"flc-{tag}-{name}"
        if temp.exists():  # a previous cluster's: a fresh start needs an empty one
            shutil.rmtree(temp, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        temp.mkdir(parents=True, exist_ok=True)
        return home, temp

    def _ports(self, ip: str) -> dict[str, int]:
        # Fixed defaults (52365 for the dashboard agent, 10001 for Ray Client) would
        # collide between nodes and other clusters on this machine.
        return {name: free_port(ip) for name in (
            "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
            "metrics-export-port", "runtime-env-agent-port",
            "node-manager-port", "object-manager-port")}

    def _resource_args(self, cpus: int | None = None) -> list[str]:
        o = self.options
        return ["--num-cpus", str(o.num_cpus if cpus is None else cpus), "--memory", str(o.memory),
                "--object-store-memory", str(o.object_store_memory)]

    def _spawn(self, name: str, role: str, ip: str, argv: list[str], env: dict[str, str],
               home: Path, temp: Path, ports: dict[str, int]) -> NodeRecord:
        log = self.folder / "logs" / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=str(home))
        self._procs[proc.pid] = proc
        record = NodeRecord(name=name, role=role, ip=ip, pid=proc.pid, home=str(home),
                            temp_dir=str(temp), log=str(log),
                            num_cpus=self.head_cpus if role == "head" else self.options.num_cpus,
                            memory=self.options.memory,
                            object_store_memory=self.options.object_store_memory,
                            started_at=psutil.Process(proc.pid).create_time(), ports=ports,
                            command=argv)
        assert self.state is not None
        self.state.nodes = [n for n in self.state.nodes if n.name != name] + [record]
        write_state(self.state)
        return record

    def _head_env(self, home: Path, temp: Path, ports: dict[str, int]) -> dict[str, str]:
        env = node_env(self.base_env, home, temp, isolated=self.isolated,
                       security=self._security(), loopback_ports=_metrics_ports(ports))
        env.update(FAST_HEALTH_CHECK)
        env.update({var: str(ports[name]) for name, var in _HEAD_METRICS.items()})
        if self.redis_url:
            address, _ = parse_redis_url(self.redis_url)
            env["RAY_REDIS_ADDRESS"] = address
            env["RAY_external_storage_namespace"] = self._namespace_name()
            env["RAY_gcs_rpc_server_reconnect_timeout_s"] = str(GCS_RECONNECT_TIMEOUT_S)
        return env

    def _namespace_name(self) -> str:
        assert self.state is not None
        return self.state.namespace

    def _start_head(self) -> NodeRecord:
        assert self.state is not None
        home, temp = self._node_dirs("head")
        # Ray refuses a head whose temp folder records a running cluster; a restarted
        # head starts from a clean one (its GCS state is in Redis, not here).
        (temp / "ray_current_cluster").unlink(missing_ok=True)
        ports = self._ports(self.head_ip)
        ports["ray-client-server-port"] = free_port(self.head_ip)
        argv = [ray_executable(), "start", "--head", "--block", "--disable-usage-stats",
                "--port", str(self.state.port), "--node-ip-address", self.head_ip,
                "--include-dashboard", "false", "--temp-dir", str(temp),
                *self._resource_args(self.head_cpus), *_port_args(ports)]
        ports.update({name: free_port("127.0.0.1") for name in _HEAD_METRICS})
        if self.redis_url:
            _, password = parse_redis_url(self.redis_url)
            if password:
                argv += ["--redis-password", password]
        return self._spawn("head", "head", self.head_ip, argv,
                           self._head_env(home, temp, ports), home, temp, ports)

    def _start_head_until_up(self, timeout: float, say: Callable[[str], None]) -> None:
        """Start the head; on a loaded machine Ray's own start-up timeouts (30 s for
        the raylet to register) can fail it: start it again, up to START_ATTEMPTS."""
        old = next((n.node_id for n in self.state.nodes if n.role == "head"), None) \
            if self.state else None
        for attempt in range(1, START_ATTEMPTS + 1):
            head = self._start_head()
            say(f"head {self.address} (pid {head.pid})")
            try:
                self._wait_head(timeout)
                # The GCS answers before the head's raylet has registered, which can
                # still time out: the head is up once Ray lists it alive.
                self._wait_head_node(head, timeout, old)
                return
            except _HeadExited as exc:
                if attempt == START_ATTEMPTS:
                    raise
                say(f"the head failed to start ({exc}); starting it again")
                self._stop_node(head)

    def _wait_head_node(self, head: NodeRecord, timeout: float,
                        previous: str | None = None) -> None:
        """Until Ray lists this head alive: a head node other than ``previous`` (a
        restarted GCS may still list the killed head as alive from Redis)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                new = [n for n in self.view(timeout=2.0).alive
                       if n.is_head and n.ip == head.ip and n.node_id != previous]
            except ClusterError:
                new = []
            if new:
                head.node_id = new[0].node_id
                assert self.state is not None
                write_state(self.state)
                return
            if not self._node_procs(head):
                raise _exited_while_starting(head)
            if time.monotonic() > deadline:
                raise ClusterError(f"The head at {self.address} did not register within "
                                   f"{timeout:g} s; see {head.log}.")
            time.sleep(0.25)

    def _wait_head(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not head_answers(self.address, timeout=1.0, env=self._security()):
            head = self.state.head if self.state else None
            if head is not None and not self._node_procs(head):
                raise _exited_while_starting(head)
            if time.monotonic() > deadline:
                raise ClusterError(f"The head at {self.address} did not answer within "
                                   f"{timeout:g} s; see {head.log if head else 'its log'}.")
            time.sleep(0.25)

    def add_worker(self, ip: str | None = None) -> NodeRecord:
        """Start one more worker (``fleetlearn cluster join``) on the next free IP."""
        assert self.state is not None, "start the head first"
        used = {n.ip for n in self.state.nodes}
        if ip is None:
            k = 2
            while f"{self.ip_prefix}.{k}" in used or f"{self.ip_prefix}.{k}" == self.head_ip:
                k += 1
            ip = f"{self.ip_prefix}.{k}"
        name = f"worker-{ip.rsplit('.', 1)[-1]}" if ip.startswith(self.ip_prefix + ".") else (
            f"worker-{ip}")
        home, temp = self._node_dirs(name)
        ports = self._ports(ip)
        env = node_env(self.base_env, home, temp, isolated=self.isolated,
                       security=self._security(), loopback_ports=_metrics_ports(ports))
        # The worker finds the head by itself, through the address file.
        env[ADDRESS_FILE_ENV] = str(self.folder / ADDRESS_FILE)
        env.pop(ADDRESS_ENV, None)
        if self.redis_url:
            env["RAY_gcs_rpc_server_reconnect_timeout_s"] = str(GCS_RECONNECT_TIMEOUT_S)
        env.update(self.worker_env)
        argv = [sys.executable, "-m", "fleetlearn", "cluster", "join",
                "--node-ip-address", ip, "--", "--temp-dir", str(temp),
                *self._resource_args(), *_port_args(ports)]
        return self._spawn(name, "worker", ip, argv, env, home, temp, ports)

    # ------------------------------------------------------------------ observe
    def view(self, timeout: float = 5.0) -> ClusterView:
        """The cluster as Ray's GCS reports it."""
        return cluster_view(self.address, timeout=timeout, env=self._security())

    def wait_alive(self, n: int, timeout: float = 120.0,
                   on_progress: Callable[[str], None] | None = None,
                   restarts: int = 0) -> ClusterView:
        """Wait until Ray reports ``n`` alive nodes; fill in their Ray node ids.

        A worker whose process exits meanwhile is started again up to ``restarts``
        times (Ray's start-up timeouts fail nodes on a loaded machine), else this
        raises ClusterError naming its log.
        """
        deadline = time.monotonic() + timeout
        last = -1
        restarted: dict[str, int] = {}
        while True:
            try:
                view = self.view(timeout=2.0)
                alive = len(view.alive)
            except ClusterError:
                view, alive = None, 0
            if view is not None and alive >= n:
                self._record_node_ids(view)
                return view
            if alive != last and on_progress is not None:
                on_progress(f"{alive}/{n} nodes alive")
            last = alive
            for node in list(self.state.nodes) if self.state else []:
                if node.name in self._killed or self._node_procs(node):
                    continue
                if node.role == "worker" and restarted.get(node.name, 0) < restarts:
                    restarted[node.name] = restarted.get(node.name, 0) + 1
                    if on_progress is not None:
                        on_progress(f"{node.name} exited while starting "
                                    f"({_why_stopped(Path(node.log))}); starting it again")
                    self.add_worker(node.ip)
                    continue
                error = _HeadExited if node.role == "head" else ClusterError
                raise error(f"Node {node.name} ({node.ip}) exited while starting; "
                            f"see {node.log}: {_why_stopped(Path(node.log))}")
            if time.monotonic() > deadline:
                raise ClusterError(f"Only {alive} of {n} nodes alive after {timeout:g} s; "
                                   f"logs in {self.folder / 'logs'}.")
            time.sleep(0.5)

    def _record_node_ids(self, view: ClusterView) -> None:
        if self.state is None:
            return
        by_ip = {n.ip: n.node_id for n in view.alive
                 if not any(r.node_id == n.node_id for r in self.state.nodes)}
        changed = False
        for node in self.state.nodes:
            if by_ip.get(node.ip) and node.node_id != by_ip[node.ip]:
                node.node_id = by_ip[node.ip]
                changed = True
        if changed:
            write_state(self.state)

    # -------------------------------------------------------------------- faults
    def _node_procs(self, node: NodeRecord) -> list[psutil.Process]:
        proc = self._procs.get(node.pid)
        if proc is not None:
            proc.poll()  # reap our own child, so a dead node is not a zombie
        found = {p.pid: p for p in _tree(node.pid, node.started_at) + self._group(node)}
        return _alive(list(found.values()))

    @staticmethod
    def _group(node: NodeRecord) -> list[psutil.Process]:
        """Processes still in the node's session (started with its own), for when the
        ``ray start`` parent is gone but its children are not."""
        out = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getsid(proc.pid) == node.pid and proc.pid != node.pid:
                    out.append(proc)
            except (OSError, psutil.Error):
                continue
        return out

    def kill_node(self, ip: str, sig: int = signal.SIGKILL) -> int:
        """Signal every process of the node at ``ip`` at once (a crashed machine for
        SIGKILL). Returns how many processes were signalled."""
        assert self.state is not None
        node = self.state.node(ip)
        procs = self._node_procs(node)
        self._killed.add(node.name)
        _signal_all(procs, sig)
        if sig == signal.SIGKILL:
            psutil.wait_procs(procs, timeout=10)
            self._reap()
        return len(procs)

    def processes(self, ip: str) -> list[psutil.Process]:
        """The running processes of the node at ``ip`` (its ``ray start`` first)."""
        assert self.state is not None
        return self._node_procs(self.state.node(ip))

    def terminate_node(self, ip: str, timeout: float = 30.0) -> float:
        """SIGTERM to the node's ``ray start`` (what ``docker stop`` sends); return
        the seconds until its whole process tree exited. What is left after
        ``timeout`` is killed and reported as a ClusterError."""
        assert self.state is not None
        node = self.state.node(ip)
        procs = self._node_procs(node)
        self._killed.add(node.name)
        start = time.monotonic()
        _signal_all(procs[:1], signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        took = time.monotonic() - start
        _signal_all(alive, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=10)
        self._reap()
        if alive:
            raise ClusterError(f"{len(alive)} process(es) of {node.name} ({ip}) were still "
                               f"running {timeout:g} s after SIGTERM.")
        return took

    def restart_node(self, ip: str) -> NodeRecord:
        """Start a node again that was killed (same IP, same command)."""
        assert self.state is not None
        node = self.state.node(ip)
        if self._node_procs(node):
            raise ClusterError(f"Node {node.name} ({node.ip}) still runs.")
        self._killed.discard(node.name)
        if node.role == "head":
            return self._start_head()
        return self.add_worker(node.ip)

    def restart_head(self, timeout: float = 120.0) -> NodeRecord:
        """Start the head again on the same IP and port (and the same Redis
        namespace: with GCS fault tolerance the workers reconnect to it)."""
        assert self.state is not None
        head = self.state.head
        if self._node_procs(head):
            raise ClusterError(f"The head ({head.ip}) still runs.")
        self._killed.discard(head.name)
        self._start_head_until_up(timeout, lambda _: None)
        return self.state.head

    # --------------------------------------------------------------------- stop
    def stop(self, grace: float = STOP_GRACE_S) -> list[StoppedNode]:
        """Stop every recorded node: SIGTERM to each ``ray start`` (workers first),
        SIGKILL to whatever of its tree remains after ``grace`` seconds. Returns what
        was done; afterwards no recorded process runs."""
        if self.state is None:
            return []
        report: list[StoppedNode] = []
        nodes = sorted(self.state.nodes, key=lambda n: n.role == "head")
        trees = {n.name: self._node_procs(n) for n in nodes}
        start = time.monotonic()
        for node in nodes:
            procs = trees[node.name]
            if procs:
                _signal_all(procs[:1] if procs[0].pid == node.pid else procs, signal.SIGTERM)
        for node in nodes:
            procs = trees[node.name]
            if not procs:
                report.append(StoppedNode(node.name, node.ip, node.pid, "not running", 0.0, 0))
                continue
            left = max(0.5, grace - (time.monotonic() - start))
            proc = self._procs.get(node.pid)
            if proc is not None:
                try:
                    proc.wait(timeout=left)
                except subprocess.TimeoutExpired:
                    pass
            _, alive = psutil.wait_procs(procs, timeout=max(0.1, grace -
                                                            (time.monotonic() - start)))
            how = "SIGTERM"
            alive = _alive(alive + self._group(node))
            if alive:
                _signal_all(alive, signal.SIGKILL)
                psutil.wait_procs(alive, timeout=10)
                how = "SIGKILL"
            report.append(StoppedNode(node.name, node.ip, node.pid, how,
                                      time.monotonic() - start, len(procs)))
        self._reap()
        return report

    def _stop_node(self, node: NodeRecord, grace: float = STOP_GRACE_S) -> None:
        procs = self._node_procs(node)
        _signal_all(procs, signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=grace)
        _signal_all(alive, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=10)
        self._reap()

    def _reap(self) -> None:
        for pid, proc in list(self._procs.items()):
            if proc.poll() is not None:
                del self._procs[pid]

    def forget(self) -> None:
        """Remove the state and address files (after ``stop``): no cluster recorded."""
        for name in (STATE_FILE, ADDRESS_FILE):
            (self.folder / name).unlink(missing_ok=True)

    def cleanup(self) -> None:
        """Remove the nodes' temp folders made in /tmp (after ``stop``)."""
        for node in self.state.nodes if self.state else []:
            if node.temp_dir.startswith("/tmp/flc-"):
                shutil.rmtree(node.temp_dir, ignore_errors=True)


def _metrics_ports(ports: dict[str, int]) -> list[int]:
    return [ports[k] for k in ("metrics-export-port", *_HEAD_METRICS) if k in ports]


def _port_args(ports: dict[str, int]) -> list[str]:
    out: list[str] = []
    for name, port in ports.items():
        out += [f"--{name}", str(port)]
    return out


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class _HeadExited(ClusterError):
    """The head's ``ray start`` exited before the cluster was up."""


def _exited_while_starting(head: NodeRecord) -> ClusterError:
    return _HeadExited(f"The head exited while starting; see {head.log}: "
                        f"{_why_stopped(Path(head.log))}")


#: What ``ray start --block`` prints when one of its processes dies: this line, the
#: dead (``raylet [exit code=1]``), then the tail of each one's log.
_RAY_DIED = "Some Ray subprocesses exited unexpectedly"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CLI_PREFIX = re.compile(r"^\S+ \S+\s+\w+ \S+:\d+ -- ")
_EXIT_CODE = re.compile(r"^(\w+)\s+\[exit code=([^\]]+)\]")
#: A line of a Ray process's log that says what went wrong: level E(rror) or
#: C(ritical) in Ray's ``[time L pid tid]`` prefix, or a failed check.
_RAY_FAULT = re.compile(r"^\[\S+ \S+ [ECF] \d+ \d+\]|Check failed")


def _why_stopped(path: Path) -> str:
    """Why a node's ``ray start`` stopped, from its log: the Ray processes that died,
    their exit codes and the last error line of their logs when ``ray start`` reported
    them, else the log's last line."""
    try:
        text = _ANSI.sub("", path.read_text(errors="replace"))
    except OSError:
        return "(no log)"
    lines = [_CLI_PREFIX.sub("", ln).strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "(empty log)"
    at = max((i for i, ln in enumerate(lines) if _RAY_DIED in ln), default=None)
    if at is not None:
        after = lines[at + 1:]
        dead = [f"{m.group(1)} (exit code {m.group(2)})" for ln in after[:8]
                if (m := _EXIT_CODE.match(ln))]
        faults = [ln for ln in after if _RAY_FAULT.search(ln)]
        if dead:
            said = "Ray's " + ", ".join(dead) + " exited"
            return (said + (f"; its log: {faults[-1]}" if faults else ""))[:400]
    return lines[-1][:300]
