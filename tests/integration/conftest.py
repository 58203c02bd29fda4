"""Integration tests share one local Ray instance for the whole session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One embedded Ray for every integration test (starting one costs ~5 s).

    Its own HOME and RAY_TMPDIR keep Ray's auth token and session files out of the
    user's home. The temp dir path is short: Ray's unix sockets live there.
    """
    import ray

    tmp = tempfile.mkdtemp(prefix="flr-", dir="/tmp")
    saved = {k: os.environ.get(k) for k in ("HOME", "RAY_TMPDIR", "RAY_ADDRESS")}
    os.environ["HOME"] = tmp
    os.environ["RAY_TMPDIR"] = tmp
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             object_store_memory=80 * 2**20, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh fleetlearn home (registry + artifacts) for one test."""
    folder = tmp_path / "home"
    monkeypatch.setenv("FLEETLEARN_HOME", str(folder))
    monkeypatch.delenv("FLEETLEARN_REGISTRY_URL", raising=False)
    return folder


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
