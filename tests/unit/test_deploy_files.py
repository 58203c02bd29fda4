"""deploy/ read as files (no Docker here): the scripts parse and refuse bad options in one
line, and the compose stack keeps its promises: only the API and the GUI published, on
127.0.0.1 (the GUI a client of the API, with its key from the env file);
no secret written in it; every Ray node with the reconnect timeout a long head outage
needs; the workers joining by the head's service name; Ray TLS and token authentication
on for every Ray service, with the certs service's files mounted read-only and the CA's
key in no Ray node. tests/docker runs it for real."""

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


def test_only_the_api_and_the_ui_are_published_and_on_loopback(
        compose: dict[str, Any]) -> None:
    published = {name: s.get("ports", []) for name, s in compose["services"].items()
                 if s.get("ports")}
    # prometheus is published too, but only under its opt-in profile.
    assert set(published) == {"api", "ui", "prometheus"}
    assert compose["services"]["prometheus"]["profiles"] == ["observability"]
    for ports in published.values():
        for port in ports:
            assert port.startswith(("${FLEETLEARN_API_BIND:-127.0.0.1}:", "127.0.0.1:")), port
    # The GUI acts with its key for whoever reaches it: loopback only, not configurable.
    assert published["ui"] == ["127.0.0.1:${FLEETLEARN_UI_PORT:-8501}:8501"]


def test_the_ui_is_a_client_of_the_api_with_its_key_from_the_env_file(
        compose: dict[str, Any]) -> None:
    ui = compose["services"]["ui"]
    assert ui["image"] == compose["services"]["api"]["image"]  # the same image
    assert ui["command"] == ["ui"]
    assert ui["environment"] == {"FLEETLEARN_URL": "http://api:8000",
                                 "FLEETLEARN_API_KEY": "${FLEETLEARN_UI_API_KEY:-}"}
    # Started after the API, not after it is healthy: the API turns healthy only once it
    # has a key, which `keys create` makes after `up`; the role waits for it instead.
    assert ui["depends_on"] == ["api"]
    assert "profiles" not in ui  # part of the default stack
    assert "# FLEETLEARN_UI_API_KEY=" in (DEPLOY / ".env.example").read_text()
    # The role: fleetlearn ui on every interface of the container, port 8501, and the
    # image's HEALTHCHECK asks Streamlit's health endpoint.
    entrypoint = (DEPLOY / "entrypoint.sh").read_text()
    role = entrypoint[entrypoint.index("\n  ui)"):entrypoint.index("\n  *)")]
    assert 'until curl -fsS -o /dev/null --max-time 5 "$api_url/healthz"' in role
    assert ('exec fleetlearn ui --api "$api_url" --host 0.0.0.0 --port '
            '"${FLEETLEARN_UI_PORT:-8501}" "$@"') in role
    health = (DEPLOY / "healthcheck.sh").read_text()
    ui_check = next(line for line in health.splitlines() if line.strip().startswith("ui)"))
    assert "curl -fsS" in ui_check
    assert '127.0.0.1:${FLEETLEARN_UI_PORT:-8501}/_stcore/health' in ui_check
    # The image holds Streamlit (the ui extra of pyproject.toml).
    assert 'p["optional-dependencies"]["ui"]' in (DEPLOY / "Dockerfile").read_text()


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


SECRETS = "/etc/fleetlearn/ray"


def test_every_ray_service_has_tls_and_the_token_with_the_secrets_read_only(
        compose: dict[str, Any]) -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert "RAY_AUTH_MODE: disabled" not in text
    services = compose["services"]
    for name in RAY_SERVICES:
        service = services[name]
        env = service["environment"]
        assert env["RAY_USE_TLS"] == "1", name
        assert env["RAY_TLS_SERVER_CERT"] == f"{SECRETS}/node.crt", name
        assert env["RAY_TLS_SERVER_KEY"] == f"{SECRETS}/node.key", name
        assert env["RAY_TLS_CA_CERT"] == f"{SECRETS}/ca.crt", name
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN_PATH"] == f"{SECRETS}/token", name
        assert f"ray-secrets:{SECRETS}:ro" in service["volumes"], name
        # Nothing of the CA's volume in a Ray node.
        assert not [v for v in service["volumes"] if "ray-ca" in v], name
        assert service["depends_on"]["certs"] == {
            "condition": "service_completed_successfully"}, name
    # Every service that sets a Ray variable is one of them (the GUI is no Ray node).
    with_ray = {name for name, s in services.items()
                if any(k.startswith("RAY_") for k in (s.get("environment") or {}))}
    assert with_ray == set(RAY_SERVICES)
    # The certs service: the only one with the CA's volume, no network, run to the end.
    certs = services["certs"]
    assert certs["command"] == ["certs"]
    assert certs["network_mode"] == "none"
    assert certs["restart"] == "no"
    assert sorted(certs["volumes"]) == ["ray-ca:/var/lib/fleetlearn/ray-ca",
                                        f"ray-secrets:{SECRETS}"]
    assert certs["environment"]["FLEETLEARN_SAN_NETWORK"] == \
        compose["networks"]["cluster"]["ipam"]["config"][0]["subnet"]
    assert [n for n, s in services.items()
            if any("ray-ca" in v for v in s.get("volumes", []))] == ["certs"]
    assert {"ray-ca", "ray-secrets"} <= set(compose["volumes"])
    # The role: certs ensure with the subnet, the files into the secrets folder, keys
    # 0600, the token made once; the image owns both folders (uid 1000, 0700).
    entrypoint = (DEPLOY / "entrypoint.sh").read_text()
    role = entrypoint[entrypoint.index("\n  certs)"):entrypoint.index("\n  *)")]
    assert 'fleetlearn certs ensure "$ca_dir" "${names[@]}"' in role
    assert '--san-network "${FLEETLEARN_SAN_NETWORK:-172.30.42.0/24}"' in role
    assert 'for f in ca.crt node.crt node.key; do' in role
    assert '*.key) chmod 0600' in role
    assert "ensure_token" in role
    assert "exit 0" in role
    assert "ca.key" not in role
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "chmod 0700 /etc/fleetlearn/ray /var/lib/fleetlearn/ray-ca" in dockerfile
