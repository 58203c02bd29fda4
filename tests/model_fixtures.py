"""Shared builders for tests: tables, fitted pipelines, a registry with registered models.

Imported by tests/unit and tests/integration (``pythonpath = ["tests"]`` in pyproject).
Models are fitted and registered exactly as ``fleetlearn.training._execute`` does:
``build_pipeline(resolve_model(...), schema)`` fitted on ``dataset_from_frame`` data,
registered with the dataset's ``schema.to_dict()`` as input schema and the run's
lineage, so every serving test serves what ``fleetlearn train`` would have written.

Examples
--------
>>> reg = open_registry(tmp_path)                                   # doctest: +SKIP
>>> ds = dataset_from_frame(mixed_frame(), "label", name="toy")     # doctest: +SKIP
>>> register(reg, "toy-logreg", fit(ds, "logistic_regression"), ds)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from live_server import free_port  # noqa: F401 - re-exported: one free-port helper for the tests
from sklearn.pipeline import Pipeline

from fleetlearn.catalog import resolve_model
from fleetlearn.data import Dataset, Rows, dataset_from_frame, parse_rows
from fleetlearn.model import build_pipeline
from fleetlearn.registry import ModelVersion, Registry

__all__ = [
    "iris_frame",
    "mixed_frame",
    "regression_frame",
    "fit",
    "open_registry",
    "register",
    "records_of",
    "free_port",
    "serving_registry",
    "unseen_rows",
    "rows_for",
]


def iris_frame() -> pd.DataFrame:
    """scikit-learn's iris with its label as names: a ``species`` column of setosa,
    versicolor and virginica (the table most tests train and predict on)."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    frame["species"] = frame["species"].map(dict(enumerate(["setosa", "versicolor",
                                                              "virginica"])))
    return frame


def mixed_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """A classification table with every column kind, missing values and an ID column.

    ``row_id`` is dropped as ID-like, ``x`` is numeric with ~10 % missing, ``flag`` a
    yes/no boolean, ``color`` categorical with missing values, ``when`` dates as text,
    ``label`` the target (``"a"``/``"b"``, depending on ``x`` and ``color``).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], n).astype(object)
    color[rng.random(n) < 0.1] = None
    label = np.where(x + (color == "red") * 1.5 + rng.normal(0, 0.3, n) > 0.5, "a", "b")
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "row_id": np.arange(n),
        "x": x,
        "flag": rng.choice(["yes", "no"], n),
        "color": color,
        "when": pd.date_range("2020-01-01", periods=n, freq="37h").strftime("%Y-%m-%d %H:%M"),
        "label": label,
    })


def regression_frame(n: int = 100, seed: int = 1) -> pd.DataFrame:
    """A regression table: two numeric features (one with missing values), one category."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.uniform(0, 10, n)
    shop = rng.choice(["north", "south"], n)
    y = 3 * a - 0.5 * b + (shop == "north") * 2 + rng.normal(0, 0.1, n)
    b[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"a": a, "b": b, "shop": shop, "price": y})


def fit(dataset: Dataset, model: str, seed: int = 0) -> Pipeline:
    """A fitted fleetlearn pipeline (preprocessing + estimator) for a catalog model."""
    spec = resolve_model(model, dataset.task)
    return build_pipeline(spec, dataset.schema, seed).fit(dataset.X, dataset.y)


def open_registry(folder: Path) -> Registry:
    """A fresh SQLite registry with its artifact folder under ``folder``."""
    return Registry(f"sqlite:///{folder / 'registry.db'}", artifact_dir=folder / "artifacts")


def register(reg: Registry, name: str, pipeline: Any, dataset: Dataset,
             score: float = 0.9, lineage: bool = True) -> ModelVersion:
    """Register ``pipeline`` as the next version of ``name``, as training does.

    With ``lineage`` a run, its dataset and a trial are recorded first, so the dataset
    and task filters of ``GET /v1/models`` see the version.
    """
    metric = "accuracy" if dataset.task == "classification" else "r2"
    kwargs: dict[str, Any] = {}
    if lineage:
        run = reg.create_run({"models": [name]}, seed=0)
        ds = reg.add_dataset(run.id, fingerprint=dataset.fingerprint, name=dataset.name,
                             source=dataset.source, n_rows=dataset.n_rows,
                             n_features=len(dataset.schema.columns), task=dataset.task,
                             target=dataset.schema.target, schema=dataset.schema.to_dict())
        trial = reg.ensure_trial(run.id, ds.id, name, {})
        kwargs = {"run_id": run.id, "trial_id": trial.id, "dataset_id": ds.id}
    return reg.register_model(
        name,
        estimator=pipeline,
        metrics={"test": {metric: score}, "primary_metric": metric},
        params={"estimator": type(pipeline.steps[-1][1]).__name__},
        input_schema=dataset.schema.to_dict(),
        tags={"dataset": dataset.name, "task": dataset.task},
        **kwargs,
    )


def records_of(frame: pd.DataFrame, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """JSON-ready records of a frame: NaN/None become null, numpy scalars plain Python."""
    out = []
    for row in frame.drop(columns=list(drop)).to_dict(orient="records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, np.generic):
                v = v.item()
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
                v = None
            clean[k] = v
        out.append(clean)
    return out


class ServingModels:
    """What :func:`serving_registry` registered: datasets and fitted pipelines by name."""

    def __init__(self) -> None:
        self.datasets: dict[str, Dataset] = {}
        self.pipelines: dict[str, Pipeline] = {}


def serving_registry(folder: Path) -> tuple[Registry, ServingModels]:
    """A registry with the models most serving tests need.

    * ``toy-logreg`` (classification on :func:`mixed_frame`), version 1, alias ``prod``;
    * ``toy-forest`` (random forest, 10 trees), version 1;
    * ``house-ridge`` (regression on :func:`regression_frame`), version 1.
    """
    reg = open_registry(folder)
    models = ServingModels()
    toy = dataset_from_frame(mixed_frame(), "label", name="toy")
    house = dataset_from_frame(regression_frame(), "price", name="house")
    models.datasets.update({"toy": toy, "house": house})
    for name, ds, model in (("toy-logreg", toy, "logistic_regression"),
                            ("toy-forest", toy, "random_forest:n_estimators=10"),
                            ("house-ridge", house, "ridge")):
        models.pipelines[name] = fit(ds, model)
        register(reg, name, models.pipelines[name], ds, score=0.8)
    reg.set_alias("toy-logreg", "prod", 1)
    return reg, models


def unseen_rows(n: int = 60) -> pd.DataFrame:
    """Rows the models never saw: missing values in every column, unseen categories."""
    frame = mixed_frame(n, seed=11)
    frame.loc[frame.index[::5], "color"] = "purple"      # unseen category
    frame.loc[frame.index[1::6], "color"] = None
    frame.loc[frame.index[2::7], "flag"] = None
    frame.loc[frame.index[3::8], "when"] = None
    frame.loc[frame.index[4::9], "x"] = np.nan
    frame.loc[frame.index[0], "x"] = 1e4                 # far outside the training range
    return frame


def rows_for(ds: Dataset, frame: pd.DataFrame) -> Rows:
    """``frame`` parsed as the API parses a request's records (target, dropped columns
    allowed)."""
    target = tuple(c for c in [ds.schema.target] if c in frame)
    return parse_rows({"records": records_of(frame, drop=target)}, ds.schema,
                      known_extra=frozenset(ds.schema.dropped) | {ds.schema.target})
