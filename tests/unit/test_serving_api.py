"""The REST API end to end on the ASGI app (no Ray, no network): every route, every error
shape, auth per role, live model discovery, the model cache, statistics and metrics.

Models are registered the way training registers them (see tests/serving_fixtures.py)
into a registry built once per module and copied for each test.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from serving_fixtures import (
    ServingModels,
    mixed_frame,
    open_registry,
    records_of,
    register,
    regression_frame,
    serving_registry,
)

from fleetlearn.api import create_app
from fleetlearn.data import coerce_frame
from fleetlearn.errors import ConfigError
from fleetlearn.registry import Registry
from fleetlearn.serving import ServeSettings, ServingState

PREDICT = "/v1/models/{}/predict"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ServingModels]:
    folder = tmp_path_factory.mktemp("served")
    reg, models = serving_registry(folder)
    reg.close()
    return folder, models


@pytest.fixture
def home(template: tuple[Path, ServingModels], tmp_path: Path) -> Iterator[Path]:
    """A private copy of the module's registry (tests move aliases, add versions...)."""
    folder = tmp_path / "served"
    shutil.copytree(template[0], folder)
    return folder


@pytest.fixture
def models(template: tuple[Path, ServingModels]) -> ServingModels:
    return template[1]


@pytest.fixture
def registry(home: Path) -> Iterator[Registry]:
    reg = open_registry(home)
    yield reg
    reg.close()


def _settings(home: Path, **overrides: Any) -> ServeSettings:
    values: dict[str, Any] = {
        "registry_url": f"sqlite:///{home / 'registry.db'}",
        "artifact_dir": str(home / "artifacts"),
        "refresh_s": 0.02,
        "stats_flush_s": 3600.0,
        "batch_wait_ms": 1.0,
    }
    values.update(overrides)
    return ServeSettings(**values)


@contextmanager
def serve(home: Path, **overrides: Any) -> Iterator[TestClient]:
    """A started app (lifespan run: preload, then flush at exit) over ``home``'s registry."""
    settings = _settings(home, **overrides)
    app = create_app(settings, state=ServingState(settings, registry=open_registry(home)))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    app.state.serving.registry.close()


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    with serve(home) as c:
        yield c


def _state(client: TestClient) -> ServingState:
    return client.app.state.serving  # type: ignore[attr-defined]


def toy_records(n: int = 3, seed: int = 5) -> list[dict[str, Any]]:
    return records_of(mixed_frame(n, seed=seed), drop=("label",))


def house_records(n: int = 3) -> list[dict[str, Any]]:
    return records_of(regression_frame(n, seed=9), drop=("price",))


def _is_error(response: httpx.Response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body.get("detail"), str), body
    assert body["detail"], body
    assert isinstance(body.get("error"), str), body
    assert body["error"], body
    if error is not None:
        assert body["error"] == error, body
    return body


def _poll(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _metrics(client: TestClient, headers: dict[str, str] | None = None) -> dict[tuple, float]:
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: dict[tuple, float] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def _sample(metrics: dict[tuple, float], name: str, **labels: str) -> float:
    return metrics.get((name, *sorted(labels.items())), 0.0)


# ------------------------------------------------------------------ health


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_registry_and_loaded_models(client: TestClient) -> None:
    body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["registry_stamp"]
    assert body["models_loaded"] == 0


def test_preloaded_models_are_in_memory_before_the_first_request(home: Path) -> None:
    with serve(home, preload=["toy-logreg@prod", "house-ridge:1"]) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["models_loaded"] == 2
        metrics = _metrics(client)
        assert _sample(metrics, "fleetlearn_model_load_seconds_count",
                       model="toy-logreg", version="1") == 1
        client.post(PREDICT.format("toy-logreg@prod"), json={"records": toy_records()})
        assert _state(client).cache.loads == 2  # served from memory


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
        _poll(lambda: client.get("/readyz").status_code == 200
              and _state(client).cache.peek(registry.get_model_version("toy-logreg", 2))
              is not None)


# ------------------------------------------------------------------ models


def test_info_describes_the_server(client: TestClient) -> None:
    info = client.get("/v1/info").json()
    assert info["auth_required"] is False
    assert info["max_rows"] == 10_000
    assert info["registry"].startswith("sqlite:///")
    assert info["cache"]["max_models"] == 32
    assert info["replica"]


def test_models_lists_latest_versions_with_scores(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert body["count"] == 3
    rows = {r["name"]: r for r in body["data"]}
    assert set(rows) == {"toy-logreg", "toy-forest", "house-ridge"}
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
    _is_error(client.get("/v1/models?task=clustering"), 422, "ValidationError")
    _is_error(client.get("/v1/models?limit=0"), 422)


def test_model_versions_and_aliases(client: TestClient, registry: Registry,
                                    models: ServingModels) -> None:
    register(registry, "toy-logreg", models.pipelines["toy-logreg"], models.datasets["toy"])
    body = client.get("/v1/models/toy-logreg").json()
    assert body["name"] == "toy-logreg"
    assert body["aliases"] == {"prod": 1}
    assert [(v["version"], v["aliases"]) for v in body["versions"]] == [(1, ["prod"]), (2, [])]


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
        body = _is_error(response, 404, "NotFoundError")
        assert "Did you mean 'toy-logreg'?" in body["detail"]


def test_unknown_version_is_404_listing_the_versions(client: TestClient) -> None:
    body = _is_error(client.get("/v1/models/toy-logreg/versions/7"), 404, "NotFoundError")
    assert "Existing versions: 1" in body["detail"]
    _is_error(client.post(PREDICT.format("toy-logreg") + "?version=7",
                          json={"records": toy_records()}), 404)
    _is_error(client.get("/v1/models/toy-logreg/versions/0"), 422)


# ------------------------------------------------------------------ predict


def _pipeline_says(models: ServingModels, name: str, records: list[dict[str, Any]]) -> list:
    import pandas as pd

    ds = models.datasets["toy" if name.startswith("toy") else "house"]
    return models.pipelines[name].predict(coerce_frame(pd.DataFrame(records), ds.schema)).tolist()


def test_predict_latest_answers_like_the_pipeline(client: TestClient,
                                                  models: ServingModels) -> None:
    records = toy_records(8)
    body = client.post(PREDICT.format("toy-forest"), json={"records": records}).json()
    assert body["model"] == "toy-forest"
    assert body["version"] == 1
    assert body["predictions"] == _pipeline_says(models, "toy-forest", records)
    assert "probabilities" not in body or body["probabilities"] is None


def test_predict_columns_layout(client: TestClient, models: ServingModels) -> None:
    records = toy_records(4)
    columns = list(records[0])
    body = client.post(PREDICT.format("toy-logreg"), json={
        "columns": columns, "data": [[r[c] for c in columns] for r in records]}).json()
    assert body["predictions"] == _pipeline_says(models, "toy-logreg", records)


def test_predict_with_probabilities_keyed_by_class(client: TestClient,
                                                   models: ServingModels) -> None:
    import pandas as pd

    records = toy_records(5)
    body = client.post(PREDICT.format("toy-logreg"),
                       json={"records": records, "return_proba": True}).json()
    assert body["classes"] == ["a", "b"]
    want = models.pipelines["toy-logreg"].predict_proba(
        coerce_frame(pd.DataFrame(records), models.datasets["toy"].schema))
    assert len(body["probabilities"]) == 5
    for got, row in zip(body["probabilities"], want, strict=True):
        assert got == pytest.approx({"a": row[0], "b": row[1]})


def test_predict_picks_the_version(home: Path, registry: Registry,
                                   models: ServingModels) -> None:
    for _ in range(2):
        register(registry, "toy-logreg", models.pipelines["toy-logreg"],
                 models.datasets["toy"])
    with serve(home) as client:
        for path, version in (("toy-logreg@prod", 1), ("toy-logreg:2", 2),
                              ("toy-logreg?version=2", 2), ("toy-logreg", 3),
                              ("toy-logreg?version=1", 1)):
            name, _, query = path.partition("?")
            url = PREDICT.format(name) + (f"?{query}" if query else "")
            body = client.post(url, json={"records": toy_records(1)}).json()
            assert (body["model"], body["version"]) == ("toy-logreg", version), path


def test_version_in_path_and_query_is_refused(client: TestClient) -> None:
    body = _is_error(client.post(PREDICT.format("toy-logreg:1") + "?version=1",
                                 json={"records": toy_records(1)}), 422)
    assert "not both" in body["detail"]


def test_regression_answers_numbers_and_refuses_probabilities(
        client: TestClient, models: ServingModels) -> None:
    records = house_records(4)
    body = client.post(PREDICT.format("house-ridge"), json={"records": records}).json()
    assert body["predictions"] == pytest.approx(_pipeline_says(models, "house-ridge", records))
    refused = _is_error(client.post(PREDICT.format("house-ridge"),
                                    json={"records": records, "return_proba": True}),
                        422, "InputError")
    assert refused["errors"][0]["type"] == "unsupported"
    assert "drop return_proba" in refused["detail"]


def test_unseen_categories_are_answered_and_counted(client: TestClient) -> None:
    records = toy_records(3)
    records[0]["color"], records[2]["color"] = "purple", "teal"
    body = client.post(PREDICT.format("toy-logreg"), json={"records": records}).json()
    assert len(body["predictions"]) == 3
    assert body["unseen_categories"] == {"color": 2}
    metrics = _metrics(client)
    assert _sample(metrics, "fleetlearn_unseen_categories_total", model="toy-logreg",
                   version="1", column="color") == 2


def test_target_and_dropped_columns_may_be_sent(client: TestClient) -> None:
    records = records_of(mixed_frame(2, seed=4))  # with label and row_id
    assert client.post(PREDICT.format("toy-logreg"),
                       json={"records": records}).status_code == 200


def test_bad_input_lists_every_problem(client: TestClient) -> None:
    records = toy_records(2)
    records[0]["x"] = "tall"
    records[1]["flag"] = "perhaps"
    records[1]["colour"] = "red"
    body = _is_error(client.post(PREDICT.format("toy-logreg"), json={"records": records}),
                     422, "InputError")
    assert {(tuple(e["loc"]), e["type"]) for e in body["errors"]} == {
        (("body", "records", 0, "x"), "type"), (("body", "records", 1, "flag"), "type"),
        (("body", "records", "colour"), "unknown_column")}
    assert "toy-logreg:1" in body["detail"]
    assert "3 problems" in body["detail"]
    assert body["more"] == 0


def test_bad_json_is_422(client: TestClient) -> None:
    for raw in (b"{not json", b"", b'{"records": [{"x": NaN}]}'):
        body = _is_error(client.post(PREDICT.format("toy-logreg"), content=raw,
                                     headers={"content-type": "application/json"}),
                         422, "InputError")
        assert body["errors"][0]["type"] == "json_invalid"


def test_non_bool_return_proba_is_422(client: TestClient) -> None:
    body = _is_error(client.post(PREDICT.format("toy-logreg"),
                                 json={"records": toy_records(1), "return_proba": "yes"}), 422)
    assert body["errors"][0]["loc"] == ["body", "return_proba"]


def test_too_many_rows_and_too_big_bodies_are_413(home: Path) -> None:
    with serve(home, max_rows=3, max_body_mb=0.002) as client:
        body = _is_error(client.post(PREDICT.format("toy-logreg"),
                                     json={"records": toy_records(4)}), 413, "InputError")
        assert body["errors"][0]["type"] == "too_many_rows"
        big = {"records": toy_records(1), "pad": "x" * 4000}
        body = _is_error(client.post(PREDICT.format("toy-logreg"), json=big), 413)
        assert body["errors"][0]["type"] == "too_large"
        assert client.post(PREDICT.format("toy-logreg"),
                           json={"records": toy_records(3)}).status_code == 200


def test_values_that_overflow_the_model_are_422_not_500(client: TestClient) -> None:
    for name in ("toy-logreg", "toy-forest"):
        records = toy_records(2)
        records[1]["x"] = 1.7e308
        body = _is_error(client.post(PREDICT.format(name), json={"records": records}), 422)
        assert "too large" in body["detail"]


def test_a_regressor_overflowing_on_huge_inputs_is_422_naming_the_row(
        client: TestClient) -> None:
    """A linear model answers inf/NaN on huge finite inputs: never a silent null."""
    records = house_records(3)
    column = next(k for k, v in records[1].items() if isinstance(v, float))
    records[1][column] = 1.7e308
    body = _is_error(client.post(PREDICT.format("house-ridge"), json={"records": records}),
                     422)
    assert "too large" in body["detail"]
    ok = client.post(PREDICT.format("house-ridge"), json={"records": house_records(3)})
    assert ok.status_code == 200
    assert all(isinstance(p, float) for p in ok.json()["predictions"])


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


# ------------------------------------------------------------------ aliases and discovery


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
    gone = _is_error(client.post(PREDICT.format("toy-logreg@prod"),
                                 json={"records": toy_records(1)}), 404)
    assert "no alias 'prod'" in gone["detail"]
    _is_error(client.put("/v1/models/toy-logreg/aliases/prod", json={"version": 5}), 404)


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
    _poll(lambda: served_version() == 2)
    registry.set_alias("toy-logreg", "prod", 1)
    _poll(lambda: served_version() == 1)


def test_new_version_is_served_without_restart(client: TestClient, registry: Registry,
                                               models: ServingModels) -> None:
    def latest() -> int:
        return client.post(PREDICT.format("house-ridge"),
                           json={"records": house_records(1)}).json()["version"]

    assert latest() == 1
    register(registry, "house-ridge", models.pipelines["house-ridge"], models.datasets["house"])
    _poll(lambda: latest() == 2)
    registry.delete_model_version("house-ridge", 2)
    _poll(lambda: latest() == 1)


# ------------------------------------------------------------------ model cache


def test_concurrent_first_requests_load_the_model_once(home: Path) -> None:
    settings = _settings(home)
    state = ServingState(settings, registry=open_registry(home))
    app = create_app(settings, state=state)

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(*(
                http.post(PREDICT.format("toy-forest"), json={"records": toy_records(1, seed=i)})
                for i in range(16)))

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 16
    assert state.cache.loads == 1
    metrics = state.metrics
    assert metrics.cache_misses._value.get() == 16  # every request found it absent...
    assert metrics.load_seconds.labels("toy-forest", "1")._sum.get() > 0  # ...one loaded it
    state.registry.close()


def test_cache_evicts_the_least_recently_used_model_by_count(home: Path) -> None:
    with serve(home, max_models=2) as client:
        state = _state(client)
        toy, house = {"records": toy_records(1)}, {"records": house_records(1)}
        for name, body in (("toy-logreg", toy), ("toy-forest", toy), ("toy-logreg", toy),
                           ("house-ridge", house)):
            assert client.post(PREDICT.format(name), json=body).status_code == 200
        assert [m.version.name for m in state.cache.cached()] == ["toy-logreg", "house-ridge"]
        assert state.cache.loads == 3
        # The evicted model is loaded again when asked for, and still answers.
        assert client.post(PREDICT.format("toy-forest"), json=toy).status_code == 200
        assert state.cache.loads == 4
        metrics = _metrics(client)
        assert _sample(metrics, "fleetlearn_model_cache_evictions_total") == 2
        assert _sample(metrics, "fleetlearn_model_cache_models") == 2
        assert _sample(metrics, "fleetlearn_model_cache_hits_total") == 1
        assert _sample(metrics, "fleetlearn_model_cache_misses_total") == 4


def test_cache_evicts_by_bytes_but_serves_a_model_bigger_than_the_bound(
        home: Path, registry: Registry) -> None:
    sizes = {n: registry.get_model_version(n).artifact_size
             for n in ("toy-logreg", "toy-forest", "house-ridge")}
    limit = max(sizes.values()) + 1  # any two models together are over it
    with serve(home, max_cache_mb=limit / 2**20) as client:
        state = _state(client)
        for name in ("toy-logreg", "toy-forest"):
            body = client.post(PREDICT.format(name), json={"records": toy_records(1)})
            assert body.status_code == 200
            assert [m.version.name for m in state.cache.cached()] == [name]
            assert state.cache.size_bytes == sizes[name] <= limit
        assert _sample(_metrics(client), "fleetlearn_model_cache_bytes") == sizes["toy-forest"]
    with serve(home, max_cache_mb=1e-6) as client:  # smaller than any model
        assert client.post(PREDICT.format("toy-forest"),
                           json={"records": toy_records(1)}).status_code == 200


def test_model_evicted_during_concurrent_requests_answers_them_all(home: Path) -> None:
    settings = _settings(home, max_models=1)
    state = ServingState(settings, registry=open_registry(home))
    app = create_app(settings, state=state)

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            calls = []
            for i in range(12):
                name = ("toy-logreg", "toy-forest", "house-ridge")[i % 3]
                records = house_records(2) if name == "house-ridge" else toy_records(2, seed=i)
                calls.append(http.post(PREDICT.format(name), json={"records": records}))
            return await asyncio.wait_for(asyncio.gather(*calls), timeout=60)

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 12
    assert len(state.cache) == 1
    state.registry.close()


# ------------------------------------------------------------------ statistics and metrics


def test_metrics_content(client: TestClient) -> None:
    records = toy_records(3)
    for _ in range(2):
        assert client.post(PREDICT.format("toy-logreg"),
                           json={"records": records}).status_code == 200
    client.post(PREDICT.format("toy-logreg"), json={"records": [{"x": "bad"}]})
    client.get("/v1/models")
    m = _metrics(client)
    route = "/v1/models/{name}/predict"
    assert _sample(m, "fleetlearn_http_requests_total", route=route, method="POST",
                   status="200", model="toy-logreg", version="1") == 2
    assert _sample(m, "fleetlearn_http_requests_total", route=route, method="POST",
                   status="422", model="toy-logreg", version="1") == 1
    assert _sample(m, "fleetlearn_http_requests_total", route="/v1/models", method="GET",
                   status="200", model="", version="") == 1
    assert _sample(m, "fleetlearn_http_request_duration_seconds_count", route=route,
                   model="toy-logreg", version="1") == 3
    assert _sample(m, "fleetlearn_http_request_duration_seconds_bucket", route=route,
                   model="toy-logreg", version="1", le="+Inf") == 3
    assert _sample(m, "fleetlearn_http_request_duration_seconds_sum", route=route,
                   model="toy-logreg", version="1") > 0
    assert _sample(m, "fleetlearn_rows_predicted_total", model="toy-logreg", version="1") == 6
    assert _sample(m, "fleetlearn_predict_batch_rows_count", model="toy-logreg",
                   version="1") == 2
    assert _sample(m, "fleetlearn_model_cache_misses_total") == 1
    assert _sample(m, "fleetlearn_model_cache_hits_total") == 2
    assert _sample(m, "fleetlearn_model_load_seconds_count", model="toy-logreg",
                   version="1") == 1
    assert _sample(m, "fleetlearn_model_cache_models") == 1
    assert _sample(m, "fleetlearn_http_requests_in_flight") == 1  # this /metrics request
    assert _sample(m, "process_resident_memory_bytes") > 10 * 2**20
    assert ("process_cpu_seconds_total",) in m


def test_stats_per_model_version_in_this_replica(client: TestClient) -> None:
    for n in (1, 2, 3):
        client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(n)})
    client.post(PREDICT.format("toy-logreg"), json={"records": [{"x": "bad"}]})
    client.post(PREDICT.format("house-ridge"), json={"records": house_records(2)})
    body = client.get("/v1/stats").json()
    assert body["scope"] == "replica"
    assert body["window_s"] == 10.0
    stats = {(m["model"], m["version"]): m for m in body["models"]}
    toy = stats[("toy-logreg", 1)]
    assert (toy["requests"], toy["errors"], toy["rows"]) == (4, 1, 6)
    assert toy["error_rate"] == pytest.approx(0.25)
    assert 0 < toy["p50_ms"] <= toy["p95_ms"] <= toy["p99_ms"]
    assert toy["recent"]["requests"] == 4
    assert toy["recent"]["rps"] > 0
    assert stats[("house-ridge", 1)]["rows"] == 2
    points = [p for p in body["series"] if p["model"] == "toy-logreg"]
    assert sum(p["count"] for p in points) == 4
    only = client.get("/v1/stats?model=house-ridge&version=1").json()["models"]
    assert [(m["model"], m["requests"]) for m in only] == [("house-ridge", 1)]


def test_stats_survive_a_restart(home: Path) -> None:
    with serve(home) as client:
        for _ in range(3):
            client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(2)})
    with serve(home) as client:  # a new process on the same registry
        assert client.get("/v1/stats").json()["models"] == []  # nothing in this replica yet
        client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(1)})
        body = client.get("/v1/stats?scope=registry").json()
        (toy,) = body["models"]
        assert (toy["requests"], toy["rows"]) == (4, 7)


def test_stats_add_up_across_replicas(home: Path) -> None:
    with serve(home) as one, serve(home) as two:
        assert _state(one).stats.replica != _state(two).stats.replica
        for _ in range(2):
            one.post(PREDICT.format("toy-logreg"), json={"records": toy_records(1)})
        for _ in range(3):
            two.post(PREDICT.format("toy-logreg"), json={"records": toy_records(2)})
        two.post(PREDICT.format("toy-logreg"), json={"records": [{"x": "bad"}]})
        one.get("/v1/stats?scope=registry")  # flushes replica one
        body = two.get("/v1/stats?scope=registry").json()
        (toy,) = body["models"]
        assert (toy["requests"], toy["errors"], toy["rows"]) == (6, 1, 8)
        assert sum(p["count"] for p in body["series"]) == 6
        assert one.get("/v1/stats").json()["models"][0]["requests"] == 2
        stored = _state(one).registry.inference_stats(model="toy-logreg")
        assert {r["replica"] for r in stored} == {_state(one).stats.replica,
                                                  _state(two).stats.replica}


def test_server_errors_count_in_the_error_rate(client: TestClient) -> None:
    state = _state(client)
    client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(1)})
    loaded = state.cache.cached()[0]

    def broken(rows: Any, proba: bool = False) -> Any:
        raise RuntimeError("the model broke")

    loaded.predictor.predict = broken  # type: ignore[method-assign]
    response = client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(1)})
    body = _is_error(response, 500, "InternalError")
    assert "RuntimeError" in body["detail"]
    (toy,) = client.get("/v1/stats").json()["models"]
    assert (toy["requests"], toy["errors"]) == (2, 1)


# ------------------------------------------------------------------ keys and auth


ROLES = ("read", "predict", "train", "admin")


@pytest.fixture
def keys(home: Path) -> dict[str, str]:
    reg = open_registry(home)
    out = {role: reg.create_api_key(f"{role}-key", role)[1] for role in ROLES}
    revoked = reg.create_api_key("old", "admin")[1]
    reg.revoke_api_key("old")
    out["revoked"] = revoked
    reg.close()
    return out


def _routes(client: TestClient) -> list[tuple[str, Callable[[dict[str, str]], Any]]]:
    """(least role, request) for every protected route."""
    toy = {"records": toy_records(1)}
    return [
        ("read", lambda h: client.get("/v1/info", headers=h)),
        ("read", lambda h: client.get("/v1/models", headers=h)),
        ("read", lambda h: client.get("/v1/models/toy-logreg", headers=h)),
        ("read", lambda h: client.get("/v1/models/toy-logreg/versions/1", headers=h)),
        ("read", lambda h: client.get("/v1/stats", headers=h)),
        ("read", lambda h: client.get("/metrics", headers=h)),
        ("predict", lambda h: client.post(PREDICT.format("toy-logreg"), json=toy, headers=h)),
        ("admin", lambda h: client.put("/v1/models/toy-logreg/aliases/prod",
                                       json={"version": 1}, headers=h)),
        ("admin", lambda h: client.get("/v1/keys", headers=h)),
        ("admin", lambda h: client.post("/v1/keys", json={"name": "x", "role": "read"},
                                        headers=h)),
        ("admin", lambda h: client.delete("/v1/keys/x", headers=h)),
        ("admin", lambda h: client.put("/v1/models/toy-logreg/aliases/tmp",
                                       json={"version": 1}, headers=h)),
        ("admin", lambda h: client.delete("/v1/models/toy-logreg/aliases/tmp", headers=h)),
    ]


def test_every_route_checks_the_role(home: Path, keys: dict[str, str]) -> None:
    with serve(home) as client:
        assert client.get("/v1/info", headers={"authorization": f"Bearer {keys['read']}"}
                          ).json()["auth_required"] is True
        for needed, call in _routes(client):
            for role in ROLES:
                response = call({"authorization": f"Bearer {keys[role]}"})
                if ROLES.index(role) >= ROLES.index(needed):
                    assert response.status_code < 300, (needed, role, response.text)
                else:
                    body = _is_error(response, 403, "Forbidden")
                    assert f"role '{role}'" in body["detail"]
                    assert needed in body["detail"]


def test_missing_unknown_and_revoked_keys_are_401(home: Path, keys: dict[str, str]) -> None:
    with serve(home) as client:
        for _, call in _routes(client):
            for headers in ({}, {"authorization": "Bearer"},
                            {"authorization": f"Basic {keys['admin']}"},
                            {"authorization": "Bearer flk_not-a-real-key"},
                            {"authorization": f"Bearer {keys['revoked']}"}):
                response = call(headers)
                body = _is_error(response, 401, "Unauthorized")
                assert response.headers["www-authenticate"] == "Bearer"
                assert "key" in body["detail"]
        # Health checks stay open for load balancers.
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200


def test_key_revoked_while_serving_stops_working(home: Path, keys: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fleetlearn.serving._state.KEY_CACHE_S", 0.0)
    headers = {"authorization": f"Bearer {keys['predict']}"}
    with serve(home) as client:
        assert client.get("/v1/models", headers=headers).status_code == 200
        open_registry(home).revoke_api_key("predict-key")
        _is_error(client.get("/v1/models", headers=headers), 401)


def test_key_routes_create_list_revoke(home: Path, keys: dict[str, str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fleetlearn.serving._state.KEY_CACHE_S", 0.0)
    admin = {"authorization": f"Bearer {keys['admin']}"}
    with serve(home) as client:
        created = client.post("/v1/keys", json={"name": "ci", "role": "predict"}, headers=admin)
        assert created.status_code == 201
        secret = created.json()["key"]
        assert secret.startswith("flk_")
        assert created.json()["prefix"] == secret[:8]
        mine = {"authorization": f"Bearer {secret}"}
        assert client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(1)},
                           headers=mine).status_code == 200
        listed = client.get("/v1/keys", headers=admin).json()
        assert {k["name"] for k in listed} == {"ci", *(f"{r}-key" for r in ROLES)}
        assert all("key" not in k and "key_hash" not in k for k in listed)
        every = client.get("/v1/keys?include_revoked=true", headers=admin).json()
        assert "old" in {k["name"] for k in every}
        revoked = client.delete("/v1/keys/ci", headers=admin).json()
        assert revoked["revoked_at"] is not None
        _is_error(client.get("/v1/models", headers=mine), 401)
        _is_error(client.post("/v1/keys", json={"name": "y", "role": "root"}, headers=admin),
                  422)
        _is_error(client.delete("/v1/keys/nobody", headers=admin), 404, "NotFoundError")


def test_key_last_use_is_recorded(home: Path, keys: dict[str, str]) -> None:
    with serve(home) as client:
        client.get("/v1/models", headers={"authorization": f"Bearer {keys['read']}"})
    key = next(k for k in open_registry(home).list_api_keys() if k.name == "read-key")
    assert key.last_used_at is not None


def test_auto_auth_turns_on_once_a_key_exists(home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fleetlearn.serving._state.KEY_CACHE_S", 0.0)
    with serve(home) as client:
        assert client.get("/v1/models").status_code == 200  # loopback, no keys: open
        created = client.post("/v1/keys", json={"name": "first", "role": "admin"}).json()
        _is_error(client.get("/v1/models"), 401)
        headers = {"authorization": f"Bearer {created['key']}"}
        assert client.get("/v1/models", headers=headers).status_code == 200
        assert client.get("/v1/info", headers=headers).json()["auth_required"] is True


def test_auth_on_requires_keys_even_on_loopback(home: Path) -> None:
    with serve(home, auth="on") as client:
        _is_error(client.get("/v1/models"), 401)


def test_auth_off_never_asks_for_keys_on_loopback(home: Path, keys: dict[str, str]) -> None:
    with serve(home, auth="off") as client:
        assert client.get("/v1/keys").status_code == 200


def test_non_loopback_requires_keys_even_without_any(home: Path) -> None:
    state = ServingState(_settings(home, host="0.0.0.0"), registry=open_registry(home))
    assert state.auth_required is True
    state.registry.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_auth_off_is_refused_off_loopback(host: str) -> None:
    with pytest.raises(ConfigError, match=f"Refusing to serve on {host} without API keys"):
        ServeSettings(host=host, auth="off")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_auth_off_is_allowed_on_loopback(host: str) -> None:
    assert ServeSettings(host=host, auth="off").auth == "off"


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


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/healthz", "/readyz", "/v1/info", "/v1/models", "/v1/models/{name}",
                 "/v1/models/{name}/versions/{version}", "/v1/models/{name}/predict",
                 "/v1/models/{name}/aliases/{alias}", "/v1/stats", "/metrics", "/v1/keys"):
        assert path in paths, path
    body = paths["/v1/models/{name}/predict"]["post"]["requestBody"]["content"]
    assert set(body["application/json"]["examples"]) == {"records", "columns"}
    assert client.get("/docs").status_code == 200


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


def test_math_of_percentiles_is_sane_for_a_known_latency(client: TestClient) -> None:
    """Stats percentiles are read from fixed buckets: within ~25 % of the truth."""
    state = _state(client)
    for _ in range(100):
        state.stats.record("m", 1, latency_ms=4.0, rows=1)
    (m,) = [s for s in client.get("/v1/stats?model=m").json()["models"]]
    assert math.isclose(m["p50_ms"], 4.0, rel_tol=0.25)
    assert math.isclose(m["p99_ms"], 4.0, rel_tol=0.25)
    assert m["mean_ms"] == pytest.approx(4.0)


def test_registry_scope_since_filter(home: Path) -> None:
    with serve(home) as client:
        client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(1)})
        state = _state(client)
        state.stats.record("toy-logreg", 1, 2.0, 1, now=time.time() - 7200)  # 2 hours ago
        (everything,) = client.get("/v1/stats?scope=registry").json()["models"]
        (recent,) = client.get("/v1/stats?scope=registry&since=600").json()["models"]
        assert everything["requests"] == 2
        assert recent["requests"] == 1
