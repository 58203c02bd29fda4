"""The GUI's pages in ``streamlit.testing.v1.AppTest`` against a real API on loopback.

The server is ``fleetlearn serve``'s app in a real uvicorn (``live_server.serving``) over
a copy of the serving registry (``model_fixtures.serving_registry``: toy-logreg with
alias prod, toy-forest, house-ridge, each registered by its own run). The GUI reaches it
only over HTTP, through ``FLEETLEARN_URL`` / ``FLEETLEARN_API_KEY`` as ``fleetlearn ui``
sets them. Assertions are on what a user reads: ids, names, numbers, rows.

AppTest runs a fragment's body once with its page; its refreshes are not simulated, so
the Monitoring panel's data function (``collect_monitoring``) is tested directly too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import pipeline_says, serve, toy_records
from live_server import free_port, serving
from model_fixtures import ServingModels, mixed_frame, records_of, register
from streamlit.testing.v1 import AppTest

from fleetlearn.client import Client
from fleetlearn.errors import ApiError
from fleetlearn.registry import Registry
from fleetlearn.ui import APP_FILE
from fleetlearn.ui import _views as views

TIMEOUT_S = 60


@pytest.fixture
def api(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The API over ``home``'s registry on a free loopback port; the GUI pointed at it."""
    with serve(home) as client, serving(client.app, free_port()) as url:
        monkeypatch.setenv("FLEETLEARN_URL", url)
        monkeypatch.delenv("FLEETLEARN_API_KEY", raising=False)
        yield url


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP_FILE), default_timeout=TIMEOUT_S).run()
    if page is not None:
        at.switch_page(f"screens/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    """Every text a user can read on the page, joined."""
    parts: list[str] = []
    for kind in ("title", "subheader", "markdown", "caption", "error", "warning", "info",
                 "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    for frame in at.dataframe:
        parts.append(frame.value.to_string())
    return "\n".join(parts)


def _metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}: {[m.label for m in at.metric]}"
    return found[0]


def _frame_with(at: AppTest, column: str) -> Any:
    frames = [f.value for f in at.dataframe if column in f.value.columns]
    assert frames, f"no table with a {column!r} column"
    return frames[0]


# ------------------------------------------------------------------ overview


def test_overview_shows_runs_aliases_and_live_traffic(api: str, registry: Registry) -> None:
    with Client(api) as client:
        for _ in range(4):
            client.predict("toy-logreg@prod", toy_records(2))
    at = _app()
    assert [t.value for t in at.title] == ["Overview"]
    runs = _frame_with(at, "status")
    assert runs["id"].tolist() == [r.id for r in registry.list_runs(limit=10)]
    assert set(runs["datasets"]) == {"toy", "house"}
    aliased = _frame_with(at, "aliases")
    assert aliased[["name", "aliases"]].values.tolist() == [["toy-logreg", "prod"]]
    assert _metric(at, "nodes alive") == "0"
    assert "No Ray cluster behind this server" in _texts(at)
    assert _metric(at, "model versions served") == "1"
    assert float(_metric(at, "requests/s (last 5 min)")) > 0
    assert _metric(at, "error rate") == "0.0 %"


def test_overview_pages_through_every_version_holding_an_alias(
        api: str, registry: Registry, models: ServingModels) -> None:
    # 52 aliased versions: on old versions too (prod stays on toy-logreg:1 after a
    # version 2), so the first page of latest models would not show them all.
    register(registry, "toy-logreg", models.pipelines["toy-logreg"], models.datasets["toy"])
    for i in range(views.PAGE_SIZE + 1):
        name = f"bulk-{i:03d}"
        register(registry, name, models.pipelines["house-ridge"], models.datasets["house"],
                 lineage=False)
        registry.set_alias(name, "champion", 1)
    expected = [(mv.name, mv.version) for mv in registry.list_models(has_alias=True)]
    assert len(expected) == views.PAGE_SIZE + 2
    assert ("toy-logreg", 1) in expected
    at = _app()
    first = _frame_with(at, "aliases")
    assert list(zip(first["name"], first["version"], strict=True)) == expected[:views.PAGE_SIZE]
    at.button(key="overview-aliased-next").click().run()
    assert not at.exception
    second = _frame_with(at, "aliases")
    assert list(zip(second["name"], second["version"], strict=True)) == \
        expected[views.PAGE_SIZE:]
    assert second.set_index("name").loc["toy-logreg", "aliases"] == "prod"
    assert at.button(key="overview-aliased-next").disabled


# ------------------------------------------------------------------ runs


def test_runs_page_pages_through_every_run_on_the_server(api: str, registry: Registry) -> None:
    for i in range(views.PAGE_SIZE + 5):
        registry.create_run({"models": ["ridge"]}, seed=i, name=f"bulk-{i}")
    newest_first = [r.id for r in registry.list_runs(limit=500)]
    assert len(newest_first) == views.PAGE_SIZE + 8
    at = _app("runs")
    first = _frame_with(at, "status")
    assert first["id"].tolist() == newest_first[:views.PAGE_SIZE]
    assert f"rows 1–{views.PAGE_SIZE}" in _texts(at)
    at.button(key="runs-older").click().run()
    second = _frame_with(at, "status")
    assert second["id"].tolist() == newest_first[views.PAGE_SIZE:]
    assert at.button(key="runs-older").disabled
    # The picked run's detail: a run without results says so, no leaderboard.
    assert at.selectbox(key="runs-pick").value == newest_first[views.PAGE_SIZE]
    assert _metric(at, "status") == "running"
    assert "No result yet" in _texts(at)
    at.button(key="runs-newer").click().run()
    assert _frame_with(at, "status")["id"].tolist() == newest_first[:views.PAGE_SIZE]


# ------------------------------------------------------------------ models


def test_models_page_shows_versions_metrics_lineage_and_schema(
        api: str, registry: Registry, models: ServingModels) -> None:
    register(registry, "toy-logreg", models.pipelines["toy-logreg"], models.datasets["toy"],
             score=0.875)
    at = _app("models")
    listed = _frame_with(at, "latest version")
    assert listed["name"].tolist() == ["house-ridge", "toy-forest", "toy-logreg"]
    assert listed.set_index("name").loc["toy-logreg", "latest version"] == 2
    at.selectbox(key="models-pick").select("toy-logreg").run()
    versions = _frame_with(at, "size (KiB)")
    assert versions["version"].tolist() == [2, 1]
    assert versions["aliases"].tolist() == ["", "prod"]
    assert versions["test score"].tolist() == pytest.approx([0.875, 0.8])
    metrics = _frame_with(at, "value")
    assert metrics.values.tolist() == [["accuracy (primary)", pytest.approx(0.875)]]
    schema = _frame_with(at, "kind")
    expected = registry.get_model_version("toy-logreg", version=2).input_schema["columns"]
    assert schema["column"].tolist() == [c["name"] for c in expected]
    assert set(schema["kind"]) == {c["kind"] for c in expected}
    text = _texts(at)
    version = registry.get_model_version("toy-logreg", version=2)
    assert f"run: `{version.run_id}`" in text
    assert version.artifact_digest in text
    assert "`toy-logreg@prod` → version 1" in text


def test_an_alias_is_set_moved_and_a_version_deleted_after_confirmation(
        api: str, registry: Registry, models: ServingModels) -> None:
    register(registry, "toy-logreg", models.pipelines["toy-logreg"], models.datasets["toy"])
    at = _app("models")
    at.selectbox(key="models-pick").select("toy-logreg").run()
    at.text_input(key="alias-name").input("production")
    at.selectbox(key="alias-version").select(2)
    at.button(key="alias-set").click().run()
    assert registry.aliases("toy-logreg") == {"prod": 1, "production": 2}
    assert "toy-logreg@production now points at version 2." in _texts(at)
    # Move prod from 1 to 2.
    at.text_input(key="alias-name").input("prod")
    at.selectbox(key="alias-version").select(2)
    at.button(key="alias-set").click().run()
    assert registry.aliases("toy-logreg") == {"prod": 2, "production": 2}

    at.selectbox(key="version-pick-toy-logreg").select(2).run()
    at.button(key="delete-ask").click().run()
    assert "Delete toy-logreg:2?" in _texts(at)
    assert [v.version for v in registry.list_models(name="toy-logreg")] == [1, 2]  # not yet
    at.button(key="delete-cancel").click().run()
    assert [v.version for v in registry.list_models(name="toy-logreg")] == [1, 2]
    at.button(key="delete-ask").click().run()
    at.button(key="delete-confirm").click().run()
    assert [v.version for v in registry.list_models(name="toy-logreg")] == [1]
    assert registry.aliases("toy-logreg") == {}  # both pointed at 2
    assert "toy-logreg:2 deleted." in _texts(at)
    assert _frame_with(at, "size (KiB)")["version"].tolist() == [1]


def test_models_are_paged_on_the_server(api: str, registry: Registry,
                                        models: ServingModels) -> None:
    for i in range(views.PAGE_SIZE):
        register(registry, f"bulk-{i:03d}", models.pipelines["house-ridge"],
                 models.datasets["house"], lineage=False)
    names = sorted([f"bulk-{i:03d}" for i in range(views.PAGE_SIZE)]
                   + ["house-ridge", "toy-forest", "toy-logreg"])
    at = _app("models")
    assert _frame_with(at, "latest version")["name"].tolist() == names[:views.PAGE_SIZE]
    at.button(key="models-next").click().run()
    assert _frame_with(at, "latest version")["name"].tolist() == names[views.PAGE_SIZE:]
    assert at.button(key="models-next").disabled


# ------------------------------------------------------------------ monitoring


def test_monitoring_shows_serving_per_version_and_this_machine(api: str) -> None:
    with Client(api) as client:
        for _ in range(3):
            client.predict("toy-forest", toy_records(3))
        with pytest.raises(ApiError, match="house-ridge"):
            client.predict("house-ridge", [{"a": "not a number", "b": 1.0, "shop": "north"}])
        snap = views.collect_monitoring(client, window=60)
    # The fragment's data, directly: the server's own numbers.
    assert snap.cluster["mode"] == "local"
    served = views.serving_frame(snap.stats).set_index("model")
    assert served.loc["toy-forest", "requests"] == 3
    assert served.loc["toy-forest", "errors"] == 0
    assert served.loc["house-ridge", "errors"] == 1
    assert served.loc["house-ridge", "error rate (%)"] == pytest.approx(100.0)
    assert served.loc["toy-forest", "p50 (ms)"] > 0
    assert 0 < snap.machine.memory_percent <= 100
    assert snap.machine.disk_total > 0
    # The page: the same rows, and this machine's gauges.
    at = _app("monitoring")
    table = _frame_with(at, "requests/s").set_index("model")
    assert table.loc["toy-forest", "requests"] == 3
    assert table.loc["house-ridge", "errors"] == 1
    assert _metric(at, "memory").endswith("%")
    assert any(m.label.startswith("CPU (") for m in at.metric)
    assert "No Ray cluster behind this server" in _texts(at)


# ------------------------------------------------------------------ errors


@pytest.fixture
def keyed_api(home: Path, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
              ) -> Iterator[tuple[str, dict[str, str]]]:
    with serve(home) as client, serving(client.app, free_port()) as url:
        monkeypatch.setenv("FLEETLEARN_URL", url)
        monkeypatch.delenv("FLEETLEARN_API_KEY", raising=False)
        yield url, keys


@pytest.mark.parametrize("page", [None, "train", "runs", "models", "monitoring", "predict"])
def test_a_wrong_key_asks_for_the_key_again_and_a_good_one_opens_the_page(
        keyed_api: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
        registry: Registry, page: str | None) -> None:
    _, keys = keyed_api
    wrong = keys["read"][:-4] + "zzzz"
    monkeypatch.setenv("FLEETLEARN_API_KEY", wrong)
    at = _app(page)
    assert any("The server refused this API key" in e.value for e in at.error)
    prompt = at.text_input(key="api_key_input")
    assert prompt.label == "API key"
    assert not at.dataframe  # nothing behind the prompt
    prompt.input(keys["read"])
    at.button(key="api-key-use").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    if page in (None, "runs"):
        assert set(_frame_with(at, "status")["id"]) == {r.id for r in registry.list_runs()}
    elif page == "models":
        assert _frame_with(at, "latest version")["name"].tolist() == [
            "house-ridge", "toy-forest", "toy-logreg"]
    for secret in (wrong, keys["read"]):
        assert secret not in _texts(at)


def test_no_key_says_the_server_needs_one(keyed_api: tuple[str, dict[str, str]]) -> None:
    at = _app()
    assert any("The server needs an API key" in e.value for e in at.error)
    assert at.text_input(key="api_key_input").label == "API key"


def test_a_key_without_the_role_is_told_so_and_nothing_changes(
        keyed_api: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
        registry: Registry) -> None:
    _, keys = keyed_api
    monkeypatch.setenv("FLEETLEARN_API_KEY", keys["read"])
    at = _app("models")
    at.selectbox(key="models-pick").select("toy-forest").run()
    at.text_input(key="alias-name").input("production")
    at.button(key="alias-set").click().run()
    assert not at.exception
    assert any(e.value.startswith("Not allowed to set alias production") and "admin"
               in e.value for e in at.error), [e.value for e in at.error]
    assert registry.aliases("toy-forest") == {}


@pytest.mark.parametrize("page", [None, "train", "runs", "models", "monitoring", "predict"])
def test_a_server_that_is_down_is_a_message_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch, page: str | None) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("FLEETLEARN_URL", dead)
    at = _app(page)
    assert not at.exception
    messages = [e.value for e in at.error]
    assert len(messages) == 1, messages
    assert messages[0].startswith("Cannot ")
    assert f"Cannot reach the fleetlearn server at {dead}: connection refused" in messages[0]


# ------------------------------------------------------------------ predict


def test_the_predict_form_is_made_from_the_schema_and_answers_what_the_model_says(
        api: str, models: ServingModels) -> None:
    at = _app("predict")
    at.selectbox(key="predict-model").select("toy-logreg").run()
    ref = "toy-logreg:1"
    schema = models.datasets["toy"].schema
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {"x": "numeric", "flag": "boolean", "color": "categorical",
                     "when": "datetime"}
    # The right widget per kind, categories as the choices.
    assert at.selectbox(key=f"pf-{ref}-color").options == [
        "missing", *[str(c) for c in schema.columns[2].categories]]
    at.number_input(key=f"pf-{ref}-x").set_value(1.25)
    at.selectbox(key=f"pf-{ref}-flag").select(True)
    at.selectbox(key=f"pf-{ref}-color").select("red")
    at.date_input(key=f"pf-{ref}-when").set_value(date(2020, 3, 1))
    at.button(key=f"predict-submit-{ref}").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    record = {"x": 1.25, "flag": True, "color": "red", "when": "2020-03-01"}
    expected = pipeline_says(models, "toy-logreg", [record])[0]
    assert _metric(at, "prediction of toy-logreg:1") == str(expected)
    probabilities = _frame_with(at, "probability")
    assert set(probabilities["class"]) == {"a", "b"}
    assert probabilities["probability"].sum() == pytest.approx(1.0)
    assert probabilities["class"].iloc[0] == str(expected)  # most likely first


def test_the_predict_form_of_a_regressor_gives_a_number_and_no_probabilities(
        api: str, models: ServingModels) -> None:
    at = _app("predict")
    at.selectbox(key="predict-model").select("house-ridge").run()
    ref = "house-ridge:1"
    at.number_input(key=f"pf-{ref}-a").set_value(0.5)
    at.selectbox(key=f"pf-{ref}-shop").select("north")  # b left empty: missing
    at.button(key=f"predict-submit-{ref}").click().run()
    assert not at.error, [e.value for e in at.error]
    expected = pipeline_says(models, "house-ridge", [{"a": 0.5, "b": None, "shop": "north"}])
    assert float(_metric(at, f"prediction of {ref}")) == pytest.approx(expected[0])
    assert not [f for f in at.dataframe if "probability" in f.value.columns]


def test_a_batch_is_predicted_in_requests_and_the_rejected_rows_named(
        api: str, models: ServingModels) -> None:
    frame = mixed_frame(25, seed=3).drop(columns=["label"])
    with Client(api) as client:
        good = views.predict_table(client, "toy-forest:1", frame, proba=True, batch_rows=10)
        assert good.problems.empty
        assert good.predictions["prediction"].tolist() == pipeline_says(
            models, "toy-forest", records_of(frame))
        assert (good.predictions["proba_a"] + good.predictions["proba_b"]).tolist() == \
            pytest.approx([1.0] * 25)
        assert good.predictions["row_id"].tolist() == frame["row_id"].tolist()  # kept
        bad = frame.astype({"x": object})
        bad.loc[17, "x"] = "seventeen"
        refused = views.predict_table(client, "toy-forest:1", bad, batch_rows=10)
    assert len(refused.predictions) == 10  # the first batch, before the refused one
    assert refused.problems[["row", "column"]].values.tolist() == [[17, "x"]]
    # The server's own message, its row counted in the whole table (it said "Row 7").
    assert refused.problems["problem"].tolist() == ["Row 17: expected a number, got "
                                                    "'seventeen'."]
    assert refused.message == ("The request does not fit model toy-forest:1: Row 17: "
                               "expected a number, got 'seventeen'.")


# ------------------------------------------------------------------ train


def test_train_with_a_model_the_server_does_not_know_is_its_message_and_no_run(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        registry: Registry) -> None:
    before = [r.id for r in registry.list_runs(limit=100)]
    mixed_frame(60).to_csv(tmp_path / "people.csv", index=False)
    with serve(home, data_dir=str(tmp_path / "data")) as app_client, \
            serving(app_client.app, free_port()) as url:
        monkeypatch.setenv("FLEETLEARN_URL", url)
        monkeypatch.delenv("FLEETLEARN_API_KEY", raising=False)
        with Client(url) as client:
            client.upload_dataset(tmp_path / "people.csv")
        at = _app("train")
        assert at.multiselect(key="train-tables").options == ["people.csv"]
        assert at.multiselect(key="train-tables").value == ["people.csv"]
        assert at.selectbox(key="train-target-people.csv").value == "label"  # the last column
        at.text_area(key="train-models").input("random_forrest")
        at.button(key="train-start").click().run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert len(messages) == 1, messages
    assert messages[0].startswith("Cannot start the run (422): ")
    assert "random_forrest" in messages[0]
    assert "random_forest" in messages[0]  # the server's suggestion
    assert "train_run" not in at.session_state
    assert [r.id for r in registry.list_runs(limit=100)] == before
