"""A training run as a user starts it (a ``fleetlearn train`` process), and what its
journal says: for the fault tests that compare a disturbed run with an undisturbed one.

Scores are compared exactly (``==`` on floats): the same seed, folds and unit seeds must
give the same numbers wherever and however often a unit ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.datasets import make_classification

from fleetlearn.registry import Registry
from fleetlearn.training import run_leaderboard

__all__ = ["BOARD_COLUMNS", "board", "finished", "fold_scores", "journal", "registry",
           "start_train", "write_table"]

TESTS_DIR = Path(__file__).resolve().parent
#: The leaderboard's score columns; timings differ from run to run, scores must not.
BOARD_COLUMNS = ["dataset", "model", "rank", "cv_mean", "cv_std", "test", "folds", "status"]


def write_table(path: Path, rows: int = 800, features: int = 12) -> Path:
    """A synthetic classification table (small: units take about a second)."""
    X, y = make_classification(n_samples=rows, n_features=features, n_informative=6,
                               random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(features)])
    frame["label"] = y
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def start_train(env: dict[str, str], home: Path, table: Path, models: list[str], *,
                address: str | None = None, log: Path, seed: int = 7,
                folds: int = 3) -> subprocess.Popen:
    """``fleetlearn train TABLE -t label -m ... --json`` in its own process.

    ``env`` is the driver's environment (a cluster's ``.env`` or a clean one); the
    driver gets ``home`` as its fleetlearn home, tests/ on its PYTHONPATH (for
    ``module.Class`` specs of tests/) and trusts those estimators. No ``--address``
    means embedded local Ray.
    """
    env = dict(env)
    if address is None:
        env.pop("RAY_ADDRESS", None)
    env.update(FLEETLEARN_HOME=str(home), PYTHONUNBUFFERED="1",
               FLEETLEARN_TRUSTED_TYPES="fault_models.GatedForestClassifier",
               PYTHONPATH=os.pathsep.join(p for p in (str(TESTS_DIR), env.get("PYTHONPATH"))
                                          if p))
    argv = [sys.executable, "-m", "fleetlearn", "train", str(table), "-t", "label",
            "--folds", str(folds), "--seed", str(seed), "--no-curves", "--json"]
    for model in models:
        argv += ["-m", model]
    if address is not None:
        argv += ["--address", address]
    with log.open("w") as out, log.with_suffix(".err").open("w") as err:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=str(home.parent))


def finished(driver: subprocess.Popen, log: Path, timeout: float = 600) -> dict[str, Any]:
    """Wait for a ``start_train`` driver; its ``--json`` result (fails with its stderr)."""
    code = driver.wait(timeout=timeout)
    err = log.with_suffix(".err").read_text()
    assert code == 0, f"fleetlearn train exited {code}:\n{err[-3000:]}"
    return json.loads(log.read_text())


def registry(home: Path) -> Registry:
    return Registry(f"sqlite:///{home}/registry.db", artifact_dir=home / "artifacts")


def journal(home: Path, run_id: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(model, unit): {"status", "error", **payload}}`` of a run (the newest by default)."""
    reg = registry(home)
    try:
        if run_id is None:
            runs = reg.list_runs(limit=1)
            if not runs:
                return {}
            run_id = runs[0].id
        return {(t.model_name, name): {"status": u.status, "error": u.error, **u.payload}
                for t in reg.list_trials(run_id) for name, u in t.units.items()}
    finally:
        reg.close()


def fold_scores(units: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """Every metric of every fold and of the held-out test part, by (model, unit)."""
    return {key: u.get("scores") or u.get("test_scores") for key, u in units.items()}


def board(home: Path, run_id: str) -> list[dict[str, Any]]:
    """The run's leaderboard (score columns only), as the registry computes it."""
    reg = registry(home)
    try:
        frame = run_leaderboard(reg, run_id)
    finally:
        reg.close()
    return frame[BOARD_COLUMNS].to_dict(orient="records")
