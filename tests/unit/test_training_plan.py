"""The trial graph, seeds, run configuration and run files: no Ray needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fleetlearn.errors import ConfigError, DataFileNotFoundError
from fleetlearn.training import (
    DatasetConfig,
    RunConfig,
    UnitKey,
    derive_seed,
    load_run_file,
    make_splits,
    plan_units,
)


def test_seed_is_stable_across_processes() -> None:
    here = derive_seed(7, "fp", "random_forest", "cv2")
    code = ("from fleetlearn.training import derive_seed; "
            "print(derive_seed(7, 'fp', 'random_forest', 'cv2'))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert int(there) == here
    assert derive_seed(7, "fp", "random_forest", "cv3") != here
    assert 0 <= here < 2**31


def test_splits_are_stratified_disjoint_and_reproducible() -> None:
    y = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 10)
    s1 = make_splits(y, "classification", folds=5, test_size=0.2, seed=3)
    s2 = make_splits(y, "classification", folds=5, test_size=0.2, seed=3)
    assert np.array_equal(s1.test, s2.test)
    assert set(s1.train).isdisjoint(s1.test)
    assert len(s1.train) + len(s1.test) == 100
    # Stratified: the test part keeps the class proportions.
    assert (y[s1.test] == "c").sum() == 2
    covered = np.concatenate([va for _, va in s1.folds])
    assert sorted(covered) == sorted(s1.train)
    for tr, va in s1.folds:
        assert set(tr).isdisjoint(va)
        assert set(y[va]) == {"a", "b", "c"}
    other = make_splits(y, "classification", folds=5, test_size=0.2, seed=4)
    assert not np.array_equal(other.test, s1.test)


def test_regression_splits_use_plain_kfold() -> None:
    y = np.linspace(0, 1, 50)
    s = make_splits(y, "regression", folds=4, test_size=0.2, seed=0)
    assert len(s.test) == 10
    assert len(s.folds) == 4


def test_plan_lists_folds_final_and_curves() -> None:
    units = plan_units({"a": ["rf", "gb"], "b": ["rf"]}, folds=3, final_fit=True,
                       curves={"a": {"rf"}, "b": set()})
    assert UnitKey("a", "rf", "curve") in units
    assert UnitKey("a", "gb", "curve") not in units
    assert sum(1 for u in units if u.unit == "final") == 3
    assert sum(1 for u in units if u.unit.startswith("cv")) == 9
    assert len(units) == len(set(units)) == 13


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"folds": 1}, "'folds' option must be an int in the range [2, inf). Got 1"),
        ({"test_size": 1.5}, "'test_size'"),
        ({"schedule": "concurent"}, "Did you mean 'concurrent'"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_bad_options_are_named(kwargs: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        RunConfig(datasets=[DatasetConfig("a.csv", "y")], **kwargs)
    assert words in str(info.value)


def test_unknown_task_suggests() -> None:
    with pytest.raises(ConfigError, match="classification"):
        RunConfig(datasets=[DatasetConfig("a.csv", "y", task="clasification")])


def test_config_round_trips_through_dict() -> None:
    cfg = RunConfig(datasets=[DatasetConfig("a.csv", "y", task="regression")],
                    models=["ridge", {"name": "lasso", "params": {"alpha": 0.1}}], folds=3,
                    seed=9, schedule="sequential")
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg


def test_run_file_yaml_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text(
        "datasets:\n  - {path: data/a.csv, target: label}\n"
        "  - {path: b.parquet, target: y, task: regression}\n"
        "models: [random_forest, 'logistic_regression:C=0.5']\nfolds: 3\nseed: 42\n"
        "schedule: sequential\n"
    )
    cfg = load_run_file(tmp_path / "run.yaml")
    assert cfg.datasets[0].path == str((tmp_path / "data" / "a.csv").resolve())
    assert cfg.datasets[1].task == "regression"
    assert cfg.models == ["random_forest", "logistic_regression:C=0.5"]
    assert (cfg.folds, cfg.seed, cfg.schedule) == (3, 42, "sequential")


def test_run_file_toml(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text(
        'folds = 4\nmodels = ["ridge"]\n[[datasets]]\npath = "/data/x.csv"\ntarget = "t"\n'
    )
    cfg = load_run_file(tmp_path / "run.toml")
    assert cfg.folds == 4
    assert cfg.datasets[0].path == "/data/x.csv"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("datasets: [a.csv]\n", "has no target"),
        ("datasets:\n  - {path: a.csv, target: y}\nfoldz: 3\n", "Did you mean 'folds'"),
        ("datasets: {path: a.csv}\n", "needs a 'datasets' list"),
        ("datasets: [\n", "not valid YAML"),
        ("- 1\n- 2\n", "mapping"),
    ],
)
def test_bad_run_files(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_run_file(path)
    assert words in str(info.value)


def test_missing_run_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match="nope.yaml"):
        load_run_file(tmp_path / "nope.yaml")
