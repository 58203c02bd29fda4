"""Artifact store, trusted-type policy and model references."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from fleetlearn.errors import ArtifactIntegrityError, ConfigError
from fleetlearn.registry import (
    ArtifactStore,
    Registry,
    dump_estimator,
    load_estimator,
    parse_model_ref,
    untrusted_types,
)


class ThresholdClassifier(ClassifierMixin, BaseEstimator):
    """A user-defined estimator: its class is not on the trusted list."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return (np.asarray(X)[:, 0] > self.threshold).astype(int)


CUSTOM_TYPE = f"{ThresholdClassifier.__module__}.ThresholdClassifier"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}", artifact_dir=tmp_path / "artifacts")
    yield reg
    reg.close()


# ----------------------------------------------------------------- ArtifactStore


def test_store_saves_by_digest_and_loads_checked(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    digest, size, path = store.save_bytes(b"model bytes")
    assert digest == hashlib.sha256(b"model bytes").hexdigest()
    assert size == len(b"model bytes")
    assert path == tmp_path / "artifacts" / digest[:2] / f"{digest}.skops"
    assert store.load_bytes(digest) == b"model bytes"
    assert store.save_bytes(b"model bytes") == (digest, size, path)  # idempotent
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_store_detects_modified_file(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    digest, _, path = store.save_bytes(b"original")
    path.write_bytes(b"modified")
    with pytest.raises(ArtifactIntegrityError, match=f"{path}.*expected {digest}"):
        store.load_bytes(digest)


@pytest.mark.parametrize("digest", ["../../etc/passwd", "ABC", "0" * 63, "g" * 64])
def test_store_refuses_malformed_digests(tmp_path: Path, digest: str) -> None:
    with pytest.raises(ArtifactIntegrityError, match="Invalid artifact digest"):
        ArtifactStore(tmp_path).path_for(digest)


def test_store_delete(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    digest, _, _ = store.save_bytes(b"x")
    assert store.delete(digest) is True
    assert not store.exists(digest)
    assert store.delete(digest) is False


# ----------------------------------------------------------- trusted-type policy


def test_library_models_load_without_extra_trust() -> None:
    model = DecisionTreeClassifier(random_state=0).fit([[0], [1], [2]], [0, 1, 1])
    data = dump_estimator(model)
    assert untrusted_types(data) == []
    np.testing.assert_array_equal(load_estimator(data).predict([[0], [2]]), [0, 1])


def test_user_class_is_refused_unless_trusted(registry: Registry) -> None:
    est = ThresholdClassifier(threshold=1.5).fit([[0], [3]], [0, 1])
    registry.register_model("custom", estimator=est, metrics={}, params={}, input_schema={})
    with pytest.raises(ArtifactIntegrityError, match=f"outside the trusted list: {CUSTOM_TYPE}"):
        registry.load_model("custom")
    loaded = registry.load_model("custom", trusted=[CUSTOM_TYPE])
    assert loaded.threshold == 1.5
    np.testing.assert_array_equal(loaded.predict([[1.0], [2.0]]), [0, 1])


def test_builtins_functions_are_never_trusted() -> None:
    data = sio.dumps({"f": eval})
    assert untrusted_types(data) == ["builtins.eval"]
    with pytest.raises(ArtifactIntegrityError, match="builtins.eval"):
        load_estimator(data)


def test_file_touching_numpy_functions_are_refused() -> None:
    # Trust is by exact type name: no numpy function is on the allow-list.
    data = sio.dumps(FunctionTransformer(func=np.save))
    with pytest.raises(ArtifactIntegrityError, match="numpy.save"):
        load_estimator(data)


def test_garbage_is_not_a_skops_file() -> None:
    with pytest.raises(ArtifactIntegrityError, match="not a readable skops file"):
        load_estimator(os.urandom(64))


# ---------------------------------------------------------------- model references


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("churn", ("churn", None, None)),
        ("churn:3", ("churn", 3, None)),
        ("churn/3", ("churn", 3, None)),
        ("churn:latest", ("churn", None, None)),
        ("churn@champion", ("churn", None, "champion")),
        ("iris.v2-rf@prod-1", ("iris.v2-rf", None, "prod-1")),
    ],
)
def test_parse_model_ref(ref: str, expected: tuple) -> None:
    assert parse_model_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "churn:", "churn:0", "churn:x", "churn@", "churn@12", "-x"])
def test_parse_model_ref_rejects_malformed(ref: str) -> None:
    with pytest.raises(ConfigError, match="Invalid"):
        parse_model_ref(ref)
