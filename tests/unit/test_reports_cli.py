"""`fleetlearn compare`, `runs show` marking and the HTML report, on a registry written by hand.

No Ray here: the run is journaled directly (fold scores and curves as training stores
them). The end-to-end report of a real training run is in tests/integration.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from fleetlearn.api import create_app
from fleetlearn.cli import main
from fleetlearn.errors import ConfigError, NotFoundError
from fleetlearn.registry import Registry
from fleetlearn.reports import (
    FIGURE_KINDS,
    SECTIONS,
    build_report,
    collect_run,
    figures_of_run,
    render_html,
    run_figures,
)
from fleetlearn.serving import ServeSettings
from fleetlearn.training import run_leaderboard

MODELS = {"strong": 0.90, "close": 0.895, "weak": 0.70}


@pytest.fixture
def run_id() -> str:
    """Three classification datasets, three models each plus one that failed everywhere."""
    reg = Registry()
    run = reg.create_run({"folds": 5, "test_size": 0.2, "metric": None, "datasets": []},
                         seed=0, name="hand")
    rng = np.random.default_rng(0)
    for name in ("d1", "d2", "d3"):
        ds = reg.add_dataset(run.id, fingerprint=name * 32, name=name,
                             source=f"/nowhere/{name}.csv", n_rows=100, n_features=2,
                             task="classification", target="y",
                             schema={"target": "y", "task": "classification", "classes": [0, 1],
                                     "columns": [{"name": "x1", "kind": "numeric",
                                                  "dtype": "float64", "nullable": False}],
                                     "dropped": {"id": "ID-like"}})
        for model, base in MODELS.items():
            trial = reg.ensure_trial(run.id, ds.id, model, {})
            for k in range(5):
                score = base + rng.normal(0, 0.01)
                reg.record_unit(trial.id, f"cv{k}", "ok",
                                {"scores": {"accuracy": score, "f1_macro": score - 0.01},
                                 "fit_time_s": 0.1 if model != "strong" else 1.0})
            reg.record_unit(trial.id, "curve", "ok", {"curve": {
                "kind": "learning_curve", "x_label": "training rows", "x": [8, 40, 80],
                "train": [1.0, 0.95, 0.93], "validation": [0.6, 0.8, base],
                "metric": "accuracy", "skipped": []}})
        failed = reg.ensure_trial(run.id, ds.id, "broken", {})
        reg.record_unit(failed.id, "cv0", "failed", {}, error="ValueError: bad input")
    reg.set_run_status(run.id, "finished")
    return run.id


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    # Rich wraps long titles at the terminal width: compare words, not line breaks.
    return code, " ".join(out.split()) if not args[-1] == "--json" else out, err


def test_leaderboard_keeps_its_columns_and_adds_the_significance(run_id: str) -> None:
    board = run_leaderboard(Registry(), run_id)
    assert list(board.columns[:11]) == ["rank", "dataset", "metric", "model", "cv_mean",
                                        "cv_std", "test", "fit_time_s", "predict_ms_per_row",
                                        "folds", "status"]
    assert list(board.columns[11:]) == ["ci_low", "ci_high", "p_value", "p_adjusted",
                                        "tied_with_best"]
    d1 = board[board["dataset"] == "d1"].set_index("model")
    assert bool(d1.loc["strong", "tied_with_best"])
    assert not bool(d1.loc["weak", "tied_with_best"])
    assert d1.loc["weak", "p_adjusted"] < 0.05
    assert d1.loc["close", "ci_low"] < d1.loc["close", "cv_mean"] < d1.loc["close", "ci_high"]
    assert d1["tied_with_best"].isna()["broken"]  # failed: nothing to test


def test_compare_prints_significance_and_ranks(capsys: pytest.CaptureFixture[str],
                                               run_id: str) -> None:
    code, out, _ = run_cli(capsys, "compare", run_id[:6])
    assert code == 0
    assert "d1: accuracy over 5 folds, each model vs the best" in out
    assert "Holm-adjusted p >= 0.05" in out
    assert "classification: average ranks over 3 datasets" in out
    assert "Nemenyi critical difference" in out
    assert re.search(r"strong\s+1\.000", out)


def test_compare_json(capsys: pytest.CaptureFixture[str], run_id: str) -> None:
    code, out, _ = run_cli(capsys, "compare", run_id, "--metric", "f1", "--alpha", "0.1",
                           "--json")
    assert code == 0
    data = json.loads(out)
    assert data["alpha"] == 0.1
    rows = {(r["dataset"], r["model"]): r for r in data["leaderboard"]}
    assert rows[("d2", "strong")]["metric"] == "f1_macro"
    assert rows[("d2", "strong")]["tied_with_best"] is True
    assert rows[("d2", "broken")]["tied_with_best"] is None
    across = data["across_datasets"]["classification"]
    assert across["average_ranks"]["strong"] <= across["average_ranks"]["weak"]
    assert across["datasets"] == ["d1", "d2", "d3"]
    # q(3 models, alpha 0.1) = 2.052 (Demšar's table): 2.052 * sqrt(3 * 4 / (6 * 3)).
    assert across["critical_difference"] == pytest.approx(1.6757, abs=1e-3)


def test_compare_errors_are_one_line(capsys: pytest.CaptureFixture[str], run_id: str) -> None:
    code, _, err = run_cli(capsys, "compare", "nosuchrun")
    assert code == 2
    assert err.startswith("error: No run with id 'nosuchrun'")
    code, _, err = run_cli(capsys, "compare", run_id, "--alpha", "5")
    assert (code, err.count("\n")) == (2, 1)
    assert "--alpha" in err
    code, _, err = run_cli(capsys, "compare", run_id, "--metric", "r2")
    assert code == 2
    assert "regression metric" in err


def test_runs_show_marks_the_models_tied_with_the_best(capsys: pytest.CaptureFixture[str],
                                                       run_id: str) -> None:
    code, out, _ = run_cli(capsys, "runs", "show", run_id)
    assert code == 0
    assert "tied" in out
    assert re.search(r"strong\s+0\.9\d+ ± 0\.\d+\s+yes", out)
    assert f"details: fleetlearn compare {run_id}" in out
    code, out, _ = run_cli(capsys, "runs", "show", run_id, "--json")
    board = json.loads(out)["leaderboard"]
    assert {r["model"]: r["tied_with_best"] for r in board if r["dataset"] == "d3"} == {
        "strong": True, "close": True, "weak": False, "broken": None}


def test_report_html_holds_every_section_offline(tmp_path: Path, run_id: str) -> None:
    path = build_report(Registry(), run_id, tmp_path / "out" / "report.html")
    text = path.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"<section id='{section}'>" in text
    # plotly.js inlined exactly once, and no script or style loaded from anywhere else
    # (the bundle mentions CDN URLs only for map tiles, which these figures never use).
    assert len(re.findall(r"\* plotly\.js v\d", text)) == 1
    assert re.findall(r"<(?:script|link)[^>]+(?:src|href)=", text) == []
    assert "https://" not in text.replace(get_plotlyjs(), "")
    assert "d1: accuracy per fold" in text
    assert "learning curve (accuracy)" in text
    assert "critical difference diagram" in text
    # The tables are gone, so the test-split figures are skipped with a note.
    assert "No final model was registered" in text
    assert "ValueError: bad input" in text  # the failed unit is listed


def test_report_figures_and_notes(run_id: str) -> None:
    data = collect_run(Registry(), run_id)
    keys = [f.key for f in run_figures(data)]
    assert keys[0] == "cd-classification"
    assert {"fold-scores-d1", "cost-quality-d3", "curve-d2-weak"} <= set(keys)
    assert not any(k.startswith(("roc", "confusion", "importance")) for k in keys)
    assert all(d.test is None for d in data.datasets)
    html = render_html(data)
    assert html.startswith("<!DOCTYPE html>")


def test_figures_of_run_name_their_kind_dataset_and_model(run_id: str) -> None:
    reg = Registry()
    figures = figures_of_run(reg, run_id)
    assert [f.key for f in figures] == [f.key for f in run_figures(collect_run(reg, run_id))]
    assert (figures[0].kind, figures[0].dataset) == ("critical-difference", None)
    for name in ("d1", "d2", "d3"):
        assert {f.kind for f in figures if f.dataset == name} == {
            "fold-scores", "learning-curve", "cost-quality"}
    assert {f.kind for f in figures} <= set(FIGURE_KINDS)
    curves = figures_of_run(reg, run_id, dataset="d2", kind="learning-curve")
    assert sorted(f.model for f in curves) == sorted(MODELS)
    assert all(f.title == f"d2 / {f.model}: learning curve (accuracy), training rows vs "
               "held-out test rows" for f in curves)
    assert figures_of_run(reg, run_id, kind="roc") == []  # no final model: no test split
    with pytest.raises(NotFoundError, match="no dataset 'nope'; its datasets: d1, d2, d3"):
        figures_of_run(reg, run_id, dataset="nope")
    with pytest.raises(ConfigError, match="The 'kind' parameter must be one of"):
        figures_of_run(reg, run_id, kind="pie")


def test_figures_route_answers_plotly_json_and_json_errors(run_id: str) -> None:
    from typing import get_args

    from fastapi.testclient import TestClient

    from fleetlearn.api.routes.reports import FigureKind

    assert get_args(FigureKind) == FIGURE_KINDS  # the route offers every kind, no more
    with TestClient(create_app(ServeSettings())) as http:
        r = http.get(f"/v1/runs/{run_id[:6]}/figures", params={"dataset": "d1"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["run_id"] == run_id
        assert body["count"] == len(body["figures"]) == 5  # folds, 3 learning curves, cost
        folds = next(f for f in body["figures"] if f["kind"] == "fold-scores")
        assert folds["title"] == "d1: accuracy per fold (each point is one fold)"
        assert [t["name"].split(" (")[0] for t in folds["figure"]["data"]] == [
            "strong", "close", "weak"]
        # One point per fold (Plotly JSON writes a float array as base64 "bdata").
        points = [np.frombuffer(base64.b64decode(t["y"]["bdata"]), t["y"]["dtype"])
                  if isinstance(t["y"], dict) else t["y"] for t in folds["figure"]["data"]]
        assert [len(p) for p in points] == [5, 5, 5]
        missing = http.get("/v1/runs/000000000000/figures")
        assert missing.status_code == 404
        assert missing.json()["error"] == "NotFoundError"
        no_dataset = http.get(f"/v1/runs/{run_id}/figures", params={"dataset": "d9"})
        assert no_dataset.status_code == 404
        assert "no dataset 'd9'" in no_dataset.json()["detail"]
        bad = http.get(f"/v1/runs/{run_id}/figures", params={"kind": "pie"})
        assert bad.status_code == 422
        assert bad.json()["error"] == "ValidationError"


def test_report_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, run_id: str) -> None:
    windows = [{"t": "2024-05-01T12:00:00Z", "model": "d1-strong", "version": 1, "count": 10,
                "errors": 0, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "rps": 1.0,
                "cpu_percent": 5.0, "rss_bytes": 2**27}]
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"series": windows}))
    out_file = tmp_path / "r.html"
    code, out, err = run_cli(capsys, "report", run_id, "-o", str(out_file), "--inference",
                             str(stats))
    assert code == 0, err
    assert f"report of run {run_id} written to" in out
    assert "No final model was registered" in err  # notes go to stderr
    text = out_file.read_text(encoding="utf-8")
    assert "inference statistics over time" in text


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    ("{not json", "is not JSON"),
    ('{"series": 3}', "must hold a list of windows"),
    ('[{"model": "m"}]', "window 0 has no 't'"),
])
def test_report_cli_bad_inference_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       run_id: str, content: str | None, message: str) -> None:
    stats = tmp_path / "stats.json"
    if content is not None:
        stats.write_text(content)
    code, _, err = run_cli(capsys, "report", run_id, "-o", str(tmp_path / "r.html"),
                           "--inference", str(stats))
    assert code == 2
    assert message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_report_cli_output_must_be_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          run_id: str) -> None:
    code, _, err = run_cli(capsys, "report", run_id, "-o", str(tmp_path))
    assert code == 2
    assert "is a folder" in err


def test_png_without_kaleido_fails_first_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--png` without the png extra: one line with the install hint, before any work."""
    import sys

    from fleetlearn.cli import main

    monkeypatch.setitem(sys.modules, "kaleido", None)  # import kaleido -> ImportError
    out = tmp_path / "report.html"
    code = main(["report", "no-such-run", "-o", str(out), "--png", str(tmp_path / "png"),
                 "--registry", f"sqlite:///{tmp_path}/registry.db"])
    assert code == 2
    err = capsys.readouterr().err
    assert "pip install 'fleetlearn[png]'" in err
    assert err.count("\n") == 1
    assert not out.exists()
    assert not (tmp_path / "png").exists()
