"""deploy/ read as files (no Docker here): the scripts parse and refuse bad options in one
line, and the compose stack keeps its promises: only the API published, on 127.0.0.1;
no secret written in it; every Ray node with the reconnect timeout a long head outage
needs; the workers joining by the head's service name. tests/docker runs it for real."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCRIPTS = ["base-image.sh", "build-images.sh", "entrypoint.sh", "healthcheck.sh",
           "services-entrypoint.sh"]
RAY_SERVICES = ("ray-head", "ray-worker", "api", "serve")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_deploy_script_parses(script: str) -> None:
    done = subprocess.run(["bash", "-n", str(DEPLOY / script)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("script", "argv", "message"), [
    ("base-image.sh", ["--bogus"], "unknown option '--bogus'"),
    ("base-image.sh", ["--extra-ca", "/nonexistent/ca"], "'/nonexistent/ca' is not a directory"),
    ("base-image.sh", ["--tag"], "--tag needs a value"),
    ("build-images.sh", ["--bogus"], "unknown option '--bogus'"),
])
def test_a_bad_option_is_one_line_and_exit_2(script: str, argv: list[str],
                                             message: str) -> None:
    done = subprocess.run(["bash", str(DEPLOY / script), *argv], capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert message in done.stderr


def test_an_empty_extra_ca_folder_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(DEPLOY / "base-image.sh"), "--extra-ca", str(tmp_path)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 2
    assert "no *.crt file" in done.stderr


def test_only_the_api_is_published_and_on_loopback(compose: dict[str, Any]) -> None:
    published = {name: s.get("ports", []) for name, s in compose["services"].items()
                 if s.get("ports")}
    # prometheus is published too, but only under its opt-in profile.
    assert set(published) == {"api", "prometheus"}
    assert compose["services"]["prometheus"]["profiles"] == ["observability"]
    for ports in published.values():
        for port in ports:
            assert port.startswith(("${FLEETLEARN_API_BIND:-127.0.0.1}:", "127.0.0.1:")), port


def test_no_secret_is_written_in_the_stack(compose: dict[str, Any]) -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text
    assert "${REDIS_PASSWORD:?" in text
    for service in compose["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key or "REGISTRY_URL" in key:
                assert "${" in str(value), (key, value)
    example = (DEPLOY / ".env.example").read_text().splitlines()
    assert "POSTGRES_PASSWORD=" in example
    assert "REDIS_PASSWORD=" in example


def test_every_ray_node_outlasts_a_long_head_outage(compose: dict[str, Any]) -> None:
    for name in RAY_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["RAY_gcs_rpc_server_reconnect_timeout_s"] == "180", name
        assert env["FLEETLEARN_CLUSTER_ADDRESS"] == "ray-head:6380", name
        assert env["FLEETLEARN_LOG_FORMAT"] == "json", name
    head = compose["services"]["ray-head"]
    assert head["restart"] == "on-failure"
    assert head["environment"]["RAY_REDIS_ADDRESS"] == "redis:6379"
    assert "ipv4_address" in head["networks"]["cluster"]
    for name in ("ray-head", "ray-worker"):
        assert compose["services"][name]["shm_size"] == "1gb"
        assert "ulimits" not in compose["services"][name]


def test_the_image_runs_as_a_user_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    runtime = text[text.index("AS runtime"):]
    assert "USER fleetlearn" in runtime
    assert "HEALTHCHECK" in runtime
    assert "ARG BASE_IMAGE" in text
    # The extra CA certificates are the build stage's only.
    assert "EXTRA_CA_CERTS" not in runtime
