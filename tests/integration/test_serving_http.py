"""``fleetlearn serve`` as users run it: a real process, real sockets, real HTTP(S).

The models are registered directly in the home's registry, exactly as training
registers them (tests/model_fixtures.py), so no Ray is needed here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from model_fixtures import free_port, mixed_frame, open_registry, records_of, serving_registry

from fleetlearn.data import Schema, coerce_frame

STARTUP_S = 90.0  # imports on a busy CI machine


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLEETLEARN_", "RAY_ADDRESS"))}
    env["FLEETLEARN_HOME"] = str(home)
    env["COLUMNS"] = "200"  # one-line messages stay on one line
    return env


def _cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetlearn", *args], env=_env(home),
                          capture_output=True, text=True, timeout=timeout)


class Server:
    """A ``fleetlearn serve`` child process on a free loopback port."""

    def __init__(self, home: Path, *args: str, scheme: str = "http",
                 verify: Any = True) -> None:
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log = home / f"serve-{self.port}.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleetlearn", "serve", "--port", str(self.port),
             "--log-level", "warning", *args],
            env=_env(home), stdout=self._out, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=self.url, verify=verify, timeout=30)
        deadline = time.monotonic() + STARTUP_S
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            try:
                if self.http.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"server did not start: {self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve-home")
    reg, _ = serving_registry(folder)
    reg.close()
    return folder


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    running = Server(home)
    yield running
    running.stop()


def _records(n: int = 4) -> list[dict[str, Any]]:
    return records_of(mixed_frame(n, seed=21), drop=("label",))


def _pipeline_predictions(home: Path, name: str, records: list[dict[str, Any]]) -> list:
    """What the registered pipeline behind ``name`` predicts for ``records``."""
    reg = open_registry(home)
    try:
        pipeline = reg.load_model(name)
        schema = Schema.from_dict(reg.get_model_version(name).input_schema)
    finally:
        reg.close()
    return pipeline.predict(coerce_frame(pd.DataFrame(records), schema)).tolist()


def _poll_status(call: Any, status: int, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_predict_over_http(server: Server, home: Path) -> None:
    records = _records()
    response = server.http.post("/v1/models/toy-forest/predict",
                                json={"records": records, "return_proba": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"]) == ("toy-forest", 1)
    reg = open_registry(home)
    pipeline = reg.load_model("toy-forest")
    schema = reg.get_model_version("toy-forest").input_schema
    reg.close()
    X = coerce_frame(pd.DataFrame(records), Schema.from_dict(schema))
    assert body["predictions"] == pipeline.predict(X).tolist()
    assert [p["a"] for p in body["probabilities"]] == pytest.approx(
        pipeline.predict_proba(X)[:, 0].tolist())
    # The same server answers the other routes over the socket too.
    assert server.http.get("/readyz").json()["status"] == "ready"
    assert server.http.get("/v1/models").json()["count"] == 3
    assert "fleetlearn_rows_predicted_total" in server.http.get("/metrics").text
    error = server.http.post("/v1/models/toy-forest/predict", content=b"{oops",
                             headers={"content-type": "application/json"})
    assert error.status_code == 422
    assert error.json()["error"] == "InputError"


def test_keys_from_the_cli_protect_the_running_server(server: Server, home: Path) -> None:
    """Run after test_predict_over_http: once a key exists, the server requires keys."""
    created = _cli(home, "keys", "create", "--role", "predict", "--name", "ci", "--json")
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["key"]
    reader = _cli(home, "keys", "create", "--role", "read", "--json")
    read_secret = json.loads(reader.stdout)["key"]
    listed = _cli(home, "keys", "list", "--json")
    assert {k["name"] for k in json.loads(listed.stdout)} == {"ci", "read-key"}
    assert secret not in listed.stdout

    def predict(key: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return server.http.post("/v1/models/toy-logreg/predict",
                                json={"records": _records(1)}, headers=headers)

    # Auto mode notices the new key within a few seconds, without a restart.
    anonymous = _poll_status(lambda: predict(None), 401)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "Unauthorized"
    allowed = predict(secret)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["predictions"] == _pipeline_predictions(home, "toy-logreg", _records(1))
    refused = predict(read_secret)
    assert refused.status_code == 403, refused.text
    assert "role 'read'" in refused.json()["detail"]
    assert predict("flk_forged").status_code == 401
    revoked = _cli(home, "keys", "revoke", "ci")
    assert revoked.returncode == 0, revoked.stderr
    assert _poll_status(lambda: predict(secret), 401).status_code == 401


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_with_a_certificate(tmp_path: Path) -> None:
    home = tmp_path / "home"
    reg, _ = serving_registry(home)
    reg.close()
    cert, key = _self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    server = Server(home, "--tls-cert", str(cert), "--tls-key", str(key), scheme="https",
                    verify=trust)
    try:
        response = server.http.post("/v1/models/toy-logreg@prod/predict",
                                    json={"records": _records(2)})
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 1
        assert response.json()["predictions"] == _pipeline_predictions(home, "toy-logreg",
                                                                       _records(2))
        # A client that does not trust the certificate is refused by TLS itself.
        with pytest.raises(httpx.ConnectError), httpx.Client(verify=True) as strict:
            strict.get(f"{server.url}/healthz")
        # Plain HTTP on the TLS port gets no answer.
        with pytest.raises(httpx.TransportError), httpx.Client(timeout=5) as plain:
            plain.get(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        server.stop()


def test_tls_needs_both_files(tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    result = _cli(tmp_path, "serve", "--port", str(free_port()), "--tls-cert", str(cert))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: HTTPS needs both --tls-cert and --tls-key."]


@pytest.mark.parametrize("args", [
    ("--host", "0.0.0.0"),
    ("--host", "0.0.0.0", "--auth", "off"),
])
def test_binding_every_address_without_keys_is_refused(tmp_path: Path,
                                                       args: tuple[str, ...]) -> None:
    result = _cli(tmp_path, "serve", "--port", str(free_port()), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: Refusing to serve on 0.0.0.0")
    assert "fleetlearn keys create" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_tampered_artifact_behind_a_live_server_fails_only_its_model(tmp_path: Path) -> None:
    folder = tmp_path / "home"
    reg, _ = serving_registry(folder)
    mv = reg.get_model_version("toy-logreg")
    path = reg.artifacts.path_for(mv.artifact_digest)
    reg.close()
    running = Server(folder)
    try:
        # toy-logreg is not loaded yet: the server meets the tampered file on first use.
        path.write_bytes(path.read_bytes()[:-1] + b"!")
        response = running.http.post("/v1/models/toy-logreg/predict",
                                     json={"records": _records()})
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert response.status_code == 500, body
        assert body["error"] == "ArtifactIntegrityError"
        assert "Integrity check failed for model toy-logreg:1" in body["detail"]
        assert "Traceback" not in response.text
        metrics = running.http.get("/metrics").text
        assert ('fleetlearn_model_load_failures_total{model="toy-logreg",'
                'reason="integrity",version="1"} 1.0') in metrics
        other = running.http.post("/v1/models/toy-forest/predict",
                                  json={"records": _records()})
        assert other.status_code == 200, other.text
        reg = open_registry(folder)
        forest = reg.load_model("toy-forest")
        schema = Schema.from_dict(reg.get_model_version("toy-forest").input_schema)
        reg.close()
        want = forest.predict(coerce_frame(pd.DataFrame(_records()), schema)).tolist()
        assert other.json()["predictions"] == want
    finally:
        running.stop()
    assert "Traceback" not in running.log.read_text()
