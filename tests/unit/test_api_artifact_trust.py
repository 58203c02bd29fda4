"""A bad artifact behind a running server: that model answers a JSON error, others serve.

The app runs in memory (lifespan included) over a real SQLite registry whose artifact
files are edited on disk while it serves.
"""

from __future__ import annotations

import re
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
    mixed_frame,
    open_registry,
    records_of,
    regression_frame,
    serving_registry,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from fleetlearn.api import create_app
from fleetlearn.data import coerce_frame
from fleetlearn.registry import TRUSTED_TYPES_ENV, Registry
from fleetlearn.serving import ServeSettings, ServingState


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, ServingModels]:
    reg, models = serving_registry(tmp_path)
    reg.close()
    return tmp_path, models


@contextmanager
def serve(home: Path) -> Iterator[TestClient]:
    settings = ServeSettings(registry_url=f"sqlite:///{home / 'registry.db'}",
                             artifact_dir=str(home / "artifacts"), refresh_s=0.02,
                             stats_flush_s=3600.0, batch_wait_ms=1.0)
    app = create_app(settings, state=ServingState(settings, registry=open_registry(home)))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    app.state.serving.registry.close()


def _artifact(home: Path, name: str) -> Path:
    reg = open_registry(home)
    try:
        mv = reg.get_model_version(name)
        return reg.artifacts.path_for(mv.artifact_digest)
    finally:
        reg.close()


def _records(name: str) -> list[dict[str, Any]]:
    if name.startswith("house"):
        return records_of(regression_frame(4, seed=9), drop=("price",))
    return records_of(mixed_frame(4, seed=5), drop=("label",))


def _expected(models: ServingModels, name: str) -> list[Any]:
    ds = models.datasets["house" if name.startswith("house") else "toy"]
    frame = coerce_frame(pd.DataFrame(_records(name)), ds.schema)
    return models.pipelines[name].predict(frame).tolist()


def _failures(client: TestClient) -> dict[tuple[str, str, str], float]:
    text = client.get("/metrics").text
    found = {}
    for m in re.finditer(r'^fleetlearn_model_load_failures_total\{(.*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        found[(labels["model"], labels["version"], labels["reason"])] = float(m.group(2))
    return found


def _serves_correctly(client: TestClient, models: ServingModels, name: str) -> None:
    r = client.post(f"/v1/models/{name}/predict", json={"records": _records(name)})
    assert r.status_code == 200, r.text
    got, want = r.json()["predictions"], _expected(models, name)
    if name.startswith("house"):
        np.testing.assert_allclose(got, want, rtol=1e-9)
    else:
        assert got == want


def test_a_tampered_artifact_answers_json_naming_the_integrity_failure(served) -> None:
    home, models = served
    with serve(home) as client:
        _serves_correctly(client, models, "house-ridge")  # loaded before the tampering
        path = _artifact(home, "toy-forest")
        original = path.read_bytes()
        path.write_bytes(original[:-10] + b"0123456789")

        for attempt in (1, 2):  # a failed load is not cached: each request re-checks
            r = client.post("/v1/models/toy-forest/predict",
                            json={"records": _records("toy-forest")})
            assert r.headers["content-type"].startswith("application/json")
            body = r.json()
            assert r.status_code == 500, body
            assert body["error"] == "ArtifactIntegrityError"
            assert body["detail"].startswith("Integrity check failed for model toy-forest:1")
            assert "sha256" in body["detail"]
            assert "Traceback" not in r.text
            assert _failures(client)[("toy-forest", "1", "integrity")] == attempt

        # Every other model keeps serving, the one loaded before and one loaded after.
        _serves_correctly(client, models, "house-ridge")
        _serves_correctly(client, models, "toy-logreg")
        assert {k[0] for k in _failures(client)} == {"toy-forest"}

        path.write_bytes(original)  # repaired: the next request loads it
        _serves_correctly(client, models, "toy-forest")


def test_an_untrusted_artifact_is_refused_naming_the_type(served) -> None:
    home, models = served
    reg: Registry = open_registry(home)
    ds = models.datasets["house"]
    sneaky = Pipeline([("f", FunctionTransformer(func=np.testing.assert_equal)),
                       ("m", models.pipelines["house-ridge"])])
    reg.register_model("house-sneaky", estimator=sneaky, metrics={}, params={},
                       input_schema=ds.schema.to_dict())
    reg.close()
    with serve(home) as client:
        r = client.post("/v1/models/house-sneaky/predict",
                        json={"records": _records("house")})
        body = r.json()
        assert r.status_code == 500, body
        assert body["error"] == "ArtifactIntegrityError"
        assert "Refusing to load model house-sneaky:1" in body["detail"]
        assert "numpy.testing._private.utils.assert_equal" in body["detail"]
        assert TRUSTED_TYPES_ENV in body["detail"]
        assert _failures(client) == {("house-sneaky", "1", "untrusted"): 1.0}
        _serves_correctly(client, models, "house-ridge")
