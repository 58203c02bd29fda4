"""The read models of fleetlearn.insights, on a small run journaled through the real store.

No Ray here: the run is computed the way training computes it (the same tables read by
``load_dataset``, the same splits and seeds, real scikit-learn fits and scores) and
journaled unit by unit with the registry's own API, with one model failing everywhere.
The API's routes answer from the same registry over a real app: each answers its read
model's ``to_dict()``, which is checked here route by route.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import fleetlearn.insights as insights
from fleetlearn.api import create_app
from fleetlearn.cli import main
from fleetlearn.data import load_dataset
from fleetlearn.errors import ConfigError, DataError, NotFoundError
from fleetlearn.evaluation import score_predictions
from fleetlearn.insights import (
    ERROR_LINE_CHARS,
    dataset_versions,
    first_line,
    held_out_rows,
    run_board,
    run_comparison,
    run_detail,
    run_failures,
    run_inference,
    run_progress,
    run_summaries,
    score_history,
)
from fleetlearn.registry import Registry
from fleetlearn.reports import collect_run, render_report
from fleetlearn.serving import ServeSettings
from fleetlearn.training import make_splits, split_seed

FOLDS = 3
MODELS = {
    "logistic_regression": lambda: make_pipeline(StandardScaler(),
                                                 LogisticRegression(max_iter=500)),
    "decision_tree": lambda: DecisionTreeClassifier(max_depth=3, random_state=0),
}
#: A first line longer than every old cut (200, 300, 500) with a traceback below it.
LONG_ERROR = ("ValueError: " + "the input had a problem; " * 40).strip() + \
    "\nTraceback (most recent call last):\n  File 'x.py', line 1"


def _tables(folder: Path) -> dict[str, Path]:
    iris = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    paths = {"iris": folder / "iris.csv", "wine": folder / "wine.csv"}
    iris.to_csv(paths["iris"], index=False)
    load_wine(as_frame=True).frame.to_csv(paths["wine"], index=False)
    return paths


def journal_run(reg: Registry, tables: dict[str, Path], seed: int = 0,
                failing: bool = True) -> str:
    """A finished run as training journals it: CV folds, final fit (registered), curve."""
    run = reg.create_run({"folds": FOLDS, "test_size": 0.2, "curves": True, "final_fit": True,
                          "metric": None, "datasets": []}, seed=seed, name=f"small-{seed}")
    targets = {"iris": "species", "wine": "target"}
    for name, path in tables.items():
        data = load_dataset(path, targets[name])
        rec = reg.add_dataset(run.id, fingerprint=data.fingerprint, name=name,
                              source=str(path), n_rows=len(data.y),
                              n_features=data.X.shape[1], task=data.task,
                              target=targets[name], schema=data.schema.to_dict())
        y = np.asarray(data.y)
        splits = make_splits(y, data.task, FOLDS, 0.2, split_seed(run.seed, data.fingerprint))
        for model, build in MODELS.items():
            trial = reg.ensure_trial(run.id, rec.id, model, {"name": model, "iterative": None})
            for k, (fit_rows, score_rows) in enumerate(splits.folds):
                est = build().fit(data.X.iloc[fit_rows], y[fit_rows])
                scores, _ = score_predictions(est, data.X.iloc[score_rows], y[score_rows],
                                              "classification")
                reg.record_unit(trial.id, f"cv{k}", "ok",
                                {"scores": scores, "fit_time_s": 0.01 * (k + 1),
                                 "predict_time_per_row_s": 1e-5})
            est = build().fit(data.X.iloc[splits.train], y[splits.train])
            test, _ = score_predictions(est, data.X.iloc[splits.test], y[splits.test],
                                        "classification")
            reg.register_model(
                f"{name}-{model}", estimator=est, run_id=run.id, trial_id=trial.id,
                dataset_id=rec.id, metrics={"test": test, "primary_metric": "accuracy"},
                params={}, input_schema=data.schema.to_dict(),
                tags={"dataset": name, "model": model, "task": data.task, "run": run.id},
                journal_unit={"trial_id": trial.id, "unit": "final", "status": "ok",
                              "payload": {"test_scores": test,
                                          "predict_time_per_row_s": 1e-5},
                              "duration_s": 0.1})
            reg.record_unit(trial.id, "curve", "ok", {"curve": {
                "kind": "learning_curve", "x_label": "training rows", "x": [10, 50, 100],
                "train": [1.0, 0.97, 0.96], "validation": [0.7, 0.85, test["accuracy"]],
                "metric": "accuracy", "skipped": []}})
            reg.set_trial_status(trial.id, "ok")
        if failing:
            broken = reg.ensure_trial(run.id, rec.id, "broken", {"name": "broken",
                                                                  "iterative": None})
            reg.record_unit(broken.id, "cv0", "failed", {"traceback": "..."}, error=LONG_ERROR)
    reg.set_run_status(run.id, "finished")
    return run.id


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Registry, TestClient, str, dict[str, Path], str]]:
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home}/registry.db"
    reg = Registry(url, artifact_dir=home / "artifacts")
    tables = _tables(tmp_path)
    run_id = journal_run(reg, tables)
    settings = ServeSettings(registry_url=url, artifact_dir=str(home / "artifacts"),
                             data_dir=str(tmp_path))
    with TestClient(create_app(settings)) as client:
        yield reg, client, run_id, tables, url
    reg.close()


def same(found: Any, expected: Any, path: str = "") -> None:
    """Equal JSON, numbers within 1e-9 (the API wrote 10 decimals; read models keep all)."""
    if isinstance(expected, dict):
        assert isinstance(found, dict), path
        # Key order is not compared: a response model puts its declared fields first.
        assert sorted(found) == sorted(expected), f"{path}: {sorted(found)} != {sorted(expected)}"
        for key in expected:
            same(found[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(found, list), path
        assert len(found) == len(expected), path
        for i, (f, e) in enumerate(zip(found, expected, strict=True)):
            same(f, e, f"{path}[{i}]")
    elif isinstance(expected, float) and not isinstance(found, bool):
        assert found == pytest.approx(expected, rel=1e-9, abs=1e-9), path
    else:
        assert found == expected, path
        assert type(found) is type(expected) or {type(found), type(expected)} <= {int, float}, \
            f"{path}: {type(found).__name__} != {type(expected).__name__}"


def roundtrip(value: Any) -> Any:
    """What a client receives: the value through JSON."""
    return json.loads(json.dumps(value))


# ----------------------------------------------------------------- one error-line rule


def test_first_line_takes_the_first_non_blank_line_and_cuts_it_to_the_limit() -> None:
    assert first_line("\n  ValueError: boom  \nTraceback ...") == "ValueError: boom"
    assert first_line(None) == first_line("") == first_line("\n \n") == ""
    cut = first_line("x" * 1000)
    assert len(cut) == ERROR_LINE_CHARS
    assert cut == "x" * (ERROR_LINE_CHARS - 1) + "…"
    assert first_line("y" * ERROR_LINE_CHARS) == "y" * ERROR_LINE_CHARS  # not cut at the limit
    assert first_line("abcdef", limit=4) == "abc…"
    with pytest.raises(ValueError, match="'limit' parameter must be an int in the range"):
        first_line("x", limit=0)


def test_the_three_failure_lists_show_the_same_error_text(
        world: tuple[Registry, TestClient, str, dict[str, Path], str],
        capsys: pytest.CaptureFixture[str]) -> None:
    """`runs show` (cut at 200), the API's progress (500) and the report (300), before:
    now one rule (``first_line``), read from each site itself (the CLI, the route, the
    report)."""
    reg, client, run_id, _, url = world
    expected = first_line(LONG_ERROR)
    assert 200 < len(expected) <= ERROR_LINE_CHARS < len(LONG_ERROR.splitlines()[0])

    assert main(["runs", "show", run_id, "--registry", url, "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["failures"]
    api = client.get(f"/v1/runs/{run_id}").json()["progress"]["failures"]
    assert api == run_progress(reg, run_id).to_dict()["failures"]
    report = collect_run(reg, run_id, test_split=False).failures

    texts = {"cli": [f["error"] for f in cli], "api": [f["error"] for f in api],
             "report": [f["error"] for f in report]}
    assert texts == {where: [expected, expected] for where in texts}  # iris and wine
    assert [(f["dataset"], f["model"], f["unit"]) for f in cli] == \
        [(f["dataset"], f["model"], f["unit"]) for f in api] == \
        [(f["dataset"], f["model"], f["unit"]) for f in report] == \
        [("iris", "broken", "cv0"), ("wine", "broken", "cv0")]
    assert [f.to_dict() for f in run_failures(reg, run_id)] == cli  # status included


def test_a_failed_unit_without_error_text_says_so(tmp_path: Path) -> None:
    reg = Registry()
    run = reg.create_run({"folds": 2}, seed=0)
    ds = reg.add_dataset(run.id, fingerprint="a" * 64, name="t", source=None, n_rows=10,
                         n_features=1, task="regression", target="y", schema={})
    trial = reg.ensure_trial(run.id, ds.id, "ridge", {})
    reg.record_unit(trial.id, "cv1", "failed", {}, error=None)
    assert [f.to_dict() for f in run_failures(reg, run.id)] == [
        {"dataset": "t", "model": "ridge", "unit": "cv1", "status": "failed",
         "error": "unknown error"}]


# ------------------------------------------------------------------- runs and progress


def test_run_progress_counts_every_planned_unit_of_a_finished_run(
        world: tuple[Registry, TestClient, str, dict[str, Path], str]) -> None:
    reg, _, run_id, _, _ = world
    progress = run_progress(reg, run_id[:6])  # a unique prefix is enough
    per_trial = FOLDS + 2  # folds, final, curve (no per-iteration metric)
    # Per dataset: 2 models fully done, "broken" 1 unit of 5.
    assert progress.datasets == {
        "iris": insights.DatasetProgress(units_done=2 * per_trial + 1, units_total=3 * per_trial),
        "wine": insights.DatasetProgress(units_done=2 * per_trial + 1, units_total=3 * per_trial)}
    assert (progress.units_done, progress.units_total) == (4 * per_trial + 2, 6 * per_trial)
    assert (progress.trials_done, progress.trials_total) == (4, 6)
    assert progress.fraction == round(progress.units_done / progress.units_total, 4)
    assert [f.model for f in progress.failures] == ["broken", "broken"]


def test_run_detail_is_what_the_run_route_answers(
        world: tuple[Registry, TestClient, str, dict[str, Path], str]) -> None:
    reg, client, run_id, _, _ = world
    route = client.get(f"/v1/runs/{run_id}").json()
    assert route.pop("process") is None  # the launcher's part, which the API adds
    detail = run_detail(reg, run_id).to_dict()
    assert list(detail) == ["id", "name", "status", "error", "seed", "created_at",
                            "started_at", "finished_at", "datasets", "progress", "config"]
    assert list(detail["progress"]) == ["units_done", "units_total", "trials_done",
                                        "trials_total", "fraction", "datasets", "failures",
                                        "retried"]
    assert detail["datasets"][0] == {"name": "iris", "rows": 150, "features": 4,
                                     "task": "classification", "target": "species"}
    same(roundtrip(detail), route)
    run = reg.get_run(run_id)
    assert run_detail(reg, run_id).seconds == (run.finished_at - run.started_at).total_seconds()


def test_run_summaries_are_the_rows_of_the_runs_route_and_the_cli_table(
        world: tuple[Registry, TestClient, str, dict[str, Path], str],
        capsys: pytest.CaptureFixture[str]) -> None:
    reg, client, run_id, tables, url = world
    time.sleep(0.01)  # a later created_at: newest first is well defined
    second = journal_run(reg, {"iris": tables["iris"]}, seed=1, failing=False)
    summaries = run_summaries(reg, limit=10)
    assert [s.id for s in summaries] == [second, run_id]
    assert summaries[1].datasets == ("iris", "wine")
    route = client.get("/v1/runs").json()["data"]
    assert [s.to_dict() for s in summaries] == route
    assert main(["runs", "list", "--registry", url]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert run_id in out
    assert second in out
    assert f"│ {summaries[1].seconds:.1f} │ iris," in out


def test_an_unknown_run_is_not_found_by_every_read_model(
        world: tuple[Registry, TestClient, str, dict[str, Path], str]) -> None:
    reg = world[0]
    for read in (run_progress, run_detail, run_failures, run_board, run_comparison,
                 run_inference):
        with pytest.raises(NotFoundError, match="0123456789ab"):
            read(reg, "0123456789ab")


# ------------------------------------------------------------ leaderboard and compare


def test_run_board_is_what_the_leaderboard_route_answers(
        world: tuple[Registry, TestClient, str, dict[str, Path], str]) -> None:
    reg, client, run_id, _, _ = world
    board = run_board(reg, run_id)
    body = board.to_dict()
    assert list(body) == ["run_id", "status", "rows"]
    assert list(body["rows"][0]) == [
        "rank", "dataset", "metric", "model", "cv_mean", "cv_std", "test", "fit_time_s",
        "predict_ms_per_row", "folds", "status", "ci_low", "ci_high", "p_value",
        "p_adjusted", "tied_with_best"]
    same(roundtrip(body), client.get(f"/v1/runs/{run_id}/leaderboard").json())
    rows = {(r["dataset"], r["model"]): r for r in body["rows"]}
    broken = rows[("iris", "broken")]
    assert broken["status"] == "failed"
    assert broken["cv_mean"] is None  # NaN -> None
    assert broken["tied_with_best"] is None  # NA: nothing to test
    best = rows[next(k for k, r in rows.items() if r["rank"] == 1 and k[0] == "iris")]
    assert best["tied_with_best"] is True
    # The scores are the journal's: the mean of the recorded fold accuracies.
    trial = next(t for t in reg.list_trials(run_id) if t.model_name == "decision_tree"
                 and t.dataset_id == reg.run_datasets(run_id)[0].id)
    folds = [trial.units[f"cv{k}"].payload["scores"]["accuracy"] for k in range(FOLDS)]
    assert rows[("iris", "decision_tree")]["cv_mean"] == pytest.approx(np.mean(folds))
    by_f1 = run_board(reg, run_id, metric="f1_macro").to_dict()
    same(roundtrip(by_f1), client.get(f"/v1/runs/{run_id}/leaderboard",
                                      params={"metric": "f1_macro"}).json())


def test_run_comparison_is_what_the_compare_route_answers(
        world: tuple[Registry, TestClient, str, dict[str, Path], str],
        capsys: pytest.CaptureFixture[str]) -> None:
    reg, client, run_id, _, url = world
    comparison = run_comparison(reg, run_id, alpha=0.1)
    body = comparison.to_dict()
    assert list(body) == ["run_id", "alpha", "leaderboard", "across_datasets", "notes"]
    across = body["across_datasets"]["classification"]
    assert across["datasets"] == ["iris", "wine"]
    assert sorted(across["models"]) == ["decision_tree", "logistic_regression"]
    assert set(across) >= {"average_ranks", "friedman", "critical_difference", "groups"}
    same(roundtrip(body), client.get(f"/v1/runs/{run_id}/compare",
                                     params={"alpha": 0.1}).json())
    # The CLI's --json is the same, with the run record in place of its id.
    assert main(["compare", run_id, "--alpha", "0.1", "--registry", url, "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli.pop("run")["id"] == body.pop("run_id")
    same(cli, roundtrip(body))
    with pytest.raises(ConfigError, match=r"'alpha' parameter must be a float in the range"):
        run_comparison(reg, run_id, alpha=1.5)


# ----------------------------------------------------------------------- history


def test_score_history_is_what_the_trends_route_answers(
        world: tuple[Registry, TestClient, str, dict[str, Path], str]) -> None:
    reg, client, run_id, tables, _ = world
    journal_run(reg, {"iris": tables["iris"]}, seed=1, failing=False)
    for query in ({"model": "iris-decision_tree"}, {"model": "iris-decision_tree:1"},
                  {"dataset": "iris"}, {"dataset": "iris", "metric": "f1_macro"}):
        history = score_history(reg, **query).to_dict()
        assert list(history) == ["by", "metric", "points", "summary"]
        same(roundtrip(history), client.get("/v1/trends", params=query).json())
    points = score_history(reg, dataset="iris").to_dict()["points"]
    assert len(points) == 4  # 2 models x 2 runs
    assert list(points[0]) == ["t", "run", "dataset", "model", "version", "metric", "score",
                               "run_best", "change"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z?", points[0]["t"])
    with pytest.raises(ConfigError, match="exactly one of"):
        score_history(reg)
    with pytest.raises(NotFoundError, match="No model was trained on a dataset named 'irsi'"):
        score_history(reg, dataset="irsi")
    with pytest.raises(NotFoundError):
        score_history(reg, model="iris-decision_tre")


def test_dataset_versions_follow_one_table_across_runs_and_leave_a_changed_one_out(
        world: tuple[Registry, TestClient, str, dict[str, Path], str], tmp_path: Path) -> None:
    reg, _, run_id, tables, _ = world
    second = journal_run(reg, {"iris": tables["iris"]}, seed=1, failing=False)
    fingerprint = reg.run_datasets(run_id)[0].fingerprint
    found = [(v.name, v.version, v.run_id) for v in dataset_versions(reg, fingerprint)]
    assert found == [("iris-decision_tree", 1, run_id), ("iris-decision_tree", 2, second),
                     ("iris-logistic_regression", 1, run_id),
                     ("iris-logistic_regression", 2, second)]
    # A changed table under the same name is another dataset: its versions stay out of
    # the first table's history.
    changed = tmp_path / "changed" / "iris.csv"
    changed.parent.mkdir()
    pd.read_csv(tables["iris"]).iloc[:120].to_csv(changed, index=False)
    journal_run(reg, {"iris": changed}, seed=2, failing=False)
    assert [(v.name, v.version) for v in dataset_versions(reg, fingerprint)] == \
        [(n, v) for n, v, _ in found]
    # By name: the table each model's latest version was trained on (the changed one).
    assert [(v.name, v.version) for v in dataset_versions(reg, "iris")] == \
        [("iris-decision_tree", 3), ("iris-logistic_regression", 3)]


# --------------------------------------------------------------------- the test split


def test_held_out_rows_are_the_rows_the_final_models_were_scored_on(
        world: tuple[Registry, TestClient, str, dict[str, Path], str]) -> None:
    reg, _, run_id, _, _ = world
    rows = held_out_rows(reg, run_id, "wine")
    assert rows.record.name == "wine"
    assert len(rows.y) == len(rows.X) == math.ceil(0.2 * 178)
    for mv in reg.list_models(run_id=run_id, dataset="wine"):
        model = reg.load_model(mv.name, version=mv.version)
        score = score_predictions(model, rows.X, rows.y, "classification")[0]["accuracy"]
        assert score == pytest.approx(mv.metrics["test"]["accuracy"])
    by_fingerprint = held_out_rows(reg, run_id, rows.record.fingerprint)
    assert by_fingerprint.splits.test.tolist() == rows.splits.test.tolist()


def test_held_out_rows_say_why_they_cannot_be_recomputed(
        world: tuple[Registry, TestClient, str, dict[str, Path], str]) -> None:
    reg, _, run_id, tables, _ = world
    with pytest.raises(NotFoundError, match=r"no dataset 'wnie'.*Did you mean 'wine'\?"):
        held_out_rows(reg, run_id, "wnie")
    pd.read_csv(tables["wine"]).iloc[:100].to_csv(tables["wine"], index=False)
    with pytest.raises(DataError, match=r"wine.csv changed since the run \(fingerprint"):
        held_out_rows(reg, run_id, "wine")
    tables["iris"].unlink()
    with pytest.raises(DataError, match=r"iris.csv could not be read again"):
        held_out_rows(reg, run_id, "iris")
    run = reg.create_run({"folds": 2}, seed=0)
    reg.add_dataset(run.id, fingerprint="b" * 64, name="frame", source="<frame>", n_rows=10,
                    n_features=1, task="regression", target="y", schema={})
    with pytest.raises(DataError, match="given in memory"):
        held_out_rows(reg, run.id, "frame")


# ----------------------------------------------------------------- inference and report


def test_run_inference_reads_only_the_runs_own_versions(
        world: tuple[Registry, TestClient, str, dict[str, Path], str]) -> None:
    reg, _, run_id, tables, _ = world
    assert run_inference(reg, run_id) == []
    other = journal_run(reg, {"iris": tables["iris"]}, seed=1, failing=False)
    mine = reg.list_models(run_id=run_id)[0]
    theirs = reg.list_models(run_id=other)[0]
    start = pd.Timestamp("2026-01-01T00:00:00Z").to_pydatetime()
    reg.record_inference_stats([
        {"replica": "r1", "model": mv.name, "version": mv.version, "window_start": start,
         "window_s": 10.0, "requests": n, "errors": 0, "rows": n, "latency_sum_ms": 5.0 * n,
         "histogram": {"10": n}, "process": {}}
        for mv, n in ((mine, 4), (theirs, 7))])
    points = run_inference(reg, run_id)
    assert [(p["model"], p["version"], p["count"]) for p in points] == \
        [(mine.name, mine.version, 4)]


def _without_timestamp(html: str) -> str:
    return re.sub(r"Report generated [^<]* by fleetlearn", "", html)


def test_render_report_is_the_html_the_report_command_writes(
        world: tuple[Registry, TestClient, str, dict[str, Path], str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    reg, _, run_id, _, url = world
    html = render_report(reg, run_id, test_split=False)
    assert html.startswith("<!DOCTYPE html>")
    assert first_line(LONG_ERROR) in html.replace("&#x27;", "'")  # the failed units
    out = tmp_path / "report.html"
    assert main(["report", run_id, "-o", str(out), "--no-test-split", "--registry", url]) == 0
    capsys.readouterr()
    assert _without_timestamp(html) == _without_timestamp(out.read_text(encoding="utf-8"))
    with pytest.raises(ConfigError, match="'alpha' parameter"):
        render_report(reg, run_id, alpha=0)
    with pytest.raises(NotFoundError):
        render_report(reg, "0123456789ab")


def test_every_public_read_model_is_exported_and_documented() -> None:
    for name in insights.__all__:
        obj = getattr(insights, name)
        if callable(obj) and not isinstance(obj, type):
            assert "Examples" in (obj.__doc__ or ""), f"{name} has no example"
        elif isinstance(obj, type):
            assert hasattr(obj, "to_dict") or name == "HeldOutRows", name


def test_units_run_again_are_shown_by_the_cli_and_the_api(
        world: tuple[Registry, TestClient, str, dict[str, Path], str],
        capsys: pytest.CaptureFixture[str]) -> None:
    """A unit whose node was lost (attempts 2, journaled as training journals it) is
    listed by ``run_retries``, ``runs show`` (text and JSON) and the run route."""
    reg, client, run_id, _, url = world
    assert insights.run_retries(reg, run_id) == ()
    trial = next(t for t in reg.list_trials(run_id) if t.model_name == "decision_tree")
    payload = dict(trial.units["cv1"].payload, attempts=2, node="b" * 56,
                   node_ip="127.0.0.3",
                   failed_attempts=[{"attempt": 1, "node": "a" * 56, "node_ip": "127.0.0.2",
                                     "error": "NODE_DIED"}])
    reg.record_unit(trial.id, "cv1", "ok", payload)

    [retry] = insights.run_retries(reg, run_id)
    expected = {"dataset": "iris", "model": "decision_tree", "unit": "cv1", "status": "ok",
                "attempts": 2, "node": "b" * 56, "node_ip": "127.0.0.3",
                "failed_attempts": payload["failed_attempts"]}
    assert retry.to_dict() == expected
    assert run_detail(reg, run_id).progress.retried == (retry,)
    assert client.get(f"/v1/runs/{run_id}").json()["progress"]["retried"] == [expected]
    assert main(["runs", "show", run_id, "--registry", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["retried"] == [expected]
    assert main(["runs", "show", run_id, "--registry", url]) == 0
    text = capsys.readouterr().out
    assert "1 unit ran again after a lost worker or node" in text
    assert "127.0.0.3" in text  # finished there
    assert "127.0.0.2" in text  # lost there
