"""Health, readiness, preload, the app-wide error shape, the spec and docs pages, server settings.

The ASGI app in memory (no Ray, no network) over a real SQLite registry holding
models registered as training registers them (tests/model_fixtures.py); fixtures
in tests/api_fixtures.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_fixtures import (
    PREDICT,
    house_records,
    metrics_of,
    poll,
    sample,
    serve,
    state_of,
    toy_records,
)
from fastapi.testclient import TestClient
from model_fixtures import (
    ServingModels,
    register,
)

from fleetlearn.errors import ConfigError
from fleetlearn.registry import Registry
from fleetlearn.serving import ServeSettings


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_registry_and_loaded_models(client: TestClient) -> None:
    body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["registry_stamp"]
    assert body["models_loaded"] == 0
    client.post(PREDICT.format("house-ridge"), json={"records": house_records(1)})
    assert client.get("/readyz").json()["models_loaded"] == 1


def test_preloaded_models_are_in_memory_before_the_first_request(home: Path) -> None:
    with serve(home, preload=["toy-logreg@prod", "house-ridge:1"]) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["models_loaded"] == 2
        metrics = metrics_of(client)
        assert sample(metrics, "fleetlearn_model_load_seconds_count",
                      model="toy-logreg", version="1") == 1
        body = client.post(PREDICT.format("toy-logreg@prod"),
                           json={"records": toy_records()}).json()
        assert (body["model"], body["version"], len(body["predictions"])) == (
            "toy-logreg", 1, 3)
        assert state_of(client).cache.loads == 2  # served from memory


def test_a_bad_preload_reference_stops_the_start(home: Path) -> None:
    with pytest.raises(Exception, match="toy-logrgh"), serve(home, preload=["toy-logrgh"]):
        pass


def test_readyz_loads_a_preloaded_alias_that_moved(home: Path, registry: Registry,
                                                   models: ServingModels) -> None:
    """An alias moved to a new version must not leave the replica not-ready forever
    (a not-ready replica gets no traffic, so nothing else would load the model)."""
    with serve(home, preload=["toy-logreg@prod"]) as client:
        assert client.get("/readyz").status_code == 200
        register(registry, "toy-logreg", models.pipelines["toy-logreg"],
                 models.datasets["toy"])
        registry.set_alias("toy-logreg", "prod", 2)
        poll(lambda: client.get("/readyz").status_code == 200
             and state_of(client).cache.peek(registry.get_model_version("toy-logreg", 2))
             is not None)


def test_every_4xx_has_detail_and_error(client: TestClient) -> None:
    """Whatever FastAPI or Starlette reject, the body has the fleetlearn error shape."""
    responses = [
        client.get("/v1/nothing-here"),
        client.delete("/healthz"),
        client.get(PREDICT.format("toy-logreg")),
        client.post(PREDICT.format("toy-logreg") + "?version=abc", json={}),
        client.get("/v1/stats?scope=everything"),
        client.get("/v1/stats?window=-1"),
        client.post("/v1/keys", json={"name": ""}),
        client.post("/v1/keys", content=b"{", headers={"content-type": "application/json"}),
        client.put("/v1/models/toy-logreg/aliases/prod", json={"version": "two"}),
        client.put("/v1/models/toy-logreg/aliases/prod", json={"version": 9}),
        client.put("/v1/models/toy-logreg/aliases/bad alias!", json={"version": 1}),
        client.delete("/v1/models/toy-logreg/aliases/canary"),
        client.delete("/v1/keys/nobody"),
        client.post(PREDICT.format("toy-logreg"), json=[1, 2]),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
        body = response.json()
        assert isinstance(body.get("detail"), str), (response.request.url, body)
        assert isinstance(body.get("error"), str), (response.request.url, body)
    assert [r.status_code for r in responses[:3]] == [404, 405, 405]


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/healthz", "/readyz", "/v1/info", "/v1/models", "/v1/models/{name}",
                 "/v1/models/{name}/versions/{version}", "/v1/models/{name}/predict",
                 "/v1/models/{name}/aliases/{alias}", "/v1/stats", "/metrics", "/v1/keys"):
        assert path in paths, path
    body = paths["/v1/models/{name}/predict"]["post"]["requestBody"]["content"]
    assert set(body["application/json"]["examples"]) == {"records", "columns"}
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "SwaggerUIBundle" in docs.text
    assert "/openapi.json" in docs.text


def test_docs_page_works_offline(client: TestClient) -> None:
    """Swagger UI comes from this server, not a CDN: /docs renders without internet."""
    import re

    page = client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets
    assert all(a.startswith("/docs-static/") for a in assets), assets
    bundle = client.get("/docs-static/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert "SwaggerUIBundle" in bundle.text
    assert client.get("/redoc").status_code == 404


@pytest.mark.parametrize(("field", "value", "says"), [
    ("auth", "maybe", "auth must be auto, on or off"),
    ("max_rows", 0, "max_rows must be at least 1"),
    ("refresh_s", 0, "refresh_s must be positive"),
    ("port", 70000, "port must be between 1 and 65535"),
    ("batch_wait_ms", -1, "batch_wait_ms must be at least 0"),
])
def test_bad_settings_are_named(field: str, value: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        ServeSettings(**{field: value})


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLEARN_SERVE_MAX_ROWS", "77")
    monkeypatch.setenv("FLEETLEARN_SERVE_PRELOAD", "a@prod,b:2")
    settings = ServeSettings()
    assert settings.max_rows == 77
    assert settings.preload == ["a@prod", "b:2"]
    assert ServeSettings(max_rows=5).max_rows == 5  # an explicit value wins
    monkeypatch.setenv("FLEETLEARN_SERVE_MAX_MODELS", "many")
    with pytest.raises(ConfigError, match="FLEETLEARN_SERVE_MAX_MODELS='many'"):
        ServeSettings()

