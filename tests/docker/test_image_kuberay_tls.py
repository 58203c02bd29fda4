"""fleetlearn's image under KubeRay's mutual TLS (``tlsOptions.enabled``, v1.7.0), as far
as it can run here without Kubernetes: the init container the operator adds to every Ray
pod (its script vendored in deploy/k8s/schemas, run in this image as the operator runs
it: ``sh -c``, ``POD_IP`` from the downward API) holds a pod until the certificate names
its IP and lets it go once it does; then a head and a worker, each with a certificate of
its own naming only its own IP (the operator's head and worker certificates, one CA),
mounted where the operator mounts them and with the variables it sets, run a task
across the two over Ray TLS and token authentication.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WAIT_SCRIPT = (REPO / "deploy" / "k8s" / "schemas" / "wait-for-tls-ip-san.sh").read_text()
TLS_DIR = "/etc/ray/tls"  # utils.RayTLSCertMountPath
#: What SetContainerTLSConfig (pod.go) sets on every Ray container.
OPERATOR_TLS_ENV = {"RAY_USE_TLS": "1", "RAY_TLS_SERVER_CERT": f"{TLS_DIR}/tls.crt",
                    "RAY_TLS_SERVER_KEY": f"{TLS_DIR}/tls.key",
                    "RAY_TLS_CA_CERT": f"{TLS_DIR}/ca.crt"}
FLEETLEARN = [sys.executable, "-m", "fleetlearn"]


def _docker(*argv: str, timeout: float = 300, check: bool = True,
            stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["docker", *argv], input=stdin, capture_output=True,
                          timeout=timeout, check=False)
    out = subprocess.CompletedProcess(done.args, done.returncode,
                                      done.stdout.decode(errors="replace"),
                                      done.stderr.decode(errors="replace"))
    if check and out.returncode != 0:
        raise AssertionError(f"docker {' '.join(argv[:3])} ... exited {out.returncode}: "
                             f"{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return out


def _exec(name: str, *argv: str, env: dict[str, str] | None = None, timeout: float = 300,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
    return _docker("exec", *flags, name, *argv, timeout=timeout, check=check)


def _mount_certs(name: str, folder: Path) -> None:
    """The CA and the node certificate of ``folder`` where the operator mounts its
    Secret: ``ca.crt``, ``tls.crt``, ``tls.key``."""
    _docker("exec", "-u", "0", name, "sh", "-c",
            f"mkdir -p {TLS_DIR} && chown 1000:1000 {TLS_DIR}")
    for ours, theirs in (("ca.crt", "ca.crt"), ("node.crt", "tls.crt"),
                         ("node.key", "tls.key")):
        _docker("exec", "-i", name, "sh", "-c", f"cat > {TLS_DIR}/{theirs}",
                stdin=(folder / ours).read_bytes())


def _certs(*argv: str) -> None:
    subprocess.run([*FLEETLEARN, "certs", *argv], check=True, capture_output=True,
                   timeout=120)


@pytest.fixture
def pods(docker_images: dict[str, float]) -> Iterator[dict[str, str]]:
    """Two containers of the image on a network of their own: {"head": IP, "worker": IP}
    (their names are ``<prefix>-head`` and ``<prefix>-worker``)."""
    image = os.environ.get("FLEETLEARN_IMAGE", "fleetlearn:dev")
    prefix = f"fl-kuberay-tls-{os.getpid()}"
    _docker("network", "create", prefix)
    try:
        ips = {}
        for role in ("head", "worker"):
            # KubeRay replaces the image's entrypoint with its own bash command.
            _docker("run", "-d", "--name", f"{prefix}-{role}", "--hostname", role,
                    "--network", prefix, "--shm-size", "256m", "--entrypoint", "/bin/bash",
                    image, "-c", "sleep 1800", timeout=600)
            ips[role] = _docker("inspect", "-f",
                                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                                f"{prefix}-{role}").stdout.strip()
        yield {"prefix": prefix, **ips}
    finally:
        for role in ("head", "worker"):
            _docker("rm", "-f", f"{prefix}-{role}", check=False)
        _docker("network", "rm", prefix, check=False)


def test_the_operators_init_container_holds_a_pod_until_its_ip_is_named_then_ray_runs_tls(
        pods: dict[str, str], tmp_path: Path) -> None:
    head, worker = f"{pods['prefix']}-head", f"{pods['prefix']}-worker"
    certs = tmp_path / "certs"

    # 1. A certificate that does not name the pod's IP yet (cert-manager has not caught
    # up with a new pod): the init container keeps waiting and says why.
    _certs("init", str(certs))
    _mount_certs(head, certs)
    waiting = _exec(head, "timeout", "12", "sh", "-c", WAIT_SCRIPT,
                    env={"POD_IP": pods["head"]}, check=False)
    assert waiting.returncode == 124, waiting  # still waiting when timeout stopped it
    assert f"IP SAN for {pods['head']} not yet in cert, retrying in 5s..." in waiting.stdout

    # 2. The head's certificate names its IP: the init container lets the pod go, with
    # the downward API's POD_IP and with its own fallback (hostname -i).
    _certs("rotate", str(certs), "--san", pods["head"])
    _mount_certs(head, certs)
    for env in ({"POD_IP": pods["head"]}, {}):
        ready = _exec(head, "timeout", "60", "sh", "-c", WAIT_SCRIPT, env=env, check=False)
        assert ready.returncode == 0, ready
        assert f"TLS cert now includes IP SAN for {pods['head']}" in ready.stdout

    # 3. The worker's certificate, from the same CA, names the worker's IP and not the
    # head's (the operator's worker certificate names the worker pods only).
    worker_certs = tmp_path / "worker-certs"
    worker_certs.mkdir()
    for name in ("ca.crt", "ca.key"):
        shutil.copy2(certs / name, worker_certs / name)
    _certs("rotate", str(worker_certs), "--san", pods["worker"])
    _mount_certs(worker, worker_certs)
    ready = _exec(worker, "timeout", "60", "sh", "-c", WAIT_SCRIPT,
                  env={"POD_IP": pods["worker"]}, check=False)
    assert ready.returncode == 0, ready
    named = _exec(worker, "openssl", "x509", "-in", f"{TLS_DIR}/tls.crt", "-noout",
                  "-text").stdout
    named_ips = set(re.findall(r"IP Address:([0-9.]+)", named))
    assert pods["worker"] in named_ips
    assert pods["head"] not in named_ips

    # 4. Ray with what the operator sets (TLS variables, token authentication): the head,
    # a worker joining it, and a task that runs on the worker, across TLS.
    env = {**OPERATOR_TLS_ENV, "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    _exec(head, "ray", "start", "--head", "--port", "6380", "--node-ip-address",
          pods["head"], "--num-cpus", "0", "--include-dashboard", "false",
          "--disable-usage-stats", "--object-store-memory", str(100 * 2**20), env=env,
          timeout=300)
    _exec(worker, "ray", "start", "--address", f"{pods['head']}:6380", "--node-ip-address",
          pods["worker"], "--num-cpus", "1", "--resources", '{"trainer": 1}',
          "--disable-usage-stats", "--object-store-memory", str(100 * 2**20), env=env,
          timeout=300)
    task = ("import ray, socket; ray.init(address='auto'); "
            "f = ray.remote(resources={'trainer': 1})(lambda: socket.gethostname()); "
            "print('ran on', ray.get(f.remote(), timeout=240))")
    out = _exec(head, "python", "-c", task, env=env, timeout=300).stdout
    assert "ran on worker" in out, out
