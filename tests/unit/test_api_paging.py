"""Paging of GET /v1/runs and GET /v1/models (``limit`` + ``offset``), and deleting a
model version (DELETE /v1/models/{name}/versions/{version}), through the app and through
``fleetlearn.Client`` over real HTTP."""

from __future__ import annotations

from pathlib import Path

from api_fixtures import PREDICT, is_error, serve, toy_records
from fastapi.testclient import TestClient
from live_server import free_port, serving
from model_fixtures import ServingModels, register

from fleetlearn.client import Client
from fleetlearn.registry import Registry


def _ids(client: TestClient, **params: int) -> list[str]:
    response = client.get("/v1/runs", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["data"])
    return [r["id"] for r in body["data"]]


def test_runs_pages_cover_every_run_once_newest_first(client: TestClient,
                                                      registry: Registry) -> None:
    for i in range(7):
        registry.create_run({"models": [f"m{i}"]}, seed=i)
    newest_first = [r.id for r in registry.list_runs(limit=100)]
    assert len(newest_first) == 10  # 3 from the serving models + 7 here
    pages = [_ids(client, limit=4, offset=o) for o in (0, 4, 8, 12)]
    assert [len(p) for p in pages] == [4, 4, 2, 0]
    assert [rid for p in pages for rid in p] == newest_first
    assert _ids(client, limit=3, offset=2) == newest_first[2:5]


def test_models_pages_cover_every_model_once_by_name(client: TestClient, registry: Registry,
                                                     models: ServingModels) -> None:
    for name in ("a-extra", "z-extra"):
        register(registry, name, models.pipelines["house-ridge"], models.datasets["house"])
    everything = client.get("/v1/models").json()["data"]
    names = [m["name"] for m in everything]
    assert names == sorted(names)
    assert len(names) == 5
    pages = [client.get("/v1/models", params={"limit": 2, "offset": o}).json()["data"]
             for o in (0, 2, 4, 6)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    assert [m["name"] for p in pages for m in p] == names
    assert pages[1] == everything[2:4]  # the same rows, scores and all


def test_versions_holding_an_alias_page_by_name_and_version(
        client: TestClient, registry: Registry, models: ServingModels) -> None:
    # toy-logreg: prod on version 1 (the serving registry's), staging on a new version 2;
    # house-ridge: its only version gets champion.
    register(registry, "toy-logreg", models.pipelines["toy-logreg"], models.datasets["toy"])
    registry.set_alias("toy-logreg", "staging", 2)
    registry.set_alias("house-ridge", "champion", 1)
    expected = [("house-ridge", 1, ["champion"]), ("toy-logreg", 1, ["prod"]),
                ("toy-logreg", 2, ["staging"])]
    rows = client.get("/v1/models", params={"has_alias": "true"}).json()["data"]
    assert [(r["name"], r["version"], r["aliases"]) for r in rows] == expected
    pages = [client.get("/v1/models", params={"has_alias": "true", "limit": 2, "offset": o})
             .json() for o in (0, 2, 4)]
    assert [p["count"] for p in pages] == [2, 1, 0]
    assert [(r["name"], r["version"]) for p in pages for r in p["data"]] == [
        e[:2] for e in expected]
    toy = client.get("/v1/models", params={"has_alias": "true", "dataset": "toy"}).json()
    assert [(r["name"], r["version"]) for r in toy["data"]] == [e[:2] for e in expected[1:]]
    # Without it: still the latest version of each model.
    latest = client.get("/v1/models").json()["data"]
    assert ("toy-logreg", 2) in [(r["name"], r["version"]) for r in latest]
    assert ("toy-logreg", 1) not in [(r["name"], r["version"]) for r in latest]
    bad = client.get("/v1/models", params={"has_alias": "maybe"})
    assert bad.status_code == 422
    assert "has_alias" in bad.text


def test_negative_offset_is_422(client: TestClient) -> None:
    for route in ("/v1/runs", "/v1/models"):
        response = client.get(route, params={"offset": -1})
        assert response.status_code == 422, response.text
        assert "offset" in response.text


def test_delete_version_removes_it_and_its_aliases(client: TestClient, registry: Registry,
                                                   models: ServingModels) -> None:
    register(registry, "toy-logreg", models.pipelines["toy-logreg"], models.datasets["toy"])
    registry.set_alias("toy-logreg", "prod", 2)
    assert client.delete("/v1/models/toy-logreg/versions/2").status_code == 204
    assert [v.version for v in registry.list_models(name="toy-logreg")] == [1]
    assert registry.aliases("toy-logreg") == {}
    # Version 1 still answers; the deleted one is gone from serving too.
    ok = client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(2)})
    assert ok.status_code == 200
    assert ok.json()["version"] == 1
    body = is_error(client.delete("/v1/models/toy-logreg/versions/2"), 404)
    assert "toy-logreg" in body["detail"]
    is_error(client.delete("/v1/models/no-such-model/versions/1"), 404)
    assert client.delete("/v1/models/toy-logreg/versions/0").status_code == 422


def test_delete_needs_an_admin_key(home: Path, keys: dict[str, str]) -> None:
    with serve(home) as client:
        for role in ("read", "predict", "train"):
            response = client.delete("/v1/models/toy-forest/versions/1",
                                     headers={"authorization": f"Bearer {keys[role]}"})
            is_error(response, 403)
        assert client.get("/v1/models/toy-forest",
                          headers={"authorization": f"Bearer {keys['admin']}"}
                          ).json()["versions"][0]["version"] == 1
        response = client.delete("/v1/models/toy-forest/versions/1",
                                 headers={"authorization": f"Bearer {keys['admin']}"})
        assert response.status_code == 204


def test_the_client_pages_and_deletes_over_http(home: Path, registry: Registry) -> None:
    with serve(home) as app_client:
        app = app_client.app
        with serving(app, free_port()) as url, Client(url) as api:
            assert [m["name"] for m in api.models(limit=2, offset=1)] == [
                "toy-forest", "toy-logreg"]
            first, rest = api.runs(limit=1), api.runs(limit=10, offset=1)
            assert len(first) == 1
            assert len(rest) == 2
            assert first[0]["id"] not in {r["id"] for r in rest}
            api.delete_model_version("toy-forest", 1)
            assert "toy-forest" not in {m["name"] for m in api.models()}
    assert registry.list_models(name="toy-forest") == []
