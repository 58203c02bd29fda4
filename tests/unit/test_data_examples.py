"""The bundled example tables: written on demand, loadable, deterministic, learnable."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline

from fleetlearn.data import Dataset, build_preprocessor, example_datasets, load_dataset


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    dest = tmp_path_factory.mktemp("examples") / "nested"  # created by example_datasets
    return {path.name: load_dataset(path, target) for path, target in example_datasets(dest)}


def test_three_tables_with_their_targets(examples: dict[str, Dataset]) -> None:
    assert list(examples) == ["wine.csv", "customers.csv", "diabetes.parquet"]
    wine, customers, diabetes = examples.values()
    assert (wine.schema.target, wine.task, len(wine.schema.classes)) == (
        "cultivar", "classification", 3
    )  # fmt: skip
    assert (customers.schema.target, customers.task) == ("churned", "classification")
    assert customers.schema.classes == ("no", "yes")
    assert (diabetes.schema.target, diabetes.task) == ("progression", "regression")
    assert wine.n_rows == 178
    assert diabetes.n_rows == 442
    assert {c.kind for c in wine.schema.columns} == {"numeric"}


def test_customers_shows_the_real_world_handling(examples: dict[str, Dataset]) -> None:
    ds = examples["customers.csv"]
    kinds = {c.name: c.kind for c in ds.schema.columns}

    assert 1500 <= ds.n_rows <= 2500
    assert ds.schema.dropped["customer_id"].startswith("ID-like")
    assert ds.schema.dropped["notes"].startswith("free text")
    assert kinds["signup_date"] == "datetime"
    assert kinds["plan"] == "categorical"
    assert kinds["region"] == "categorical"
    assert kinds["autopay"] == "boolean"
    assert len(ds.schema.column("region").categories) == 6
    missing_share = ds.X[["age", "monthly_charges", "support_calls"]].isna().mean()
    assert ((missing_share > 0.02) & (missing_share < 0.1)).all()


def test_examples_are_deterministic(tmp_path: Path, examples: dict[str, Dataset]) -> None:
    again = {p.name: load_dataset(p, t) for p, t in example_datasets(tmp_path)}
    for name, ds in examples.items():
        assert again[name].fingerprint == ds.fingerprint, name


def test_customers_is_learnable_well_above_chance(examples: dict[str, Dataset]) -> None:
    ds = examples["customers.csv"]
    pipe = Pipeline(
        [
            ("preprocess", build_preprocessor(ds.schema, scale=True)),
            ("model", LogisticRegression(max_iter=500)),
        ]
    )
    accuracy = cross_val_score(pipe, ds.X, ds.y, cv=3, scoring="accuracy").mean()
    majority = max((ds.y == c).mean() for c in ds.schema.classes)
    assert accuracy > 0.7
    assert accuracy > majority + 0.1
