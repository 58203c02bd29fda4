"""Registry runs, datasets, trials and the run journal (SQLite, one file per test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest

from fleetlearn.errors import ConfigError, NotFoundError
from fleetlearn.registry import Registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}", artifact_dir=tmp_path / "artifacts")
    yield reg
    reg.close()


def _dataset(registry: Registry, run_id: str, fingerprint: str = "fp-1", name: str = "iris"):
    return registry.add_dataset(
        run_id,
        fingerprint=fingerprint,
        name=name,
        source=f"/data/{name}.csv",
        n_rows=150,
        n_features=4,
        task="classification",
        target="species",
        schema={"columns": {"sepal_length": "float"}},
    )


# ---------------------------------------------------------------------------- runs


def test_run_lifecycle(registry: Registry) -> None:
    run = registry.create_run({"folds": 5, "models": ["rf"]}, seed=7, name="nightly")
    assert run.status == "running"
    assert run.finished_at is None
    assert run.created_at.tzinfo == UTC

    fetched = registry.get_run(run.id)
    assert fetched == run
    assert fetched.config == {"folds": 5, "models": ["rf"]}

    done = registry.set_run_status(run.id, "finished")
    assert done.status == "finished"
    assert done.finished_at is not None
    assert done.finished_at >= run.started_at
    assert registry.get_run(run.id).finished_at == done.finished_at

    failed = registry.set_run_status(run.id, "failed", error="node lost")
    assert (failed.status, failed.error) == ("failed", "node lost")

    resumed = registry.set_run_status(run.id[:6], "running")  # a prefix, as for resume
    assert (resumed.finished_at, resumed.error) == (None, None)


def test_run_to_dict_is_json_serialisable(registry: Registry) -> None:
    run = registry.create_run({"a": 1}, seed=0)
    data = json.loads(json.dumps(run.to_dict()))
    assert data["id"] == run.id
    assert data["created_at"].endswith("+00:00")


def test_run_status_must_be_known(registry: Registry) -> None:
    run = registry.create_run({}, seed=0)
    with pytest.raises(ConfigError, match="'done'.*'finished'"):
        registry.set_run_status(run.id, "done")


def test_get_run_accepts_unique_prefix(registry: Registry) -> None:
    run = registry.create_run({}, seed=0)
    assert registry.get_run(run.id[:5]).id == run.id


def test_get_run_rejects_ambiguous_prefix(registry: Registry) -> None:
    # 17 runs over 16 hex digits: two share a first character (pigeonhole).
    ids = [registry.create_run({}, seed=i).id for i in range(17)]
    shared = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    with pytest.raises(NotFoundError, match="ambiguous"):
        registry.get_run(shared)


def test_get_run_not_found_names_id_and_suggests(registry: Registry) -> None:
    run = registry.create_run({}, seed=0)
    typo = run.id[:-1] + ("0" if run.id[-1] != "0" else "1")
    with pytest.raises(NotFoundError, match=f"'{typo}'.*Did you mean '{run.id}'"):
        registry.get_run(typo)


def test_set_status_of_unknown_run_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="no runs yet"):
        registry.set_run_status("deadbeef0000", "finished")


def test_list_runs_newest_first_with_limit(registry: Registry) -> None:
    ids = [registry.create_run({}, seed=i).id for i in range(4)]
    listed = [r.id for r in registry.list_runs()]
    assert listed == ids[::-1]
    assert [r.id for r in registry.list_runs(limit=2)] == ids[:1:-1]


# ------------------------------------------------------------------------ datasets


def test_add_dataset_is_idempotent_per_fingerprint(registry: Registry) -> None:
    run = registry.create_run({}, seed=0)
    first = _dataset(registry, run.id)
    again = _dataset(registry, run.id)
    assert again == first
    assert registry.run_datasets(run.id) == [first]


def test_same_dataset_keeps_its_name_per_run(registry: Registry) -> None:
    run_a = registry.create_run({}, seed=0)
    run_b = registry.create_run({}, seed=1)
    a = _dataset(registry, run_a.id, name="iris")
    b = _dataset(registry, run_b.id, name="flowers")
    assert a.id == b.id
    assert [d.name for d in registry.run_datasets(run_a.id)] == ["iris"]
    assert [d.name for d in registry.run_datasets(run_b.id)] == ["flowers"]


def test_run_datasets_lists_each_dataset_once(registry: Registry) -> None:
    run = registry.create_run({}, seed=0)
    ids = [_dataset(registry, run.id, fingerprint=f"fp-{i}", name=f"t{i}").id for i in range(3)]
    assert [d.id for d in registry.run_datasets(run.id)] == ids


def test_add_dataset_to_unknown_run_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        _dataset(registry, "nope")


# ------------------------------------------------------------------ trials/journal


@pytest.fixture
def trial_setup(registry: Registry):
    run = registry.create_run({}, seed=0)
    ds = _dataset(registry, run.id)
    trial = registry.ensure_trial(run.id, ds.id, "rf", {"estimator": "RandomForest"})
    return run, ds, trial


def test_ensure_trial_is_idempotent(registry: Registry, trial_setup) -> None:
    run, ds, trial = trial_setup
    assert trial.status == "pending"
    registry.record_unit(trial.id, "cv0", "ok", {"score": 0.9})
    again = registry.ensure_trial(run.id, ds.id, "rf", {"estimator": "other"})
    assert again.id == trial.id
    assert again.spec == {"estimator": "RandomForest"}
    assert list(again.units) == ["cv0"]


def test_ensure_trial_on_unknown_dataset_is_not_found(registry: Registry, trial_setup) -> None:
    run, _, _ = trial_setup
    with pytest.raises(NotFoundError, match="dataset with id 999"):
        registry.ensure_trial(run.id, 999, "rf", {})


def test_record_unit_upserts(registry: Registry, trial_setup) -> None:
    run, ds, trial = trial_setup
    registry.record_unit(trial.id, "cv0", "failed", {}, error="MemoryError", duration_s=1.0)
    registry.record_unit(trial.id, "cv0", "ok", {"score": 0.91, "node": "n1"}, duration_s=2.5)
    (listed,) = registry.list_trials(run.id)
    unit = listed.units["cv0"]
    assert (unit.status, unit.error, unit.duration_s) == ("ok", None, 2.5)
    assert unit.payload == {"score": 0.91, "node": "n1"}


def test_record_units_batch_and_completed_units(registry: Registry, trial_setup) -> None:
    run, ds, trial = trial_setup
    other = registry.ensure_trial(run.id, ds.id, "logreg", {})
    registry.record_units(
        [
            {"trial_id": trial.id, "unit": "cv0", "status": "ok", "payload": {"s": 1}},
            {"trial_id": trial.id, "unit": "cv1", "status": "failed", "payload": {}},
            {"trial_id": other.id, "unit": "final", "status": "ok", "payload": {}},
            # A later item for the same unit wins (and must not break the batch upsert).
            {"trial_id": trial.id, "unit": "cv0", "status": "ok", "payload": {"s": 2}},
        ]
    )
    assert registry.completed_units(run.id) == {
        (ds.id, "rf", "cv0"),
        (ds.id, "rf", "cv1"),
        (ds.id, "logreg", "final"),
    }
    trials = {t.model_name: t for t in registry.list_trials(run.id)}
    assert trials["rf"].units["cv0"].payload == {"s": 2}
    assert set(trials["rf"].units) == {"cv0", "cv1"}


def test_completed_units_are_per_run(registry: Registry, trial_setup) -> None:
    run, ds, trial = trial_setup
    registry.record_unit(trial.id, "cv0", "ok", {})
    other_run = registry.create_run({}, seed=1)
    assert registry.completed_units(other_run.id) == set()


def test_payload_numpy_and_nan_are_stored_as_json(registry: Registry, trial_setup) -> None:
    run, _, trial = trial_setup
    payload = {"score": np.float64(0.5), "folds": np.arange(3), "bad": float("nan")}
    registry.record_unit(trial.id, "curve", "ok", payload)
    (listed,) = registry.list_trials(run.id)
    assert listed.units["curve"].payload == {"score": 0.5, "folds": [0, 1, 2], "bad": None}


def test_record_unit_of_unknown_trial_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="trial\\(s\\) 4242"):
        registry.record_unit(4242, "cv0", "ok", {})


def test_record_unit_rejects_unknown_status(registry: Registry, trial_setup) -> None:
    _, _, trial = trial_setup
    with pytest.raises(ConfigError, match="unit status 'done'"):
        registry.record_unit(trial.id, "cv0", "done", {})


def test_set_trial_status_and_filter_by_dataset(registry: Registry, trial_setup) -> None:
    run, ds, trial = trial_setup
    ds2 = _dataset(registry, run.id, fingerprint="fp-2", name="wine")
    registry.ensure_trial(run.id, ds2.id, "rf", {})
    registry.set_trial_status(trial.id, "failed", error="all folds failed")
    (only,) = registry.list_trials(run.id, dataset_id=ds.id)
    assert (only.id, only.status, only.error) == (trial.id, "failed", "all folds failed")
    assert len(registry.list_trials(run.id)) == 2
    with pytest.raises(ConfigError, match="trial status"):
        registry.set_trial_status(trial.id, "finished")
    with pytest.raises(NotFoundError, match="trial with id 999"):
        registry.set_trial_status(999, "ok")


def test_trial_to_dict_includes_units(registry: Registry, trial_setup) -> None:
    run, _, trial = trial_setup
    registry.record_unit(trial.id, "cv0", "ok", {"score": 1.0})
    (listed,) = registry.list_trials(run.id)
    data = json.loads(json.dumps(listed.to_dict()))
    assert data["units"]["cv0"]["payload"] == {"score": 1.0}
