"""The run driver's bookkeeping, without Ray: what it records, and what a resumed run
still has to train.

``_RunDriver.record`` writes the run, its datasets and trials to a real SQLite
registry and plans the units; submitting them (``run``) is the integration tests'.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fleetlearn.errors import ConfigError
from fleetlearn.registry import Registry
from fleetlearn.training import DatasetOptions, ProgressEvent, RunOptions, UnitKey, prepare
from fleetlearn.training._execute import _RunDriver


@pytest.fixture
def table(tmp_path: Path) -> Path:
    frame = pd.DataFrame({"x": range(40), "z": [i % 7 for i in range(40)],
                          "label": ["a", "b"] * 20})
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    return path


def _options(table: Path) -> RunOptions:
    return RunOptions(datasets=[DatasetOptions(str(table), "label")], folds=2,
                      models=["naive_bayes", "knn"], curves=False)


def test_a_new_run_records_everything_and_plans_every_unit(table: Path) -> None:
    reg, options = Registry(), _options(table)
    events: list[ProgressEvent] = []
    driver = _RunDriver.record(options, prepare(options), reg, events.append, resume=None,
                               new_id="0123456789ab")
    assert driver.run_id == "0123456789ab"
    assert reg.get_run(driver.run_id).status == "running"
    assert reg.get_run(driver.run_id).config == options.to_dict()
    assert [d.name for d in reg.run_datasets(driver.run_id)] == ["people"]
    assert set(driver.trial_ids) == {("people", "naive_bayes"), ("people", "knn")}
    # 2 models x (2 folds + final)
    assert len(driver.units) == len(driver.todo) == 6
    assert [(e.kind, e.total, e.done, e.resumed) for e in events] == [("start", 6, 0, 0)]


def test_a_resumed_run_plans_only_what_the_journal_lacks(table: Path) -> None:
    reg, options = Registry(), _options(table)
    first = _RunDriver.record(options, prepare(options), reg, None, resume=None, new_id=None)
    trial = first.trial_ids[("people", "knn")]
    reg.record_units([
        {"trial_id": trial, "unit": "cv0", "status": "ok",
         "payload": {"scores": {"accuracy": 0.75}}, "error": None, "duration_s": 0.1},
        {"trial_id": trial, "unit": "cv1", "status": "failed", "payload": {},
         "error": "ValueError: boom", "duration_s": 0.1},
    ])
    reg.set_run_status(first.run_id, "interrupted")

    events: list[ProgressEvent] = []
    again = _RunDriver.record(options, prepare(options), reg, events.append,
                              resume=first.run_id, new_id=None)
    assert again.run_id == first.run_id
    assert reg.get_run(first.run_id).status == "running"
    assert again.trial_ids == first.trial_ids  # the same trials, not new ones
    # A failed unit counts as done: it would fail again.
    assert UnitKey("people", "knn", "cv0") not in again.todo
    assert UnitKey("people", "knn", "cv1") not in again.todo
    assert len(again.todo) == 4
    start = events[0]
    assert (start.total, start.done, start.resumed) == (6, 2, 2)
    assert start.best == {"people": ("knn", 0.75)}


def test_a_changed_table_cannot_be_resumed(table: Path) -> None:
    reg, options = Registry(), _options(table)
    first = _RunDriver.record(options, prepare(options), reg, None, resume=None, new_id=None)
    frame = pd.read_csv(table)
    frame.loc[0, "x"] = 1000
    frame.to_csv(table, index=False)
    with pytest.raises(ConfigError, match="changed since run .* Start a new run"):
        _RunDriver.record(options, prepare(options), reg, None, resume=first.run_id,
                          new_id=None)


def test_the_progress_leader_is_the_best_mean_so_far_at_every_step() -> None:
    """The tracker's incremental leader equals a scan of every model's mean (first seen
    wins a tie) after every fold, for a metric to maximise and one to minimise."""
    import random

    from fleetlearn.training._execute import _Tracker

    rng = random.Random(0)
    for metric in ("accuracy", "rmse"):
        models = [f"m{i}" for i in range(30)]
        units = [UnitKey("d", m, f"cv{f}") for m in models for f in range(5)]
        rng.shuffle(units)
        tracker = _Tracker("run", units, {"d": metric})
        sums: dict[str, list[float]] = {}
        for key in units:
            score = rng.choice([0.5, 0.6, 0.7, 0.8])  # ties on purpose
            tracker.update(key, {"status": "ok", "payload": {"scores": {metric: score}}})
            sums.setdefault(key.model, []).append(score)
            means = {m: sum(v) / len(v) for m, v in sums.items()}
            pick = (max if metric == "accuracy" else min)(means, key=means.__getitem__)
            assert tracker.best["d"][1] == means[pick]
