"""The model contract's artifact round trip, and exact artifact trust.

Every catalog model is fitted on a tiny table, dumped, loaded back through exact trust
and must predict exactly as before. The reviewed allow-list
(``fleetlearn/registry/_trusted_types.py``) is re-derived from those real artifacts:
adding a model to the catalog whose artifact holds a new type fails here until the new
names are reviewed and listed.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
import skops.io as sio
from model_fixtures import mixed_frame, open_registry, records_of, regression_frame
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import fleetlearn.registry._trusted_types as trusted_module
from fleetlearn.catalog import resolve_model
from fleetlearn.catalog._entries import CATALOG, extra_available
from fleetlearn.data import Dataset, dataset_from_frame, parse_rows
from fleetlearn.errors import ArtifactIntegrityError, ConfigError
from fleetlearn.model import Artifact, build_pipeline, dump_model, load_predictor
from fleetlearn.registry import (
    TRUSTED_TYPES,
    TRUSTED_TYPES_ENV,
    Registry,
    artifact_types,
    load_estimator,
    untrusted_types,
)


class ShiftRegressor(RegressorMixin, BaseEstimator):
    """A user's own estimator class: on no allow-list until opted in by exact name."""

    def __init__(self, shift: float = 1.0) -> None:
        self.shift = shift

    def fit(self, X, y):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        return np.asarray(X, dtype=float)[:, 0] + self.shift


SHIFT_TYPE = f"{ShiftRegressor.__module__}.ShiftRegressor"


# Few trees and iterations: the types an artifact holds do not depend on how many.
_SMALL = {"random_forest": "n_estimators=5", "extra_trees": "n_estimators=5",
          "gradient_boosting": "n_estimators=5", "hist_gradient_boosting": "max_iter=5",
          "ada_boost": "n_estimators=5", "xgboost": "n_estimators=5",
          "lightgbm": "n_estimators=5", "mlp": "max_iter=20"}


def _multiclass_frame():
    frame = mixed_frame(90, seed=3)
    frame["label"] = np.array(["a", "b", "c"])[np.arange(90) % 3]
    return frame


def _datasets() -> dict[str, Dataset]:
    return {
        "binary": dataset_from_frame(mixed_frame(60), "label", name="binary"),
        "multiclass": dataset_from_frame(_multiclass_frame(), "label", name="multiclass"),
        "regression": dataset_from_frame(regression_frame(60), "price", name="regression"),
    }


def _cases() -> list[tuple[str, str]]:
    cases = []
    for table, task in (("binary", "classification"), ("multiclass", "classification"),
                        ("regression", "regression")):
        cases += [(table, name) for name in CATALOG[task]]
    return cases


@pytest.fixture(scope="module")
def fitted() -> dict[tuple[str, str], tuple[Dataset, Pipeline, Artifact]]:
    """Every catalog model fitted on each tiny table, with its artifact."""
    out = {}
    datasets = _datasets()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on 60 rows
        for table, name in _cases():
            ds = datasets[table]
            entry = CATALOG[ds.task][name]
            if entry.extra and not extra_available(entry.extra):
                continue
            spec = resolve_model(f"{name}:{_SMALL[name]}" if name in _SMALL else name, ds.task)
            pipe = build_pipeline(spec, ds.schema, 0).fit(ds.X, ds.y)
            out[(table, name)] = (ds, pipe, dump_model(pipe))
    return out


def test_the_catalog_extras_are_installed_so_their_types_are_checked() -> None:
    # Without them this module would silently skip XGBoost and LightGBM.
    assert extra_available("xgboost")
    assert extra_available("lightgbm")


def test_the_allow_list_covers_every_catalog_models_artifact(fitted) -> None:
    needed: dict[str, list[str]] = {}
    for (table, name), (_, _, artifact) in fitted.items():
        for t in artifact.types:
            needed.setdefault(t, []).append(f"{name} ({table})")
    missing = sorted(set(needed) - TRUSTED_TYPES)
    assert missing == [], (
        "Catalog models hold types the allow-list does not list. Review each, then add "
        "it to CATALOG_TYPES in fleetlearn/registry/_trusted_types.py:\n"
        + "\n".join(f'    "{t}",  # {", ".join(needed[t][:3])}' for t in missing))
    # Every derived entry is still needed (a removed model leaves no stale trust).
    stale = sorted(set(trusted_module.CATALOG_TYPES) - set(needed)
                   - set(trusted_module.CONTAINER_TYPES))
    assert stale == [], f"CATALOG_TYPES lists types no catalog model needs: {stale}"


def test_the_allow_list_is_a_sorted_literal_of_exact_names() -> None:
    for names in (trusted_module.CATALOG_TYPES, trusted_module.CONTAINER_TYPES):
        assert list(names) == sorted(names)
        assert len(set(names)) == len(names)
    assert all(not t.endswith(".") and "." in t for t in TRUSTED_TYPES)
    # Functions are never trusted, not even "safe-looking" ones.
    assert not {"builtins.eval", "builtins.exec", "numpy.load", "builtins.getattr"} & TRUSTED_TYPES


@pytest.mark.parametrize(("table", "name"), _cases())
def test_every_catalog_model_round_trips(fitted, table: str, name: str) -> None:
    if (table, name) not in fitted:
        pytest.skip(f"extra for {name} not installed")
    ds, pipe, artifact = fitted[(table, name)]
    assert list(artifact.types) == artifact_types(artifact.data)
    predictor = load_predictor(artifact.data, ds.schema, source=f"{name} ({table})")
    target = ds.schema.target
    frame = (_multiclass_frame() if table == "multiclass" else
             mixed_frame(25, seed=11) if table == "binary" else regression_frame(25, seed=11))
    body = {"records": records_of(frame.head(25), drop=(target,))}
    rows = parse_rows(body, ds.schema, known_extra=predictor.known_extra)
    got = predictor.predict(rows, proba=predictor.has_proba)
    want = pipe.predict(rows.frame(ds.schema))
    if ds.task == "regression":
        np.testing.assert_allclose(got.labels, want, rtol=1e-9)
    else:
        assert got.labels == want.tolist()
        if predictor.has_proba:
            matrix = np.array([[p[str(c)] for c in predictor.classes] for p in got.proba])
            np.testing.assert_allclose(matrix, pipe.predict_proba(rows.frame(ds.schema)),
                                       rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------- refused artifacts


def _inside_a_fleetlearn_pipeline(step) -> Pipeline:
    """A step hidden behind the preprocessing of a real fitted fleetlearn pipeline."""
    ds = _datasets()["regression"]
    pipe = build_pipeline(resolve_model("ridge", "regression"), ds.schema, 0).fit(ds.X, ds.y)
    ct: ColumnTransformer = pipe.steps[0][1]
    return Pipeline([("preprocess", ct), ("sneak", step), ("model", pipe.steps[1][1])])


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (FunctionTransformer(func=np.testing.assert_equal),
         "numpy.testing._private.utils.assert_equal"),
        (FunctionTransformer(func=sklearn.datasets.fetch_openml),
         "sklearn.datasets._openml.fetch_openml"),
        (FunctionTransformer(func=np.load), "numpy.load"),
        ({"f": eval}, "builtins.eval"),
        (_inside_a_fleetlearn_pipeline(FunctionTransformer(func=sklearn.datasets.load_iris)),
         "sklearn.datasets._base.load_iris"),
    ],
    ids=["numpy.testing", "sklearn.datasets", "numpy.load", "builtins.eval", "in-pipeline"],
)
def test_callables_from_trusted_packages_are_refused_by_name(payload, refused: str) -> None:
    data = sio.dumps(payload)
    assert refused in untrusted_types(data)
    with pytest.raises(ArtifactIntegrityError, match=rf"outside the trusted list: .*{refused}"
                       rf".*{TRUSTED_TYPES_ENV}"):
        load_estimator(data, source="the upload")


@pytest.mark.parametrize("content", [b"PK\x03\x04 not really a zip", b'{"a": 1}', "zip"])
def test_garbage_is_not_a_skops_file(content, tmp_path: Path) -> None:
    if content == "zip":  # a zip with a schema.json that is not skops's
        with zipfile.ZipFile(tmp_path / "x.zip", "w") as zf:
            zf.writestr("schema.json", '{"hello": "world"}')
        content = (tmp_path / "x.zip").read_bytes()
    with pytest.raises(ArtifactIntegrityError, match="not a readable skops file"):
        artifact_types(content)


# ------------------------------------------------------------------- opting in


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = open_registry(tmp_path)
    yield reg
    reg.close()


def _register_shift(registry: Registry) -> None:
    est = ShiftRegressor(shift=2.5).fit([[0.0], [1.0]], [0.0, 1.0])
    registry.register_model("shift", estimator=est, metrics={}, params={}, input_schema={})


def test_a_user_class_loads_only_once_opted_in_by_exact_name(registry: Registry) -> None:
    _register_shift(registry)
    with pytest.raises(ArtifactIntegrityError, match=rf"outside the trusted list: {SHIFT_TYPE}"):
        registry.load_model("shift")
    model = registry.load_model("shift", trusted=[SHIFT_TYPE])
    np.testing.assert_allclose(model.predict([[1.0]]), [3.5])


def test_the_environment_opts_in_exact_names(registry: Registry,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _register_shift(registry)
    monkeypatch.setenv(TRUSTED_TYPES_ENV, f" other.pkg.Thing , {SHIFT_TYPE}")
    np.testing.assert_allclose(registry.load_model("shift").predict([[0.0]]), [2.5])


@pytest.mark.parametrize("prefix", ["tests.", "tests.*", "sklearn.", "numpy"])
def test_a_prefix_opt_in_is_refused(registry: Registry, monkeypatch: pytest.MonkeyPatch,
                                    prefix: str) -> None:
    _register_shift(registry)
    with pytest.raises(ConfigError, match=rf"Invalid trusted type\(s\) in trusted: "
                       rf"'{prefix}'.*exact name"):
        registry.load_model("shift", trusted=[prefix])
    monkeypatch.setenv(TRUSTED_TYPES_ENV, prefix)
    with pytest.raises(ConfigError, match=rf"in {TRUSTED_TYPES_ENV}: '{prefix}'"):
        registry.load_model("shift")


# ------------------------------------------------------- recorded at registration


def test_registration_records_the_artifacts_exact_types(registry: Registry, fitted) -> None:
    ds, pipe, artifact = fitted[("binary", "random_forest")]
    mv = registry.register_model("forest", estimator=pipe, metrics={}, params={},
                                 input_schema=ds.schema.to_dict())
    assert mv.artifact_types == artifact.types
    assert "sklearn.tree._tree.Tree" in mv.artifact_types
    again = registry.get_model_version("forest")
    assert again.artifact_types == artifact.types
    assert again.to_dict()["artifact_types"] == list(artifact.types)
    from_bytes = registry.register_model("forest", artifact=artifact.data, metrics={},
                                         params={}, input_schema={})
    assert from_bytes.artifact_types == artifact.types


def test_a_modified_artifact_names_the_model_and_the_integrity_failure(
        registry: Registry, fitted) -> None:
    ds, pipe, _ = fitted[("regression", "ridge")]
    mv = registry.register_model("house", estimator=pipe, metrics={}, params={},
                                 input_schema=ds.schema.to_dict())
    path = registry.artifacts.path_for(mv.artifact_digest)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError,
                       match=r"Integrity check failed for model house:1: .*sha256"):
        registry.load_model("house")
