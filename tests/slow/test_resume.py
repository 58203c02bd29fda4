"""A driver killed mid-run (kill -9 or Ctrl-C) resumes from its journal.

Real subprocess drivers, each with its own embedded Ray, against one SQLite registry.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import make_classification

from fleetlearn.registry import Registry

MODELS = ["random_forest:n_estimators=80", "extra_trees:n_estimators=80",
          "logistic_regression", "knn", "hist_gradient_boosting:max_iter=60"]


@pytest.fixture
def table(tmp_path: Path) -> Path:
    X, y = make_classification(n_samples=3000, n_features=20, n_informative=8, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    frame["label"] = y
    path = tmp_path / "synthetic.parquet"
    frame.to_parquet(path, index=False)
    return path


def fleetlearn_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fleetlearn", *args]


def train_args(table: Path, *extra: str) -> list[str]:
    args = ["train", str(table), "-t", "label", "--seed", "3", *(extra or ("--quiet",))]
    for m in MODELS:
        args += ["-m", m]
    return args


def journaled_units(env: dict[str, str]) -> tuple[str | None, int]:
    db = Path(env["FLEETLEARN_HOME"]) / "registry.db"
    if not db.exists():
        return None, 0
    try:
        reg = Registry()
        runs = reg.list_runs()
        if not runs:
            return None, 0
        trials = reg.list_trials(runs[0].id)
        return runs[0].id, sum(len(t.units) for t in trials)
    except Exception:  # the driver may be creating the schema right now
        return None, 0


def start_and_stop(table: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                   sig: int, after_units: int) -> tuple[str, int, subprocess.CompletedProcess]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # A shell that starts jobs in the background hands them SIGINT ignored, and Python
    # then never raises KeyboardInterrupt: give the driver the default, as a terminal would.
    proc = subprocess.Popen(fleetlearn_cmd(*train_args(table)), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    run_id, done = None, 0
    while time.monotonic() < deadline and proc.poll() is None:
        run_id, done = journaled_units(env)
        if done >= after_units:
            break
        time.sleep(0.3)
    assert proc.poll() is None, f"driver ended early: {proc.communicate()}"
    assert run_id is not None
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return run_id, done, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def resume(run_id: str, env: dict[str, str]) -> dict:
    done = subprocess.run(fleetlearn_cmd("train", "--resume", run_id, "--json"), env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def board_of(result: dict) -> list[tuple]:
    return sorted((r["model"], r["rank"], round(r["cv_mean"], 12), round(r["test"], 12))
                  for r in result["leaderboard"])


def units_snapshot(run_id: str) -> dict[tuple[str, str], float]:
    reg = Registry()
    return {(t.model_name, name): u.payload["started_at"]
            for t in reg.list_trials(run_id) for name, u in t.units.items()}


def test_kill_9_then_resume_runs_only_what_is_missing(table: Path, isolated_env: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, _, killed = start_and_stop(table, isolated_env, monkeypatch, signal.SIGKILL, 10)
    assert killed.returncode == -signal.SIGKILL
    reg = Registry()
    assert reg.get_run(run_id).status == "running"  # nobody could mark it
    before = units_snapshot(run_id)
    total = len(MODELS) * 6 + 4  # 5 folds + final each, curves for the 4 without stages
    assert 10 <= len(before) < total

    resumed = resume(run_id, isolated_env)
    after = units_snapshot(run_id)
    assert len(after) == total
    # Units journaled before the kill were not run again.
    assert {k: after[k] for k in before} == before
    assert Registry().get_run(run_id).status == "finished"
    # One version per model: no final fit registered twice.
    assert sorted(v.name for v in Registry().list_models(run_id=run_id)) == sorted(
        f"synthetic-{m.split(':')[0]}" for m in MODELS)

    # Same leaderboard as a run that never stopped.
    fresh = subprocess.run(fleetlearn_cmd(*train_args(table, "--json")),
                           env=isolated_env, capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr
    assert board_of(resumed) == board_of(json.loads(fresh.stdout))


def test_ctrl_c_marks_the_run_interrupted_and_says_how_to_resume(
        table: Path, isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, _, stopped = start_and_stop(table, isolated_env, monkeypatch, signal.SIGINT, 4)
    assert stopped.returncode == 130
    assert f"fleetlearn train --resume {run_id}" in stopped.stderr
    assert Registry().get_run(run_id).status == "interrupted"
    resumed = resume(run_id, isolated_env)
    assert resumed["run_id"] == run_id
    assert all(r["status"] == "ok" for r in resumed["leaderboard"])
    assert Registry().get_run(run_id).status == "finished"
