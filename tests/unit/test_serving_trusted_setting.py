"""``ServeSettings.trusted_types`` (``--trust``, ``FLEETLEARN_SERVE_TRUSTED_TYPES``): the
model cache of a running app loads an artifact holding an opted-in exact type, merged
with ``FLEETLEARN_TRUSTED_TYPES``, and refuses it otherwise; the model version answer
lists the artifact's types.

A real SQLite registry and the app in memory; the artifact holds ``copy.copy`` in a
``FunctionTransformer`` (a callable fleetlearn never writes, harmless to run).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from model_fixtures import (
    ServingModels,
    open_registry,
    records_of,
    regression_frame,
    serving_registry,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from fleetlearn.api import create_app
from fleetlearn.cli import main
from fleetlearn.data import coerce_frame
from fleetlearn.errors import ConfigError
from fleetlearn.registry import TRUSTED_TYPES_ENV, Registry, untrusted_types
from fleetlearn.serving import ServeSettings, ServingState


@pytest.fixture(autouse=True)
def _no_trust_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRUSTED_TYPES_ENV, raising=False)
    monkeypatch.delenv("FLEETLEARN_SERVE_TRUSTED_TYPES", raising=False)


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, ServingModels, list[str]]:
    reg, models = serving_registry(tmp_path)
    ds = models.datasets["house"]
    custom = Pipeline([("copy", FunctionTransformer(func=copy.copy)),
                       ("m", models.pipelines["house-ridge"])])
    mv = reg.register_model("house-copy", estimator=custom, metrics={}, params={},
                            input_schema=ds.schema.to_dict())
    needed = untrusted_types(reg.load_artifact(mv))
    reg.close()
    # FunctionTransformer is not on the allow-list either: fleetlearn never writes one.
    assert "copy.copy" in needed, needed
    return tmp_path, models, needed


@contextmanager
def serve(home: Path, **settings: Any) -> Iterator[TestClient]:
    config = ServeSettings(registry_url=f"sqlite:///{home / 'registry.db'}",
                           artifact_dir=str(home / "artifacts"), stats_flush_s=3600.0,
                           **settings)
    reg: Registry = open_registry(home)
    app = create_app(config, state=ServingState(config, registry=reg))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    reg.close()


def _records() -> list[dict[str, Any]]:
    return records_of(regression_frame(4, seed=9), drop=("price",))


def _ridge_predictions(models: ServingModels) -> list[float]:
    frame = coerce_frame(pd.DataFrame(_records()), models.datasets["house"].schema)
    return models.pipelines["house-ridge"].predict(frame).tolist()


def test_without_the_opt_in_the_model_is_refused_naming_its_type(served) -> None:
    home, _, needed = served
    with serve(home) as client:
        r = client.post("/v1/models/house-copy/predict", json={"records": _records()})
    assert r.status_code == 500, r.text
    assert r.json()["error"] == "ArtifactIntegrityError"
    assert all(name in r.json()["detail"] for name in needed)


def test_the_setting_lets_the_cache_load_that_exact_type(served) -> None:
    home, models, needed = served
    with serve(home, trusted_types=needed) as client:
        assert client.app.state.serving.cache.trusted == tuple(needed)
        r = client.post("/v1/models/house-copy/predict", json={"records": _records()})
        assert r.status_code == 200, r.text
        # copy.copy changes nothing: the same predictions as the ridge alone.
        np.testing.assert_allclose(r.json()["predictions"], _ridge_predictions(models),
                                   rtol=1e-9)
        version = client.get("/v1/models/house-copy").json()["versions"][0]
    assert set(needed) <= set(version["artifact_types"])
    assert version["artifact_types"] == sorted(version["artifact_types"])


def test_the_environment_setting_and_the_global_opt_in_merge(
        served, monkeypatch: pytest.MonkeyPatch) -> None:
    home, _, needed = served
    # One name from each source (or all from the global one): both are honoured.
    monkeypatch.setenv("FLEETLEARN_SERVE_TRUSTED_TYPES", ",".join(needed[:1]))
    monkeypatch.setenv(TRUSTED_TYPES_ENV, ",".join(needed[1:]) or "mypkg.Unused")
    with serve(home) as client:
        r = client.post("/v1/models/house-copy/predict", json={"records": _records()})
    assert r.status_code == 200, r.text


def test_the_model_version_schema_declares_artifact_types(served) -> None:
    home, _, _ = served
    with serve(home) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "artifact_types" in schema["ModelVersionPublic"]["properties"]
    responses = client.app.openapi()["paths"]["/v1/models/{name}/predict"]["post"]["responses"]
    assert "ArtifactIntegrityError" in responses["500"]["description"]


@pytest.mark.parametrize("prefix", ["sklearn.", "mypkg.*", "not a name"])
def test_a_prefix_is_refused_from_every_source(prefix: str, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="--trust or FLEETLEARN_SERVE_TRUSTED_TYPES"):
        ServeSettings(trusted_types=[prefix])
    assert main(["serve", "--trust", "mypkg.Model", "--trust", prefix]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert repr(prefix) in err[0], err
    monkeypatch.setenv("FLEETLEARN_SERVE_TRUSTED_TYPES", f"mypkg.Model,{prefix}")
    with pytest.raises(ConfigError, match=f"'{prefix[:5]}"):
        ServeSettings()


def test_trust_flags_reach_the_settings(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    # Stopped at the next check (a public host needs a key): the flags were accepted,
    # and they beat the environment's bad value, which is never read.
    monkeypatch.setenv("FLEETLEARN_SERVE_TRUSTED_TYPES", "sklearn.")
    assert main(["serve", "--trust", "mypkg.A", "--trust", "mypkg.B", "--host", "0.0.0.0",
                 "--registry", f"sqlite:///{tmp_path / 'r.db'}"]) == 2
    assert "Refusing to serve on 0.0.0.0: API keys are required" in capsys.readouterr().err
