"""Integration tests share one local Ray instance for the whole session (``ray_session``,
in ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh fleetlearn home (registry + artifacts) for one test."""
    folder = tmp_path / "home"
    monkeypatch.setenv("FLEETLEARN_HOME", str(folder))
    monkeypatch.delenv("FLEETLEARN_REGISTRY_URL", raising=False)
    return folder


@pytest.fixture
def iris(tmp_path: Path) -> Path:
    """scikit-learn's iris table as a CSV (target column ``target``)."""
    from sklearn.datasets import load_iris

    path = tmp_path / "iris.csv"
    load_iris(as_frame=True).frame.to_csv(path, index=False)
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
