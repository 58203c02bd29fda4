"""GET /v1/info, /v1/models, versions, aliases, and live discovery of registry changes.

The ASGI app in memory (no Ray, no network) over a real SQLite registry holding
models registered as training registers them (tests/model_fixtures.py); fixtures
in tests/api_fixtures.py.
"""

from __future__ import annotations

import pytest
from api_fixtures import (
    PREDICT,
    house_records,
    is_error,
    poll,
    toy_records,
)
from fastapi.testclient import TestClient
from model_fixtures import (
    ServingModels,
    register,
)

from fleetlearn.registry import Registry


def test_info_describes_the_server(client: TestClient) -> None:
    info = client.get("/v1/info").json()
    assert info["auth_required"] is False
    assert info["max_rows"] == 10_000
    assert info["registry"].startswith("sqlite:///")
    assert info["cache"]["max_models"] == 32
    assert info["replica"]


def test_model_versions_and_aliases(client: TestClient, registry: Registry,
                                    models: ServingModels) -> None:
    register(registry, "toy-logreg", models.pipelines["toy-logreg"], models.datasets["toy"])
    body = client.get("/v1/models/toy-logreg").json()
    assert body["name"] == "toy-logreg"
    assert body["aliases"] == {"prod": 1} == registry.aliases("toy-logreg")
    assert [(v["version"], v["aliases"]) for v in body["versions"]] == [(1, ["prod"]), (2, [])]
    assert [v["artifact_digest"] for v in body["versions"]] == [
        registry.get_model_version("toy-logreg", n).artifact_digest for n in (1, 2)]


def test_version_detail_has_lineage_schema_and_digest(client: TestClient,
                                                      registry: Registry) -> None:
    body = client.get("/v1/models/toy-logreg/versions/1").json()
    mv = registry.get_model_version("toy-logreg", 1)
    assert body["version"] == 1
    assert body["metrics"] == {"test": {"accuracy": 0.8}, "primary_metric": "accuracy"}
    assert body["params"] == {"estimator": "LogisticRegression"}
    assert body["run_id"] == mv.run_id
    assert body["dataset_id"] == mv.dataset_id
    assert body["trial_id"] == mv.trial_id
    assert [c["name"] for c in body["input_schema"]["columns"]] == ["x", "flag", "color", "when"]
    assert body["input_schema"]["dropped"] == {"row_id": mv.input_schema["dropped"]["row_id"]}
    assert body["artifact_digest"] == mv.artifact_digest
    assert len(body["artifact_digest"]) == 64
    assert body["artifact_size"] > 0
    assert body["aliases"] == ["prod"]


def test_unknown_model_is_404_with_a_suggestion(client: TestClient) -> None:
    for response in (client.get("/v1/models/toy-logrge"),
                     client.get("/v1/models/toy-logrge/versions/1"),
                     client.post(PREDICT.format("toy-logrge"), json={"records": toy_records()})):
        body = is_error(response, 404, "NotFoundError")
        assert "'toy-logrge'" in body["detail"], body  # names the missing model...
        assert "Did you mean 'toy-logreg'?" in body["detail"]  # ...and the close one


def test_unknown_version_is_404_listing_the_versions(client: TestClient) -> None:
    body = is_error(client.get("/v1/models/toy-logreg/versions/7"), 404, "NotFoundError")
    assert "Existing versions: 1" in body["detail"]
    body = is_error(client.post(PREDICT.format("toy-logreg") + "?version=7",
                                json={"records": toy_records()}), 404, "NotFoundError")
    assert "7" in body["detail"], body
    assert "Existing versions: 1" in body["detail"]
    body = is_error(client.get("/v1/models/toy-logreg/versions/0"), 422, "ValidationError")
    assert "version" in body["detail"], body


def test_alias_put_and_delete(client: TestClient, registry: Registry,
                              models: ServingModels) -> None:
    register(registry, "toy-logreg", models.pipelines["toy-logreg"], models.datasets["toy"])
    moved = client.put("/v1/models/toy-logreg/aliases/prod", json={"version": 2})
    assert moved.status_code == 200
    assert (moved.json()["version"], moved.json()["aliases"]) == (2, ["prod"])
    assert registry.aliases("toy-logreg") == {"prod": 2}
    body = client.post(PREDICT.format("toy-logreg@prod"), json={"records": toy_records(1)})
    assert body.json()["version"] == 2  # the API's own move is served at once
    assert client.delete("/v1/models/toy-logreg/aliases/prod").status_code == 204
    assert registry.aliases("toy-logreg") == {}
    gone = is_error(client.post(PREDICT.format("toy-logreg@prod"),
                                json={"records": toy_records(1)}), 404)
    assert "no alias 'prod'" in gone["detail"]
    is_error(client.put("/v1/models/toy-logreg/aliases/prod", json={"version": 5}), 404)


def test_alias_moved_elsewhere_is_served_without_restart(client: TestClient,
                                                         registry: Registry,
                                                         models: ServingModels) -> None:
    def served_version() -> int:
        return client.post(PREDICT.format("toy-logreg@prod"),
                           json={"records": toy_records(1)}).json()["version"]

    assert served_version() == 1
    # Another process (the CLI, another replica) moves the alias in the registry.
    register(registry, "toy-logreg", models.pipelines["toy-logreg"], models.datasets["toy"])
    registry.set_alias("toy-logreg", "prod", 2)
    poll(lambda: served_version() == 2)
    registry.set_alias("toy-logreg", "prod", 1)
    poll(lambda: served_version() == 1)


def test_new_version_is_served_without_restart(client: TestClient, registry: Registry,
                                               models: ServingModels) -> None:
    def latest() -> int:
        return client.post(PREDICT.format("house-ridge"),
                           json={"records": house_records(1)}).json()["version"]

    assert latest() == 1
    register(registry, "house-ridge", models.pipelines["house-ridge"], models.datasets["house"])
    poll(lambda: latest() == 2)
    registry.delete_model_version("house-ridge", 2)
    poll(lambda: latest() == 1)


def test_models_lists_latest_versions_with_scores(client: TestClient,
                                                  registry: Registry) -> None:
    body = client.get("/v1/models").json()
    assert body["count"] == 3
    rows = {r["name"]: r for r in body["data"]}
    assert set(rows) == {"toy-logreg", "toy-forest", "house-ridge"}
    for name, row in rows.items():  # each listed version and its aliases are the registry's
        latest = registry.get_model_version(name)
        assert row["version"] == latest.version, name
        assert row["aliases"] == sorted(a for a, v in registry.aliases(name).items()
                                        if v == latest.version), name
    assert rows["toy-logreg"]["aliases"] == ["prod"]
    assert rows["toy-logreg"]["task"] == "classification"
    assert rows["toy-logreg"]["dataset"] == "toy"
    assert rows["toy-logreg"]["primary_metric"] == "accuracy"
    assert rows["toy-logreg"]["test_score"] == pytest.approx(0.8)
    assert rows["house-ridge"]["task"] == "regression"
    assert rows["house-ridge"]["primary_metric"] == "r2"


@pytest.mark.parametrize(("query", "names"), [
    ("dataset=toy", {"toy-logreg", "toy-forest"}),
    ("dataset=house", {"house-ridge"}),
    ("dataset=nope", set()),
    ("task=regression", {"house-ridge"}),
    ("task=classification", {"toy-logreg", "toy-forest"}),
    ("alias=prod", {"toy-logreg"}),
    ("alias=canary", set()),
    ("metric=r2", {"house-ridge"}),
    ("limit=1", {"house-ridge"}),
])
def test_models_filters(client: TestClient, query: str, names: set[str]) -> None:
    body = client.get(f"/v1/models?{query}").json()
    assert {r["name"] for r in body["data"]} == names
    assert body["count"] == len(names)


def test_models_filter_by_dataset_fingerprint(client: TestClient, models: ServingModels) -> None:
    fp = models.datasets["house"].fingerprint
    assert [r["name"] for r in client.get(f"/v1/models?dataset={fp}").json()["data"]] == [
        "house-ridge"]


def test_models_metric_filter_sorts_best_first(client: TestClient, registry: Registry,
                                              models: ServingModels) -> None:
    register(registry, "toy-forest", models.pipelines["toy-forest"], models.datasets["toy"],
             score=0.95)
    rows = client.get("/v1/models?metric=accuracy").json()["data"]
    assert [(r["name"], r["version"], r["test_score"]) for r in rows] == [
        ("toy-forest", 2, pytest.approx(0.95)), ("toy-logreg", 1, pytest.approx(0.8))]


def test_models_alias_filter_lists_the_aliased_version(client: TestClient, registry: Registry,
                                                      models: ServingModels) -> None:
    register(registry, "toy-logreg", models.pipelines["toy-logreg"], models.datasets["toy"])
    rows = client.get("/v1/models?alias=prod").json()["data"]
    assert [(r["name"], r["version"]) for r in rows] == [("toy-logreg", 1)]
    assert client.get("/v1/models?dataset=toy").json()["data"][1]["version"] == 2


def test_models_bad_filter_is_422(client: TestClient) -> None:
    body = is_error(client.get("/v1/models?task=clustering"), 422, "ValidationError")
    assert "task" in body["detail"], body
    body = is_error(client.get("/v1/models?limit=0"), 422, "ValidationError")
    assert "limit" in body["detail"], body

