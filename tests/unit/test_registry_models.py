"""Registry model versions, aliases, deletion, loading and the version stamp (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fleetlearn.errors import ArtifactIntegrityError, ConfigError, NotFoundError, RegistryError
from fleetlearn.registry import Registry, dump_estimator

X = np.array([[0.0, 1.0], [1.0, 0.5], [2.0, 0.1], [3.0, 2.0], [4.0, 1.5], [5.0, 0.0]])
Y = np.array([0, 0, 0, 1, 1, 1])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}", artifact_dir=tmp_path / "artifacts")
    yield reg
    reg.close()


@pytest.fixture(scope="module")
def pipeline():
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)


@pytest.fixture(scope="module")
def artifact(pipeline) -> bytes:
    return dump_estimator(pipeline)


def _register(registry: Registry, name: str, artifact: bytes, **kwargs):
    kwargs.setdefault("metrics", {"accuracy": 1.0})
    kwargs.setdefault("params", {"C": 1.0})
    kwargs.setdefault("input_schema", {"columns": ["a", "b"]})
    return registry.register_model(name, artifact=artifact, **kwargs)


def _lineage(registry: Registry):
    run = registry.create_run({}, seed=0)
    ds = registry.add_dataset(
        run.id,
        fingerprint="fp",
        name="iris",
        source=None,
        n_rows=6,
        n_features=2,
        task="classification",
        target="y",
        schema={},
    )
    trial = registry.ensure_trial(run.id, ds.id, "logreg", {})
    return run, ds, trial


# ------------------------------------------------------------------ registration


def test_register_twice_gives_versions_1_and_2(registry: Registry, pipeline) -> None:
    run, ds, trial = _lineage(registry)
    v1 = registry.register_model(
        "iris-logreg",
        estimator=pipeline,
        run_id=run.id,
        trial_id=trial.id,
        dataset_id=ds.id,
        metrics={"accuracy": np.float64(0.9)},
        params={"C": 1.0},
        input_schema={"columns": ["a", "b"]},
        tags={"team": "ml"},
        description="first",
    )
    v2 = registry.register_model(
        "iris-logreg", estimator=pipeline, metrics={}, params={}, input_schema={}
    )
    assert (v1.version, v2.version) == (1, 2)
    assert (v1.run_id, v1.trial_id, v1.dataset_id) == (run.id, trial.id, ds.id)
    assert v1.metrics == {"accuracy": 0.9}
    assert v1.tags == {"team": "ml"}
    assert registry.artifacts.path_for(v1.artifact_digest).stat().st_size == v1.artifact_size
    assert registry.get_model_version("iris-logreg", 1) == v1


def test_versions_are_numbered_per_name(registry: Registry, artifact: bytes) -> None:
    assert _register(registry, "a", artifact).version == 1
    assert _register(registry, "b", artifact).version == 1
    assert _register(registry, "a", artifact).version == 2


def test_register_needs_exactly_one_source(registry: Registry, pipeline, artifact) -> None:
    with pytest.raises(ConfigError, match="exactly one of estimator"):
        registry.register_model("m", metrics={}, params={}, input_schema={})
    with pytest.raises(ConfigError, match="exactly one of estimator"):
        registry.register_model(
            "m", estimator=pipeline, artifact=artifact, metrics={}, params={}, input_schema={}
        )


def test_register_rejects_bytes_that_are_not_skops(registry: Registry) -> None:
    with pytest.raises(ArtifactIntegrityError, match="not a readable skops file"):
        _register(registry, "m", b"not a zip file")


@pytest.mark.parametrize("name", ["", "-lead", "has space", "x" * 129, "a/b", "a@b"])
def test_register_rejects_invalid_names(registry: Registry, artifact, name: str) -> None:
    with pytest.raises(ConfigError, match="Invalid model name"):
        _register(registry, name, artifact)


def test_register_with_unknown_lineage_is_not_found(registry: Registry, artifact) -> None:
    with pytest.raises(NotFoundError, match="run 'nope' does not exist"):
        _register(registry, "m", artifact, run_id="nope")
    assert registry.list_models() == []


def test_register_with_journal_unit_records_both(registry: Registry, artifact) -> None:
    run, ds, trial = _lineage(registry)
    unit = {"trial_id": trial.id, "unit": "final", "status": "ok",
            "payload": {"fit_s": 0.1}, "duration_s": 0.1}  # fmt: skip
    mv = _register(registry, "m", artifact, trial_id=trial.id, journal_unit=unit)
    assert mv.version == 1
    assert (ds.id, "logreg", "final") in registry.completed_units(run.id)


def test_register_with_failing_journal_unit_adds_no_version(registry: Registry, artifact) -> None:
    # The unit refers to a trial that does not exist: the version insert that came
    # first in the same transaction must be rolled back with it.
    unit = {"trial_id": 9999, "unit": "final", "status": "ok", "payload": {}}
    with pytest.raises(NotFoundError, match="9999"):
        _register(registry, "m", artifact, journal_unit=unit)
    assert registry.list_models() == []
    assert _register(registry, "m", artifact).version == 1  # number 1 was not consumed


def test_register_with_unstorable_journal_payload_adds_no_version(
    registry: Registry, artifact
) -> None:
    # Here the database write itself fails (payload not JSON-serialisable).
    _, _, trial = _lineage(registry)
    unit = {"trial_id": trial.id, "unit": "final", "status": "ok", "payload": {"x": object()}}
    with pytest.raises(RegistryError, match="cannot store a value"):
        _register(registry, "m", artifact, journal_unit=unit)
    assert registry.list_models() == []


# ----------------------------------------------------------------------- lookups


def test_get_latest_by_version_and_by_alias(registry: Registry, artifact) -> None:
    for _ in range(3):
        _register(registry, "m", artifact)
    registry.set_alias("m", "champion", 2)
    assert registry.get_model_version("m").version == 3
    assert registry.get_model_version("m", version=1).version == 1
    champion = registry.get_model_version("m", alias="champion")
    assert champion.version == 2
    assert champion.aliases == ("champion",)
    with pytest.raises(ConfigError, match="not both"):
        registry.get_model_version("m", version=1, alias="champion")


def test_not_found_messages_guide_the_user(registry: Registry, artifact) -> None:
    for _ in range(3):
        _register(registry, "churn-rf", artifact)
    registry.delete_model_version("churn-rf", 2)
    registry.set_alias("churn-rf", "prod", 3)
    with pytest.raises(NotFoundError, match="'churn_rf'.*Did you mean 'churn-rf'"):
        registry.get_model_version("churn_rf")
    with pytest.raises(NotFoundError, match="no version 7. Existing versions: 1, 3"):
        registry.get_model_version("churn-rf", version=7)
    with pytest.raises(NotFoundError, match="no alias 'prd'.*Did you mean 'prod'.*aliases: prod"):
        registry.get_model_version("churn-rf", alias="prd")


def test_list_models_latest_per_name_or_all_versions(registry: Registry, artifact) -> None:
    for name in ["b", "a", "b", "b"]:
        _register(registry, name, artifact)
    registry.set_alias("b", "prod", 3)
    latest = registry.list_models()
    assert [(m.name, m.version) for m in latest] == [("a", 1), ("b", 3)]
    assert latest[1].aliases == ("prod",)
    assert [m.version for m in registry.list_models(name="b")] == [1, 2, 3]
    assert registry.list_models(name="zzz") == []


def test_list_models_filters_by_dataset_and_task(registry: Registry, artifact) -> None:
    run, ds, _ = _lineage(registry)
    _register(registry, "on-iris", artifact, run_id=run.id, dataset_id=ds.id)
    _register(registry, "no-lineage", artifact)
    assert [m.name for m in registry.list_models(dataset="iris")] == ["on-iris"]
    assert [m.name for m in registry.list_models(task="classification")] == ["on-iris"]
    assert registry.list_models(task="regression") == []
    assert [m.name for m in registry.list_models(run_id=run.id)] == ["on-iris"]
    assert registry.list_models(run_id="other") == []


# ----------------------------------------------------------------------- aliases


def test_alias_moves_and_can_be_deleted(registry: Registry, artifact) -> None:
    _register(registry, "m", artifact)
    _register(registry, "m", artifact)
    registry.set_alias("m", "champion", 1)
    registry.set_alias("m", "champion", 2)
    registry.set_alias("m", "previous", 1)
    assert registry.aliases("m") == {"champion": 2, "previous": 1}
    registry.delete_alias("m", "previous")
    assert registry.aliases("m") == {"champion": 2}
    with pytest.raises(NotFoundError, match="no alias 'previous'"):
        registry.delete_alias("m", "previous")


def test_alias_must_point_to_existing_version(registry: Registry, artifact) -> None:
    _register(registry, "m", artifact)
    with pytest.raises(NotFoundError, match="no version 5"):
        registry.set_alias("m", "champion", 5)
    with pytest.raises(NotFoundError, match="No model named 'x'"):
        registry.set_alias("x", "champion", 1)
    with pytest.raises(NotFoundError, match="No model named 'x'"):
        registry.aliases("x")
    assert registry.aliases("m") == {}


@pytest.mark.parametrize("alias", ["123", "", "a b", "@x"])
def test_invalid_alias_is_rejected(registry: Registry, artifact, alias: str) -> None:
    _register(registry, "m", artifact)
    with pytest.raises(ConfigError, match="Invalid alias"):
        registry.set_alias("m", alias, 1)


# ---------------------------------------------------------------------- deletion


def test_delete_version_removes_its_aliases_and_keeps_shared_artifact(
    registry: Registry, artifact
) -> None:
    v1 = _register(registry, "m", artifact)
    _register(registry, "m", artifact)  # same bytes: shares the artifact file
    registry.set_alias("m", "champion", 1)
    registry.set_alias("m", "latest-good", 2)
    registry.delete_model_version("m", 1)
    assert registry.aliases("m") == {"latest-good": 2}
    assert registry.artifacts.exists(v1.artifact_digest)
    assert registry.load_model("m", 2) is not None

    registry.delete_model_version("m", 2)
    assert not registry.artifacts.exists(v1.artifact_digest)
    with pytest.raises(NotFoundError, match="No model named 'm'"):
        registry.get_model_version("m")


def test_version_numbers_are_not_reused_after_deleting_an_older_one(
    registry: Registry, artifact
) -> None:
    for _ in range(3):
        _register(registry, "m", artifact)
    registry.delete_model_version("m", 2)
    assert _register(registry, "m", artifact).version == 4


def test_delete_unknown_version_is_not_found(registry: Registry, artifact) -> None:
    _register(registry, "m", artifact)
    with pytest.raises(NotFoundError, match="Existing versions: 1"):
        registry.delete_model_version("m", 3)


# ------------------------------------------------------------------ load, stamp


def test_load_model_round_trip(registry: Registry, pipeline) -> None:
    registry.register_model("m", estimator=pipeline, metrics={}, params={}, input_schema={})
    registry.set_alias("m", "champion", 1)
    for loaded in (registry.load_model("m"), registry.load_model("m", alias="champion")):
        np.testing.assert_array_equal(loaded.predict(X), pipeline.predict(X))
        np.testing.assert_allclose(loaded.predict_proba(X), pipeline.predict_proba(X))


def test_tampered_artifact_is_refused(registry: Registry, artifact) -> None:
    mv = _register(registry, "m", artifact)
    path = registry.artifacts.path_for(mv.artifact_digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match=f"{path.name}.*does not match"):
        registry.load_model("m")


def test_missing_artifact_is_reported(registry: Registry, artifact) -> None:
    mv = _register(registry, "m", artifact)
    registry.artifacts.path_for(mv.artifact_digest).unlink()
    with pytest.raises(ArtifactIntegrityError, match="is missing"):
        registry.load_model("m")


def test_version_stamp_changes_on_every_model_change(registry: Registry, artifact) -> None:
    stamps = [registry.version_stamp()]

    def changed() -> bool:
        stamps.append(registry.version_stamp())
        return stamps[-1] != stamps[-2]

    _register(registry, "m", artifact)
    assert changed()
    _register(registry, "m", artifact)
    assert changed()
    registry.get_model_version("m")
    registry.list_models()
    assert not changed()  # reads do not change it
    registry.set_alias("m", "champion", 1)
    assert changed()
    registry.set_alias("m", "champion", 2)  # alias moved
    assert changed()
    registry.delete_alias("m", "champion")
    assert changed()
    registry.delete_model_version("m", 2)
    assert changed()
    _register(registry, "m", artifact)  # same count as before the delete
    assert changed()
