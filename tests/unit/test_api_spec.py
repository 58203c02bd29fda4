"""The spec tells the truth: roles checked from ``/openapi.json``, one error model, ids.

Every operation the spec lists is called with no key and with a key of each role: the
role the spec names for it (``x-fleetlearn-role``, from its dependency) and every role
above pass authentication, every role below gets 403, no key 401. So a route added
without a role dependency fails here unless it is one of the health routes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from model_fixtures import open_registry, serving_registry

from fleetlearn.api import create_app
from fleetlearn.security import ROLES
from fleetlearn.serving import ServeSettings, ServingState

#: The only operations anyone may call without a key (load balancers, probes).
PUBLIC = {("get", "/healthz"), ("get", "/readyz")}
#: Path parameters that reach real work but change nothing (unknown run, key, alias).
PATH_VALUES = {"name": "toy-logreg", "version": "1", "alias": "no-such-alias",
               "run_id": "0123456789ab", "key": "no-such-key"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[TestClient, dict[str | None, str]]]:
    folder: Path = tmp_path_factory.mktemp("spec")
    reg, _ = serving_registry(folder)
    secrets: dict[str | None, str] = {None: ""}
    for role in ROLES:
        _, secrets[role] = reg.create_api_key(f"{role}-key", role)
    reg.close()
    settings = ServeSettings(registry_url=f"sqlite:///{folder / 'registry.db'}",
                             artifact_dir=str(folder / "artifacts"), auth="on",
                             data_dir=str(folder / "data"), ray_address="127.0.0.1:1",
                             stats_flush_s=3600.0)
    state = ServingState(settings, registry=open_registry(folder))
    with TestClient(create_app(settings, state=state), raise_server_exceptions=False) as c:
        yield c, secrets
    state.registry.close()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in spec["paths"].items()
            for method, op in ops.items()]


def _call(client: TestClient, method: str, path: str, secret: str) -> Any:
    url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    # Bodies that are refused after authentication: nothing is created or started.
    json = {} if method in ("post", "put") and "datasets" not in path else None
    return client.request(method.upper(), url, headers=headers, json=json)


def test_every_operation_is_guarded_by_the_role_the_spec_names(
        served: tuple[TestClient, dict[str | None, str]]) -> None:
    client, secrets = served
    spec = client.get("/openapi.json").json()
    operations = _operations(spec)
    assert len(operations) >= 24
    public = {(m, p) for m, p, op in operations if "x-fleetlearn-role" not in op}
    assert public == PUBLIC, "operations without a role dependency"
    for method, path, op in operations:
        needed = op.get("x-fleetlearn-role")
        for role, secret in secrets.items():
            r = _call(client, method, path, secret)
            where = f"{method.upper()} {path} as {role or 'no key'}: {r.status_code} {r.text}"
            if needed is None:
                assert r.status_code not in (401, 403), where
            elif role is None:
                assert r.status_code == 401, where
                assert r.headers["www-authenticate"] == "Bearer"
                assert r.json()["error"] == "Unauthorized"
            elif ROLES.index(role) < ROLES.index(needed):
                assert r.status_code == 403, where
                assert f"needs '{needed}'" in r.json()["detail"]
            else:
                assert r.status_code not in (401, 403, 500), where
                assert str(r.status_code) in op["responses"], where  # documented


def test_every_operation_has_a_short_stable_id(
        served: tuple[TestClient, dict[str | None, str]]) -> None:
    spec = served[0].get("/openapi.json").json()
    ids = {(m, p): op["operationId"] for m, p, op in _operations(spec)}
    assert len(set(ids.values())) == len(ids)
    assert all(re.fullmatch(r"[a-z][A-Za-z]{2,24}", i) for i in ids.values()), ids
    assert ids[("post", "/v1/models/{name}/predict")] == "predict"
    assert ids[("get", "/v1/models")] == "listModels"
    assert ids[("get", "/v1/models/{name}/versions/{version}")] == "getModelVersion"
    assert ids[("post", "/v1/runs")] == "startRun"
    assert ids[("post", "/v1/datasets")] == "uploadDataset"
    assert ids[("post", "/v1/runs/{run_id}/resume")] == "resumeRun"
    assert ids[("get", "/v1/catalog")] == "getCatalog"
    assert ids[("get", "/v1/datasets/{name}/profile")] == "profileDataset"
    assert ids[("post", "/v1/datasets/examples/{name}")] == "addExample"


def test_every_error_status_declares_fleetlearns_error_body(
        served: tuple[TestClient, dict[str | None, str]]) -> None:
    spec = served[0].get("/openapi.json").json()
    text = str(spec)
    assert "HTTPValidationError" not in text
    assert "ValidationError" not in spec["components"]["schemas"]
    body = spec["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"detail", "error"}
    assert body["properties"]["detail"]["type"] == "string"
    assert {"errors", "more"} <= set(body["properties"])
    for method, path, op in _operations(spec):
        statuses = {int(s) for s in op["responses"]}
        assert 500 in statuses, (method, path)
        if "x-fleetlearn-role" in op:
            assert {401, 403} <= statuses, (method, path)
        if "{" in path:
            assert 404 in statuses, (method, path)
        for status in statuses - set(range(100, 400)):
            schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)


def test_a_422_answers_the_declared_error_body(
        served: tuple[TestClient, dict[str | None, str]]) -> None:
    client, secrets = served
    r = client.get("/v1/models", params={"limit": 0},
                   headers={"Authorization": f"Bearer {secrets['read']}"})
    assert r.status_code == 422
    body = r.json()
    assert isinstance(body["detail"], str)
    assert "limit" in body["detail"]
    assert body["error"] == "ValidationError"
    assert body["errors"][0]["loc"] == ["query", "limit"]


def test_a_wrong_method_is_405_with_the_allowed_ones(
        served: tuple[TestClient, dict[str | None, str]]) -> None:
    client, _ = served
    r = client.delete("/v1/models")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET"
    assert r.json()["error"] == "MethodNotAllowed"
    r = client.patch("/v1/keys")
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) == {"GET", "POST"}


def test_ray_serve_replicas_mount_prediction_and_read_routes_only(tmp_path: Path) -> None:
    settings = ServeSettings(registry_url=f"sqlite:///{tmp_path / 'registry.db'}",
                             artifact_dir=str(tmp_path / "artifacts"))
    full = create_app(settings).openapi()
    replica = create_app(settings, training=False).openapi()
    writes = {("post", "/v1/datasets"), ("post", "/v1/runs"),
              ("post", "/v1/runs/{run_id}/cancel"), ("post", "/v1/runs/{run_id}/resume"),
              ("post", "/v1/datasets/examples/{name}")}
    # The report is a read, but a heavy one that reloads the run's tables: API servers
    # only (see fleetlearn/api/routes/reports.py), as are its figures; so is a table's
    # profile, which reads it whole, and the examples, which only matter to training.
    heavy = {("get", "/v1/runs/{run_id}/report"), ("get", "/v1/runs/{run_id}/figures"),
             ("get", "/v1/datasets/{name}/profile"), ("get", "/v1/datasets/examples")}
    everything = {(m, p) for m, p, _ in _operations(full)}
    on_replica = {(m, p) for m, p, _ in _operations(replica)}
    assert writes | heavy <= everything
    assert on_replica == everything - writes - heavy
    assert ("post", "/v1/models/{name}/predict") in on_replica
    assert ("get", "/v1/runs/{run_id}") in on_replica
    assert ("get", "/v1/catalog") in on_replica


def test_the_ray_serve_replica_builds_the_app_without_training_routes(
        tmp_path: Path) -> None:
    ray_serve = pytest.importorskip("fleetlearn.serving._ray_serve")
    settings = ServeSettings(registry_url=f"sqlite:///{tmp_path / 'registry.db'}",
                             artifact_dir=str(tmp_path / "artifacts"))
    # The replica's own app builder, on a stand-in replica (no Ray started: unit tests
    # refuse ray.init, and the deployment's constructor is Ray Serve's).
    replica = SimpleNamespace(settings=settings, state=ServingState(settings))
    try:
        build = ray_serve.FleetlearnReplica.func_or_class.__serve_build_asgi_app__
        paths = {(m, p) for m, p, _ in _operations(build(replica).openapi())}
        assert ("post", "/v1/runs") not in paths
        assert ("post", "/v1/datasets") not in paths
        assert ("post", "/v1/models/{name}/predict") in paths
        assert ("get", "/v1/runs/{run_id}") in paths
    finally:
        replica.state.registry.close()


def test_a_body_that_is_not_json_is_the_declared_422(
        served: tuple[TestClient, dict[str | None, str]]) -> None:
    client, secrets = served
    r = client.post("/v1/keys", content=b"D\xff\xfeX",
                    headers={"Authorization": f"Bearer {secrets['admin']}",
                             "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "ValidationError"
    assert body["errors"][0]["loc"] == ["body"]
    assert "JSON" in body["detail"]
    names = {k["name"] for k in client.get(
        "/v1/keys", headers={"Authorization": f"Bearer {secrets['admin']}"}).json()}
    assert names == {f"{role}-key" for role in ROLES}  # nothing was created
