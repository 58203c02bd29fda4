"""The compose stack of deploy/ for the docker tests: build the images, bring a stack up
under its own project name, network and passwords, act on its containers, tear it down.

Interface (``tests/docker/conftest.py`` builds on it):

- :func:`docker_missing`: why Docker cannot be used here (None when it can).
- :func:`build_images`: ``deploy/build-images.sh`` (cached layers; waits for a build
  already running, e.g. the one ``.ci/run`` starts in the background).
- :class:`ComposeStack`: ``up(workers)``, ``compose(*args)``, ``container(service, n)``,
  ``ip(container)``, ``kill(container)``, ``start(container)``, ``exec(...)``,
  ``registry()`` (the registry on the stack's PostgreSQL, read from this machine),
  ``cluster_view()`` (the Ray GCS as :func:`fleetlearn.cluster.cluster_view` reads it,
  with the stack's Ray TLS files and token, ``ray_env()``: copied once from its
  ``ray-secrets`` volume into its folder), ``network()``, ``logs()``, ``down()``
  (``down -v``: containers, network and volumes).

The containers are reached from this machine at their bridge addresses (no port of
theirs is published but the API's and the GUI's, on 127.0.0.1, each on a free port).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fleetlearn.cluster import cluster_view
from fleetlearn.registry import Registry
from fleetlearn.security import ray_security_env

__all__ = ["ComposeStack", "build_images", "compose_command", "docker_missing", "REPO",
           "WORKERS", "WORKER_CPUS", "wait_for", "write_figures"]

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "deploy" / "docker-compose.yml"
TEST_OVERRIDE = Path(__file__).resolve().parent / "docker" / "compose.test.yml"
T = TypeVar("T")
#: The stack of the docker suite: 2 workers, each advertising 3 CPUs (2 Serve replicas
#: of 1 CPU leave room for training).
WORKERS = 2
WORKER_CPUS = 3


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) when the plugin is there, else ``docker-compose`` (1.29);
    ``$FLEETLEARN_COMPOSE`` (e.g. ``docker-compose``) chooses."""
    chosen = os.environ.get("FLEETLEARN_COMPOSE")
    if chosen:
        return chosen.split()
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def docker_missing() -> str | None:
    """What is missing to run the docker tests (None: nothing)."""
    if not shutil.which("docker"):
        return "docker is not installed (apt-get install docker.io docker-compose debootstrap)"
    if compose_command() is None:
        return "neither 'docker compose' nor docker-compose is installed"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True)
    if info.returncode != 0:
        return f"the Docker engine does not answer: {info.stderr.strip()[:200]}"
    return None


#: The machine's own extra CA certificates (a TLS-intercepting proxy), for the builds.
MACHINE_CA_DIR = Path("/usr/local/share/ca-certificates")


def build_images(log: Path) -> float:
    """``deploy/build-images.sh``; the seconds it took (cached: a few).

    The build stages trust ``$FLEETLEARN_EXTRA_CA_DIR``, else this machine's extra CA
    certificates when it has some (``none`` trusts nothing more): behind a
    TLS-intercepting proxy pip cannot reach PyPI otherwise. The images never hold them.
    """
    ca_dir = os.environ.get("FLEETLEARN_EXTRA_CA_DIR")
    if ca_dir is None and any(MACHINE_CA_DIR.glob("*.crt")):
        ca_dir = str(MACHINE_CA_DIR)
    env = {**os.environ, "FLEETLEARN_EXTRA_CA_DIR": "" if ca_dir in (None, "none") else ca_dir}
    start = time.monotonic()
    with log.open("a") as out:
        code = subprocess.run(["bash", str(REPO / "deploy" / "build-images.sh")], cwd=REPO,
                              env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    assert code == 0, f"deploy/build-images.sh failed:\n{log.read_text()[-4000:]}"
    return time.monotonic() - start


def wait_for(check: Callable[[], T], what: str | Callable[[], str], timeout: float,
             poll_s: float = 1.0) -> T:
    """Poll ``check`` until it returns something true (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
        except Exception as exc:  # noqa: BLE001 - not up yet, whatever the reason
            value, last = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            name = what() if callable(what) else what
            raise AssertionError(f"{name}: not within {timeout:g} s (last error: {last!r})")
        time.sleep(poll_s)


@dataclass
class ComposeStack:
    """One stack of deploy/docker-compose.yml under its own project name.

    ``folder`` holds its env file (fresh random passwords), the gate folder the test
    estimators wait at (mounted into the Ray containers) and its logs.
    """

    folder: Path
    project: str = field(default_factory=lambda: f"flt{os.getpid():x}{secrets.token_hex(2)}")
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.gate = self.folder / "gate"
        self.gate.mkdir(exist_ok=True)
        self.gate.chmod(0o777)  # the containers' user (uid 1000) writes its tickets
        # A /24 of its own (172.30.X.0): two stacks on one machine do not collide.
        octet = int(secrets.token_hex(1), 16)
        self.subnet_prefix = f"172.30.{octet}"
        self.head_ip = f"{self.subnet_prefix}.10"
        self.api_port = _free_port()
        self.ui_port = _free_port()  # the GUI's (the ui service), on 127.0.0.1 too
        self.postgres_password = secrets.token_urlsafe(16)
        self.env_file = self.folder / "stack.env"
        self.env_file.write_text("\n".join([
            f"POSTGRES_PASSWORD={self.postgres_password}",
            f"REDIS_PASSWORD={secrets.token_urlsafe(16)}",
            f"FLEETLEARN_API_PORT={self.api_port}",
            f"FLEETLEARN_UI_PORT={self.ui_port}",
            f"FLEETLEARN_SUBNET={self.subnet_prefix}.0/24",
            f"FLEETLEARN_IP_RANGE={self.subnet_prefix}.128/25",
            f"FLEETLEARN_HEAD_IP={self.head_ip}",
            f"FLEETLEARN_CLUSTER_NAMESPACE={self.project}",
            f"FLEETLEARN_TEST_GATE={self.gate}",
            *(f"{k}={v}" for k, v in self.env.items()), ""]))
        self.log = self.folder / "compose.log"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.ui_url = f"http://127.0.0.1:{self.ui_port}"
        self.api_key: str | None = None
        self.model: dict[str, Any] = {}
        self.timings: dict[str, float] = {}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    # ------------------------------------------------------------------ compose
    def compose(self, *args: str, check: bool = True, timeout: float = 900,
                capture: bool = False) -> subprocess.CompletedProcess:
        command = compose_command()
        assert command is not None
        argv = [*command, "-p", self.project, "-f", str(COMPOSE_FILE), "-f",
                str(TEST_OVERRIDE), "--env-file", str(self.env_file), *args]
        # Under vfs a container's creation copies its whole image (about 1 GB): on a loaded
        # machine that outlasts docker-compose 1.29's 60 s client timeout.
        env = {"COMPOSE_HTTP_TIMEOUT": "600", "DOCKER_CLIENT_TIMEOUT": "600", **os.environ,
               "COMPOSE_PROFILES": "ray-serve"}
        if capture:
            done = subprocess.run(argv, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        else:
            with self.log.open("a") as out:
                out.write(f"$ {' '.join(argv)}\n")
                out.flush()
                done = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      text=True, timeout=timeout)
        if check:
            tail = done.stderr if capture else self.log.read_text()[-3000:]
            assert done.returncode == 0, f"compose {' '.join(args)} failed:\n{tail}"
        return done

    def up(self, workers: int) -> None:
        self.compose("up", "-d", "--no-build", "--scale", f"ray-worker={workers}")

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False)

    def logs(self) -> Path:
        out = self.folder / "containers.log"
        done = self.compose("logs", "--no-color", "--timestamps", check=False, capture=True)
        out.write_text(done.stdout + done.stderr)
        return out

    # --------------------------------------------------------------- containers
    def containers(self, service: str, *, running_only: bool = True) -> list[str]:
        """Container names of ``service``, oldest first."""
        argv = ["docker", "ps", "--filter", f"label=com.docker.compose.project={self.project}",
                "--filter", f"label=com.docker.compose.service={service}",
                "--format", "{{.Names}}"]
        if not running_only:
            argv.insert(2, "-a")
        names = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
        return sorted(names, key=self._created)

    def _created(self, name: str) -> str:
        return self.inspect(name)["Created"]

    def inspect(self, name: str) -> dict[str, Any]:
        out = subprocess.run(["docker", "inspect", name], capture_output=True, text=True,
                             check=True).stdout
        return json.loads(out)[0]

    def ip(self, name: str) -> str:
        networks = self.inspect(name)["NetworkSettings"]["Networks"]
        (net,) = [n for key, n in networks.items() if key.endswith("_cluster")]
        return net["IPAddress"]

    def kill(self, name: str) -> None:
        """``docker kill`` (SIGKILL to every process of the container: a crashed machine)."""
        subprocess.run(["docker", "kill", name], check=True, capture_output=True)

    def start(self, name: str) -> None:
        """``docker start``: a kill does not trigger a restart policy."""
        subprocess.run(["docker", "start", name], check=True, capture_output=True)

    def running(self, name: str) -> bool:
        return bool(self.inspect(name)["State"]["Running"])

    def exec(self, name: str, *argv: str, timeout: float = 120) -> str:
        done = subprocess.run(["docker", "exec", name, *argv], capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, f"docker exec {name} {argv}: {done.stderr[-2000:]}"
        return done.stdout

    def processes(self, name: str) -> list[str]:
        """The command lines of every process in the container."""
        out = subprocess.run(["docker", "top", name, "-eo", "pid,args"], capture_output=True,
                             text=True, check=True).stdout
        return out.splitlines()[1:]

    # ------------------------------------------------------------------ reading
    @property
    def address(self) -> str:
        return f"{self.head_ip}:6380"

    def ray_env(self) -> dict[str, str]:
        """The TLS and token variables of a driver of the stack on this machine: the
        files of the ``ray-secrets`` volume (the certs service's), copied once."""
        secrets_dir = self.folder / "ray-secrets"
        if not (secrets_dir / "token").is_file():
            (certs,) = self.containers("certs", running_only=False)
            tmp = self.folder / "ray-secrets.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(["docker", "cp", f"{certs}:/etc/fleetlearn/ray/.", str(tmp)],
                           check=True, capture_output=True)
            tmp.rename(secrets_dir)
        return ray_security_env(secrets_dir, secrets_dir / "token")

    def cluster_view(self, timeout: float = 5.0) -> Any:
        return cluster_view(self.address, timeout=timeout, env=self.ray_env())

    def network(self) -> str:
        """The Docker network of the stack (``<project>_cluster``)."""
        networks = self.inspect(self.containers("ray-head", running_only=False)[0])[
            "NetworkSettings"]["Networks"]
        (name,) = [key for key in networks if key.endswith("_cluster")]
        return name

    def registry_url(self) -> str:
        ip = self.ip(self.containers("postgres")[0])
        return f"postgresql+psycopg://fleetlearn:{self.postgres_password}@{ip}:5432/fleetlearn"

    def registry(self) -> Registry:
        """The stack's registry, read from this machine (no artifact is loaded)."""
        return Registry(self.registry_url(), artifact_dir=self.folder / "no-artifacts")


def write_figures(stack: ComposeStack, name: str, figures: dict[str, Any]) -> Path:
    """Print ``figures`` and write them as JSON: ``$FLEETLEARN_FAULT_FIGURES`` names a file
    ``X.json`` (then ``X_<name>.json`` beside it: this module writes several) or a folder
    (``<name>.json`` in it); the stack's folder by default. benchmarks/faults.py --compose
    reads them."""
    given = Path(os.environ.get("FLEETLEARN_FAULT_FIGURES") or stack.folder)
    if given.suffix == ".json":
        path = given.parent / f"{given.stem}_{name}.json"
    else:
        path = given / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps(figures, indent=2, default=str))
    return path


def _free_port() -> int:
    from live_server import free_port

    return free_port()
