"""Unit tests are fast and never start Ray: any attempt fails the test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("unit tests must not start Ray; move this test to tests/integration")

    monkeypatch.setattr(ray, "init", refuse)
    # Run after the integration suite in one session, Ray may still be connected:
    # unit tests must behave as in a fresh process.
    monkeypatch.setattr(ray, "is_initialized", lambda: False)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("FLEETLEARN_HOME", str(home / "fleetlearn"))
    monkeypatch.delenv("FLEETLEARN_REGISTRY_URL", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
