"""Fixtures and helpers for the tests of the HTTP API (tests/unit/test_api_*.py).

A registry with the serving models (``model_fixtures.serving_registry``) is built once per
session and copied for each test (tests move aliases, add versions...); ``serve`` starts the
app with its lifespan over such a copy. The fixtures are registered for tests/unit by
tests/unit/conftest.py.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
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
from prometheus_client.parser import text_string_to_metric_families

from fleetlearn.api import create_app
from fleetlearn.data import coerce_frame
from fleetlearn.registry import Registry
from fleetlearn.serving import ServeSettings, ServingState

__all__ = [
    "PREDICT", "ROLES", "template", "home", "models", "registry", "client", "keys",
    "settings_for", "serve", "state_of", "toy_records", "house_records", "is_error", "poll",
    "metrics_of", "sample", "pipeline_says",
]

PREDICT = "/v1/models/{}/predict"


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ServingModels]:
    folder = tmp_path_factory.mktemp("served")
    reg, models = serving_registry(folder)
    reg.close()
    return folder, models


@pytest.fixture
def home(template: tuple[Path, ServingModels], tmp_path: Path) -> Iterator[Path]:
    """A private copy of the module's registry (tests move aliases, add versions...)."""
    folder = tmp_path / "served"
    shutil.copytree(template[0], folder)
    return folder


@pytest.fixture
def models(template: tuple[Path, ServingModels]) -> ServingModels:
    return template[1]


@pytest.fixture
def registry(home: Path) -> Iterator[Registry]:
    reg = open_registry(home)
    yield reg
    reg.close()


def settings_for(home: Path, **overrides: Any) -> ServeSettings:
    values: dict[str, Any] = {
        "registry_url": f"sqlite:///{home / 'registry.db'}",
        "artifact_dir": str(home / "artifacts"),
        "refresh_s": 0.02,
        "stats_flush_s": 3600.0,
        "batch_wait_ms": 1.0,
    }
    values.update(overrides)
    return ServeSettings(**values)


@contextmanager
def serve(home: Path, **overrides: Any) -> Iterator[TestClient]:
    """A started app (lifespan run: preload, then flush at exit) over ``home``'s registry."""
    settings = settings_for(home, **overrides)
    app = create_app(settings, state=ServingState(settings, registry=open_registry(home)))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    app.state.serving.registry.close()


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    with serve(home) as c:
        yield c


def state_of(client: TestClient) -> ServingState:
    return client.app.state.serving  # type: ignore[attr-defined]


def toy_records(n: int = 3, seed: int = 5) -> list[dict[str, Any]]:
    return records_of(mixed_frame(n, seed=seed), drop=("label",))


def house_records(n: int = 3) -> list[dict[str, Any]]:
    return records_of(regression_frame(n, seed=9), drop=("price",))


def is_error(response: httpx.Response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body.get("detail"), str), body
    assert body["detail"], body
    assert isinstance(body.get("error"), str), body
    assert body["error"], body
    if error is not None:
        assert body["error"] == error, body
    return body


def poll(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def metrics_of(client: TestClient, headers: dict[str, str] | None = None) -> dict[tuple, float]:
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: dict[tuple, float] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def sample(metrics: dict[tuple, float], name: str, **labels: str) -> float:
    return metrics.get((name, *sorted(labels.items())), 0.0)


ROLES = ("read", "predict", "train", "admin")


@pytest.fixture
def keys(home: Path) -> dict[str, str]:
    reg = open_registry(home)
    out = {role: reg.create_api_key(f"{role}-key", role)[1] for role in ROLES}
    revoked = reg.create_api_key("old", "admin")[1]
    reg.revoke_api_key("old")
    out["revoked"] = revoked
    reg.close()
    return out


def pipeline_says(models: ServingModels, name: str, records: list[dict[str, Any]]) -> list:
    """What the fitted pipeline behind ``name`` predicts for ``records`` (the expected answer)."""
    ds = models.datasets["toy" if name.startswith("toy") else "house"]
    return models.pipelines[name].predict(coerce_frame(pd.DataFrame(records), ds.schema)).tolist()
