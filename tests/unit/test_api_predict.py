"""POST /v1/models/{name}/predict: answers equal the pipeline's, every input error is a 422/413.

The ASGI app in memory (no Ray, no network) over a real SQLite registry holding
models registered as training registers them (tests/model_fixtures.py); fixtures
in tests/api_fixtures.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from api_fixtures import (
    PREDICT,
    house_records,
    is_error,
    metrics_of,
    pipeline_says,
    sample,
    serve,
    toy_records,
)
from fastapi.testclient import TestClient
from model_fixtures import (
    ServingModels,
    mixed_frame,
    records_of,
    register,
)

from fleetlearn.data import coerce_frame
from fleetlearn.registry import Registry


def test_version_in_path_and_query_is_refused(client: TestClient) -> None:
    body = is_error(client.post(PREDICT.format("toy-logreg:1") + "?version=1",
                                json={"records": toy_records(1)}), 422)
    assert "not both" in body["detail"]


def test_regression_answers_numbers_and_refuses_probabilities(
        client: TestClient, models: ServingModels) -> None:
    records = house_records(4)
    body = client.post(PREDICT.format("house-ridge"), json={"records": records}).json()
    assert body["predictions"] == pytest.approx(pipeline_says(models, "house-ridge", records))
    refused = is_error(client.post(PREDICT.format("house-ridge"),
                                   json={"records": records, "return_proba": True}),
                       422, "InputError")
    assert refused["errors"][0]["type"] == "unsupported"
    assert "drop return_proba" in refused["detail"]


def test_unseen_categories_are_answered_and_counted(client: TestClient,
                                                    models: ServingModels) -> None:
    records = toy_records(3)
    records[0]["color"], records[2]["color"] = "purple", "teal"
    body = client.post(PREDICT.format("toy-logreg"), json={"records": records}).json()
    assert body["predictions"] == pipeline_says(models, "toy-logreg", records)
    assert body["unseen_categories"] == {"color": 2}
    metrics = metrics_of(client)
    assert sample(metrics, "fleetlearn_unseen_categories_total", model="toy-logreg",
                  version="1", column="color") == 2


def test_target_and_dropped_columns_may_be_sent(client: TestClient) -> None:
    """The extra columns are ignored: the answer is the same request's without them."""
    records = records_of(mixed_frame(6, seed=4))  # with label and row_id
    assert {"label", "row_id"} <= set(records[0])
    with_extra = client.post(PREDICT.format("toy-logreg"),
                             json={"records": records, "return_proba": True})
    assert with_extra.status_code == 200, with_extra.text
    without = client.post(PREDICT.format("toy-logreg"), json={
        "records": records_of(mixed_frame(6, seed=4), drop=("label", "row_id")),
        "return_proba": True}).json()
    assert with_extra.json() == without
    assert len(without["predictions"]) == 6


def test_bad_input_lists_every_problem(client: TestClient) -> None:
    records = toy_records(2)
    records[0]["x"] = "tall"
    records[1]["flag"] = "perhaps"
    records[1]["colour"] = "red"
    body = is_error(client.post(PREDICT.format("toy-logreg"), json={"records": records}),
                    422, "InputError")
    assert {(tuple(e["loc"]), e["type"]) for e in body["errors"]} == {
        (("body", "records", 0, "x"), "type"), (("body", "records", 1, "flag"), "type"),
        (("body", "records", "colour"), "unknown_column")}
    assert "toy-logreg:1" in body["detail"]
    assert "3 problems" in body["detail"]
    assert body["more"] == 0


def test_bad_json_is_422(client: TestClient) -> None:
    for raw in (b"{not json", b"", b'{"records": [{"x": NaN}]}'):
        body = is_error(client.post(PREDICT.format("toy-logreg"), content=raw,
                                    headers={"content-type": "application/json"}),
                        422, "InputError")
        assert body["errors"][0]["type"] == "json_invalid"


def test_non_bool_return_proba_is_422(client: TestClient) -> None:
    body = is_error(client.post(PREDICT.format("toy-logreg"),
                                json={"records": toy_records(1), "return_proba": "yes"}), 422)
    assert body["errors"][0]["loc"] == ["body", "return_proba"]


def test_too_many_rows_and_too_big_bodies_are_413(home: Path) -> None:
    with serve(home, max_rows=3, max_body_mb=0.002) as client:
        body = is_error(client.post(PREDICT.format("toy-logreg"),
                                    json={"records": toy_records(4)}), 413, "InputError")
        assert body["errors"][0]["type"] == "too_many_rows"
        big = {"records": toy_records(1), "pad": "x" * 4000}
        body = is_error(client.post(PREDICT.format("toy-logreg"), json=big), 413)
        assert body["errors"][0]["type"] == "too_large"
        at_the_bound = client.post(PREDICT.format("toy-logreg"),
                                   json={"records": toy_records(3)})
        assert at_the_bound.status_code == 200, at_the_bound.text
        assert len(at_the_bound.json()["predictions"]) == 3


def test_values_that_overflow_the_model_are_422_not_500(client: TestClient) -> None:
    for name in ("toy-logreg", "toy-forest"):
        records = toy_records(2)
        records[1]["x"] = 1.7e308
        body = is_error(client.post(PREDICT.format(name), json={"records": records}), 422)
        assert "too large" in body["detail"]


def test_a_regressor_overflowing_on_huge_inputs_is_422_naming_the_row(
        client: TestClient, models: ServingModels) -> None:
    """A linear model answers inf/NaN on huge finite inputs: never a silent null."""
    records = house_records(3)
    column = next(k for k, v in records[1].items() if isinstance(v, float))
    records[1][column] = 1.7e308
    body = is_error(client.post(PREDICT.format("house-ridge"), json={"records": records}),
                    422)
    assert "too large" in body["detail"]
    ok = client.post(PREDICT.format("house-ridge"), json={"records": house_records(3)})
    assert ok.status_code == 200
    assert all(isinstance(p, float) for p in ok.json()["predictions"])
    assert ok.json()["predictions"] == pytest.approx(
        pipeline_says(models, "house-ridge", house_records(3)))


def test_predict_latest_answers_like_the_pipeline(client: TestClient,
                                                  models: ServingModels) -> None:
    records = toy_records(8)
    body = client.post(PREDICT.format("toy-forest"), json={"records": records}).json()
    assert body["model"] == "toy-forest"
    assert body["version"] == 1
    assert body["predictions"] == pipeline_says(models, "toy-forest", records)
    assert "probabilities" not in body or body["probabilities"] is None


def test_predict_columns_layout(client: TestClient, models: ServingModels) -> None:
    records = toy_records(4)
    columns = list(records[0])
    body = client.post(PREDICT.format("toy-logreg"), json={
        "columns": columns, "data": [[r[c] for c in columns] for r in records]}).json()
    assert body["predictions"] == pipeline_says(models, "toy-logreg", records)


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



def test_errors_name_what_was_wrong_but_not_where_the_server_keeps_things(
        client: TestClient, registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    where = [str(registry.url), str(registry.artifacts.root)]
    answers = [
        client.post(PREDICT.format("no-such-model"), json={"records": toy_records(1)}),
        client.get("/v1/runs/feedfacecafe"),
        client.get("/v1/models/no-such-model"),
    ]
    for answer in answers:
        body = is_error(answer, 404, "NotFoundError")
        assert not any(p in body["detail"] for p in where), body["detail"]
        assert "the server's registry" in body["detail"]
        assert answer.headers["X-Request-ID"]
    assert "'no-such-model'" in answers[0].json()["detail"]
    assert "'feedfacecafe'" in answers[1].json()["detail"]
    # The operator's log still has where.
    logged = [r for r in caplog.records if "no-such-model" in r.getMessage()]
    assert logged
    assert str(registry.url) in logged[0].getMessage()
