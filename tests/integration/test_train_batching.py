"""A run much larger than the cluster sends a few units per Ray task; results are the same.

The embedded test Ray has 2 CPUs, so 20 models x (3 folds + final) = 80 units is 40
units per CPU: past :data:`~fleetlearn.training._execute.BATCH_FROM_UNITS_PER_CPU`,
two units share each task. A wave of short units has the rest of its units packed
more tightly once its first slice has shown how short they are
(:func:`~fleetlearn.training._execute.adapted_units_per_task`).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

import fleetlearn
from fleetlearn.registry import Registry
from fleetlearn.training import _execute

pytestmark = pytest.mark.usefixtures("ray_session")

MODELS = [f"decision_tree:max_depth={d}" for d in range(1, 11)] + [
    f"logistic_regression:C={c}" for c in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300)]
FOLDS = 3
UNITS = len(MODELS) * (FOLDS + 1)


def _journal(run_id: str) -> dict[tuple[str, str], dict]:
    return {(t.model_name, name): {"status": u.status, **u.payload}
            for t in Registry().list_trials(run_id) for name, u in t.units.items()}


def _tasks(journal: dict[tuple[str, str], dict]) -> dict[str, list[tuple[str, str]]]:
    by_task = collections.defaultdict(list)
    for key, unit in journal.items():
        by_task[unit["task"]].append(key)
    return by_task


def test_units_share_tasks_when_the_run_is_much_larger_than_the_cluster(
        iris: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _execute.units_per_task(UNITS, 2) == 2
    # The planned size only: no second step sized from the units' durations.
    monkeypatch.setattr(_execute, "ADAPT_FROM_UNITS_PER_CPU", 10**9)
    batched = fleetlearn.train(iris, target="target", models=MODELS, folds=FOLDS, seed=5,
                               curves=False)
    monkeypatch.setattr(_execute, "BATCH_FROM_UNITS_PER_CPU", 10**9)  # one unit per task
    single = fleetlearn.train(iris, target="target", models=MODELS, folds=FOLDS, seed=5,
                              curves=False)

    shared, alone = _journal(batched.run_id), _journal(single.run_id)
    # Nothing lost: every unit journaled, ok, and every model registered, in both runs.
    assert len(shared) == len(alone) == UNITS
    assert {u["status"] for u in [*shared.values(), *alone.values()]} == {"ok"}
    assert len(batched.models) == len(single.models) == len(MODELS)
    # Batched: two units per task, both of one model (its folds, then its final fit).
    tasks = _tasks(shared)
    assert len(tasks) == UNITS // 2
    assert all(len(keys) == 2 and keys[0][0] == keys[1][0] for keys in tasks.values())
    # Not batched: a task per unit.
    assert len(_tasks(alone)) == UNITS
    # The same fold scores and the same leaderboard either way.
    assert {k: u["scores"] for k, u in shared.items() if k[1] != "final"} == {
        k: u["scores"] for k, u in alone.items() if k[1] != "final"}
    columns = ["dataset", "model", "rank", "cv_mean", "cv_std", "test"]
    assert batched.leaderboard[columns].equals(single.leaderboard[columns])


def test_a_task_of_several_units_whose_worker_died_ran_them_all_again(
        iris: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLEARN_TRUSTED_TYPES", "fault_models.CrashOnceClassifier")
    marker = tmp_path / "crashed"
    models = [f"fault_models.CrashOnceClassifier:marker={marker}", *MODELS[1:]]
    result = fleetlearn.train(iris, target="target", models=models, folds=FOLDS, seed=3,
                              curves=False)
    # The fault happened: one fit ended its worker process.
    crashed_pid = json.loads(marker.read_text())["pid"]
    journal = _journal(result.run_id)
    # Nothing lost: every unit journaled once and ok.
    assert len(journal) == UNITS
    assert {u["status"] for u in journal.values()} == {"ok"}
    # The crashed task's two units both ran again, in another process, and say so.
    retried = {k: u for k, u in journal.items() if u["attempts"] > 1}
    assert len(retried) == 2, {k: u["attempts"] for k, u in journal.items()}
    assert {model for model, _ in retried} == {"CrashOnceClassifier"}
    assert len({u["task"] for u in retried.values()}) == 1
    for unit in retried.values():
        assert unit["attempts"] == 2
        assert int(unit["pid"]) != crashed_pid
        [lost] = unit["failed_attempts"]
        assert lost["error"].startswith("WORKER_DIED")
    assert sorted(r["unit"] for r in result.retried) == sorted(u for _, u in retried)


def test_a_wave_of_short_units_packs_its_rest_by_their_measured_duration(
        iris: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = [f"decision_tree:max_depth={d}" for d in range(1, 13)]
    units = len(models) * (FOLDS + 1)  # 48 units, 24 per CPU: planned one a task
    assert _execute.units_per_task(units, 2) == 1
    first = 2 * _execute.PROBE_TASKS_PER_CPU  # the first slice: 4 tasks of one unit
    # Tree fits on iris take tens of milliseconds: with a body of at least 10 s wanted,
    # the rest is packed as far as 4 tasks per CPU allow: 44 / 8 = 5 units a task.
    monkeypatch.setattr(_execute, "TASK_BODY_S", 10.0)
    adapted = fleetlearn.train(iris, target="target", models=models, folds=FOLDS, seed=7,
                               curves=False)
    monkeypatch.setattr(_execute, "ADAPT_FROM_UNITS_PER_CPU", 10**9)
    single = fleetlearn.train(iris, target="target", models=models, folds=FOLDS, seed=7,
                              curves=False)

    packed, alone = _journal(adapted.run_id), _journal(single.run_id)
    # Nothing lost: every unit journaled once and ok, every model registered.
    assert len(packed) == len(alone) == units
    assert {u["status"] for u in [*packed.values(), *alone.values()]} == {"ok"}
    assert len(adapted.models) == len(single.models) == len(models)
    # The first slice went one unit a task (the first model's 4 units); the rest went
    # 5 a task (4 for the last), in the models' order, never across the first slice.
    trials = sorted(Registry().list_trials(adapted.run_id), key=lambda t: t.id)
    order = {t.model_name: i for i, t in enumerate(trials)}  # the models' order
    position = {(m, u): order[m] * (FOLDS + 1) + (FOLDS if u == "final" else int(u[2:]))
                for m, u in packed}
    tasks = sorted(sorted(position[k] for k in keys) for keys in _tasks(packed).values())
    assert tasks[:first] == [[0], [1], [2], [3]]
    rest = tasks[first:]
    assert [len(t) for t in rest] == [5] * 8 + [4], tasks
    assert all(t == list(range(t[0], t[0] + len(t))) for t in rest)  # consecutive units
    assert len(_tasks(alone)) == units
    # The same fold scores and the same leaderboard either way.
    assert {k: u["scores"] for k, u in packed.items() if k[1] != "final"} == {
        k: u["scores"] for k, u in alone.items() if k[1] != "final"}
    columns = ["dataset", "model", "rank", "cv_mean", "cv_std", "test"]
    assert adapted.leaderboard[columns].equals(single.leaderboard[columns])
