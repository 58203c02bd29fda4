"""The GUI on a run trained on Ray, served by a real API on loopback.

Runs: the leaderboard a user reads is the server's (model names, CV means, confidence
intervals, the tied-with-best marking), the figures are the report's as the server
draws them (``GET /v1/runs/{id}/figures``; every one of them is counted in
test_run_figures.py), and the HTML report downloads. Monitoring: the Ray
node of this session's cluster, its address and CPUs, as ``GET /v1/cluster`` reports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from live_server import free_port, serving
from sklearn.datasets import load_iris, load_wine
from streamlit.testing.v1 import AppTest

import fleetlearn
import fleetlearn.training
from fleetlearn.api import create_app
from fleetlearn.client import Client
from fleetlearn.serving import ServeSettings
from fleetlearn.ui import APP_FILE
from fleetlearn.ui import _views as views

pytestmark = pytest.mark.usefixtures("ray_session")

MODELS = ["logistic_regression", "decision_tree:max_depth=2"]


@pytest.fixture
def trained(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[tuple[str, str]]:
    """A finished run on two tables, and the API (knowing this session's Ray cluster)
    the GUI is pointed at: (url, run id)."""
    iris = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    iris.to_csv(tmp_path / "iris.csv", index=False)
    load_wine(as_frame=True).frame.to_csv(tmp_path / "wine.csv", index=False)
    configs = fleetlearn.training.dataset_configs(
        [tmp_path / "iris.csv", tmp_path / "wine.csv"],
        {"iris.csv": "species", "wine.csv": "target"})
    for c in configs:
        c.models = MODELS
    run_id = fleetlearn.training.train_run(
        fleetlearn.RunConfig(datasets=configs, folds=3, seed=4)).run_id
    gcs = ray.get_runtime_context().gcs_address
    app = create_app(ServeSettings(data_dir=str(tmp_path), ray_address=gcs))
    with serving(app, free_port()) as url:
        monkeypatch.setenv("FLEETLEARN_URL", url)
        monkeypatch.delenv("FLEETLEARN_API_KEY", raising=False)
        yield url, run_id


def _page(page: str) -> AppTest:
    at = AppTest.from_file(str(APP_FILE), default_timeout=120).run()
    at.switch_page(f"screens/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _board(at: AppTest, dataset: str) -> Any:
    frames = [f.value for f in at.dataframe if "versus best" in f.value.columns
              and set(f.value["dataset"]) == {dataset}]
    assert len(frames) == 1, f"no single leaderboard of {dataset}"
    return frames[0]


def test_runs_page_shows_the_servers_leaderboard_figures_and_report(
        trained: tuple[str, str]) -> None:
    url, run_id = trained
    with Client(url) as client:
        expected = client.leaderboard(run_id)
    at = _page("runs")
    assert at.selectbox(key="runs-pick").value == run_id
    assert _metric(at, "status") == "finished"
    assert _metric(at, "trials done") == "4 / 4"
    for dataset in ("iris", "wine"):
        board = _board(at, dataset)
        rows = [r for r in expected if r["dataset"] == dataset]
        assert board["model"].tolist() == [r["model"] for r in rows]
        assert board["model"].tolist()[0] in {"logistic_regression", "decision_tree"}
        assert board["cv mean"].tolist() == pytest.approx([r["cv_mean"] for r in rows])
        assert board["95% CI low"].tolist() == pytest.approx([r["ci_low"] for r in rows])
        assert board["test"].tolist() == pytest.approx([r["test"] for r in rows])
        assert board["versus best"].iloc[0] == "best"
        marks = {True: "tied with best", False: "worse", None: "not tested"}
        assert board["versus best"].tolist()[1:] == [marks[r["tied_with_best"]]
                                                      for r in rows[1:]]
        assert (board["95% CI low"] <= board["cv mean"]).all()
        assert (board["cv mean"] <= board["95% CI high"]).all()
    charts = [c.proto for c in at.get("plotly_chart")]
    specs = " ".join(c.spec for c in charts)
    assert "iris: fit time vs" in specs
    assert "wine: fit time vs" in specs
    assert "critical difference diagram (Nemenyi" in specs  # two classification tables

    at.button(key="report-prepare").click().run()
    assert not at.exception
    downloads = at.get("download_button")
    assert len(downloads) == 1
    assert downloads[0].proto.label == "Download the HTML report"
    held_id, html = at.session_state["runs_report"]
    assert held_id == run_id
    assert html.lstrip().lower().startswith("<!doctype html")
    assert run_id in html


def test_compare_page_shows_the_servers_ranks_friedman_and_trends(
        trained: tuple[str, str]) -> None:
    url, run_id = trained
    with Client(url) as client:
        across = client.compare(run_id)["across_datasets"]["classification"]
        trend = client.trends(dataset="iris")
    at = _page("compare")
    assert at.selectbox(key="compare-run").value == run_id
    texts = " ".join(str(m.value) for m in at.markdown)
    assert "classification: 2 datasets" in " ".join(str(s.value) for s in at.subheader)
    friedman = across["friedman"]
    assert f"Friedman χ² = {friedman['statistic']:.2f}" in texts
    assert f"p = {friedman['p_value']:.3g}" in texts
    ranks = [f.value for f in at.dataframe if "average rank" in f.value.columns]
    assert len(ranks) == 1
    expected = sorted(across["average_ranks"].items(), key=lambda kv: kv[1])
    assert ranks[0]["model"].tolist() == [m for m, _ in expected]
    assert ranks[0]["average rank"].tolist() == pytest.approx([r for _, r in expected])
    scores = [f.value for f in at.dataframe if "dataset" in f.value.columns
              and "average rank" not in f.value.columns]
    assert sorted(scores[0]["dataset"]) == ["iris", "wine"]
    for model in across["models"]:
        assert scores[0].set_index("dataset")[model].to_dict() == pytest.approx(
            {d: across["scores"][d][model] for d in ("iris", "wine")})
    specs = " ".join(c.proto.spec for c in at.get("plotly_chart"))
    assert "critical difference diagram (Nemenyi, alpha=0.05" in specs

    # Trends of a dataset: one line per registered model of iris, the same points.
    at.radio(key="trends-by").set_value("a dataset").run()
    at.selectbox(key="trends-dataset").set_value("iris").run()
    assert not at.exception
    summary = [f.value for f in at.dataframe if "kendall_tau" in f.value.columns]
    assert len(summary) == 1
    assert sorted(summary[0]["series"]) == sorted(r["series"] for r in trend["summary"])
    points = [f.value for f in at.dataframe if "run_best" in f.value.columns]
    assert len(points[0]) == len(trend["points"]) >= 2
    specs = " ".join(c.proto.spec for c in at.get("plotly_chart"))
    assert "best of each run" in specs


def _metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}: {[m.label for m in at.metric]}"
    return found[0]


def test_monitoring_shows_the_clusters_node_and_its_resources(
        trained: tuple[str, str]) -> None:
    url, _ = trained
    node = next(n for n in ray.nodes() if n["Alive"])
    with Client(url) as client:
        snap = views.collect_monitoring(client)
    summary = views.cluster_summary(snap.cluster)
    assert (summary.mode, summary.reachable, summary.nodes_alive) == ("cluster", True, 1)
    assert summary.resources["cpus"][1] == node["Resources"]["CPU"]
    nodes = views.nodes_frame(snap.cluster)
    assert nodes[["role", "address", "CPUs total"]].values.tolist() == [
        ["head", node["NodeManagerAddress"], node["Resources"]["CPU"]]]
    history = views.resource_history([], snap.cluster, now=snap.taken_at)
    assert history[0]["cpus_total"] == node["Resources"]["CPU"]

    at = _page("monitoring")
    assert _metric(at, "nodes alive") == "1"
    assert _metric(at, "nodes dead") == "0"
    table = [f.value for f in at.dataframe if "CPUs total" in f.value.columns][0]
    assert table["address"].tolist() == [node["NodeManagerAddress"]]
    assert table["state"].iloc[0] in {"RUNNING", "IDLE"}
    assert f"Ray cluster at {snap.cluster['address']}: 1 node(s) alive" in " ".join(
        c.value for c in at.caption)


def test_train_page_starts_a_run_on_two_tables_and_follows_it_to_its_leaderboard(
        tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One table uploaded, one example table added from the page; the models picked
    from the catalog, one parameter changed; 2 folds. The run trains on Ray."""
    import time

    from fleetlearn.registry import Registry

    iris = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    iris.to_csv(tmp_path / "flowers.csv", index=False)
    port = free_port()
    settings = ServeSettings(registry_url=f"sqlite:///{home}/registry.db",
                             artifact_dir=str(home / "artifacts"), data_dir=str(home / "data"),
                             port=port, refresh_s=0.2,
                             ray_address=ray.get_runtime_context().gcs_address)
    with serving(create_app(settings), port) as url, Client(url) as client:
        monkeypatch.setenv("FLEETLEARN_URL", url)
        monkeypatch.delenv("FLEETLEARN_API_KEY", raising=False)
        client.upload_dataset(tmp_path / "flowers.csv")  # AppTest cannot drive an upload
        at = _page("train")
        at.selectbox(key="train-example").set_value("wine.csv").run()
        at.button(key="train-example-add").click().run()
        assert at.multiselect(key="train-tables").value == ["flowers.csv", "wine.csv"]
        assert at.selectbox(key="train-target-flowers.csv").value == "species"
        assert at.selectbox(key="train-target-wine.csv").value == "cultivar"
        texts = " ".join(str(m.value) for m in at.markdown)
        assert "target species: classification (3 classes)" in texts
        assert "target cultivar: classification (3 classes)" in texts
        at.multiselect(key="train-models-classification").set_value(
            ["logistic_regression", "decision_tree"]).run()
        at.number_input(key="train-param-classification-decision_tree-max_depth"
                        ).set_value(2).run()
        at.number_input(key="train-folds").set_value(2).run()
        at.button(key="train-start").click().run()
        assert not at.exception
        assert not at.error, [e.value for e in at.error]
        run_id = at.session_state["train_run"]
        assert [d["models"] for d in at.session_state["train_sent"]["datasets"]] == [
            ["logistic_regression", {"name": "decision_tree", "params": {"max_depth": 2}}]] * 2
        # 2 tables x 2 models x (2 folds + test + final fit)
        assert any(s.value.startswith(f"Run {run_id} started: 16 units") for s in at.success)
        deadline = time.monotonic() + 300
        while not any(h.value == f"Run {run_id}: finished" for h in at.subheader):
            assert time.monotonic() < deadline, [h.value for h in at.subheader]
            assert not any(h.value.endswith(("failed", "interrupted")) for h in at.subheader)
            time.sleep(1.0)
            at.run()  # the fragment's refresh, as AppTest runs it: with the page
        datasets = [f.value for f in at.dataframe if "units total" in f.value.columns][0]
        assert sorted(datasets.values.tolist()) == [["flowers", 8, 8], ["wine", 8, 8]]
        best = [f.value for f in at.dataframe if "cv mean" in f.value.columns][0]
        board = client.leaderboard(run_id)
        leaders = {d: next(r for r in board if r["dataset"] == d) for d in ("flowers", "wine")}
        assert sorted(best[["dataset", "model"]].values.tolist()) == [
            [d, leaders[d]["model"]] for d in ("flowers", "wine")]
        assert best.set_index("dataset")["cv mean"].to_dict() == pytest.approx(
            {d: r["cv_mean"] for d, r in leaders.items()})
        assert "16 / 16 units" in at.get("progress")[0].proto.text
        tree = client.model_version("wine-decision_tree", 1)
    assert tree["params"]["max_depth"] == 2
    reg = Registry(f"sqlite:///{home}/registry.db", artifact_dir=home / "artifacts")
    try:
        assert reg.get_run(run_id).status == "finished"
        assert {mv.name for mv in reg.list_models(run_id=run_id)} == {
            "flowers-logistic_regression", "flowers-decision_tree",
            "wine-logistic_regression", "wine-decision_tree"}
    finally:
        reg.close()
