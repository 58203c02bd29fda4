"""A secure local cluster without starting one: the certificates and token ``up``
prepares, the variables every node and driver gets, ``cluster env``, and the security
part of ``cluster status``. The real TLS + token cluster is in
tests/slow/test_cluster_security.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from fleetlearn.cli import main
from fleetlearn.cluster import (
    ClusterState,
    LocalCluster,
    exposure_lines,
    free_port,
    node_env,
    reach,
    read_state,
    recorded_security_env,
    security_record,
    write_state,
)
from fleetlearn.security import init_certs, rotate_certs


def _prepared(tmp_path: Path, secure: bool = True, workers: int = 2) -> ClusterState:
    """What ``up`` records before it starts a node."""
    cluster = LocalCluster(tmp_path / "c", head_ip="127.44.1.1", ip_prefix="127.44.1",
                           secure=secure, env={"PATH": "/bin"})
    cluster.state = ClusterState(dir=str(cluster.folder), address="127.44.1.1:4000",
                                 port=4000, redis_url=None, created_at=1.0,
                                 env={"RAY_ADDRESS": "127.44.1.1:4000"})
    cluster._secure_state(workers)
    write_state(cluster.state)
    return cluster.state


def test_a_secure_cluster_gets_certificates_naming_its_ips_and_a_private_token(
        tmp_path: Path) -> None:
    state = _prepared(tmp_path)
    folder = tmp_path / "c"
    assert state.certs_dir == str(folder / "certs")
    assert state.token_file == str(folder / "token")
    assert stat.S_IMODE((folder / "token").stat().st_mode) == 0o600
    node = x509.load_pem_x509_certificate((folder / "certs" / "node.crt").read_bytes())
    ips = {str(ip) for ip in node.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)}
    assert {"127.44.1.1", "127.44.1.2", "127.44.1.3"} <= ips
    assert state.env == {
        "RAY_ADDRESS": "127.44.1.1:4000", "RAY_USE_TLS": "1",
        "RAY_TLS_SERVER_CERT": str(folder / "certs/node.crt"),
        "RAY_TLS_SERVER_KEY": str(folder / "certs/node.key"),
        "RAY_TLS_CA_CERT": str(folder / "certs/ca.crt"),
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(folder / "token")}
    # Every node gets them (and nothing of the caller's own RAY_ settings).
    env = node_env({"PATH": "/bin", "RAY_USE_TLS": "0"}, tmp_path / "h", tmp_path / "t",
                   security=state.security_env)
    assert env["RAY_USE_TLS"] == "1"
    assert env["RAY_AUTH_TOKEN_PATH"] == str(folder / "token")


def test_a_second_up_reuses_the_ca_and_token(tmp_path: Path) -> None:
    first = _prepared(tmp_path)
    ca = (tmp_path / "c/certs/ca.crt").read_bytes()
    token = (tmp_path / "c/token").read_text()
    _prepared(tmp_path)
    assert (tmp_path / "c/certs/ca.crt").read_bytes() == ca
    assert (tmp_path / "c/token").read_text() == token
    assert read_state(tmp_path / "c").env == first.env


def test_insecure_records_no_tls_and_token_auth_disabled(tmp_path: Path) -> None:
    state = _prepared(tmp_path, secure=False)
    assert state.certs_dir is None
    assert state.token_file is None
    assert state.security_env == {"RAY_AUTH_MODE": "disabled"}
    assert not (tmp_path / "c" / "certs").exists()
    assert security_record(state) == {"tls": False, "token": False, "certs_dir": None,
                                      "token_file": None, "warnings": []}


def test_cluster_env_prints_what_a_driver_exports(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    state = _prepared(tmp_path)
    assert main(["cluster", "env", "--dir", str(tmp_path / "c")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"export {k}={v}" for k, v in state.env.items()]
    assert main(["cluster", "env", "--dir", str(tmp_path / "c"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["RAY_AUTH_MODE"] == "token"
    assert main(["cluster", "env", "--dir", str(tmp_path / "none")]) == 2
    assert "No cluster is recorded in" in capsys.readouterr().err


def test_status_warns_for_a_certificate_ending_within_30_days(tmp_path: Path) -> None:
    state = _prepared(tmp_path)
    rotate_certs(state.certs_dir, days=12)
    record = security_record(state)
    assert record["tls"] is True
    assert record["token"] is True
    assert [w.split(" expires")[0] for w in record["warnings"]] == ["node.crt", "server.crt"]
    assert "fleetlearn certs rotate" in record["warnings"][0]
    # ... and the next up renews them by itself (same CA).
    ca = (tmp_path / "c/certs/ca.crt").read_bytes()
    _prepared(tmp_path)
    assert security_record(read_state(tmp_path / "c"))["warnings"] == []
    assert (tmp_path / "c/certs/ca.crt").read_bytes() == ca


def test_a_driver_finds_the_recorded_clusters_variables_by_address(tmp_path: Path) -> None:
    state = _prepared(tmp_path)
    folder = str(tmp_path / "c")
    assert recorded_security_env("127.44.1.1:4000", folder) == state.security_env
    assert recorded_security_env("127.44.1.1:4001", folder) is None  # another cluster


def test_certs_of_another_folder_are_not_touched(tmp_path: Path) -> None:
    other = init_certs(tmp_path / "elsewhere")
    before = (other / "node.crt").read_bytes()
    _prepared(tmp_path)
    assert (other / "node.crt").read_bytes() == before


def test_exposure_lines_without_a_recorded_cluster_say_so(tmp_path: Path) -> None:
    assert exposure_lines(None)[0].startswith("Ray: no cluster")
    line = exposure_lines("10.1.1.1:6380", folder=str(tmp_path))[0]
    assert "not started by 'fleetlearn cluster up' here" in line
    assert reach("0.0.0.0") == "every interface: other machines too"
    assert reach("::ffff:127.0.0.1") == "this machine only"
    assert reach("10.0.0.4") == "the network of 10.0.0.4: other machines too"


def test_a_nodes_metrics_ports_go_to_loopback(tmp_path: Path) -> None:
    env = node_env({"PATH": "/bin", "PYTHONPATH": "/src"}, tmp_path / "h", tmp_path / "t",
                   loopback_ports=[9101, 9102])
    assert env["FLEETLEARN_LOOPBACK_PORTS"] == "9101,9102"
    site = Path(env["PYTHONPATH"].split(os.pathsep)[0])
    assert (site / "sitecustomize.py").is_file()
    assert env["PYTHONPATH"].endswith(os.pathsep + "/src")
    # The sitecustomize in a real Python process: a wildcard bind of a listed port
    # lands on 127.0.0.1, any other port is left alone.
    probe = ("import socket\n"
             "a = socket.socket(); a.bind(('0.0.0.0', {p})); print(a.getsockname()[0])\n"
             "b = socket.socket(); b.bind(('0.0.0.0', 0)); print(b.getsockname()[0])\n")
    port = free_port()
    done = subprocess.run([sys.executable, "-c", probe.format(p=port)],
                          env={**env, "FLEETLEARN_LOOPBACK_PORTS": str(port)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["127.0.0.1", "0.0.0.0"]
