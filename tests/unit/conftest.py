"""Unit tests are fast and never start Ray: any attempt fails the test."""

from __future__ import annotations

import api_fixtures
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



# The HTTP API's fixtures for tests/unit/test_api_*.py and test_serving_cache.py, bound
# here by name so pytest finds them in every unit module (an import in each test module
# would be shadowed by the test's parameters, which ruff reports as F811).
client = api_fixtures.client
home = api_fixtures.home
keys = api_fixtures.keys
models = api_fixtures.models
registry = api_fixtures.registry
template = api_fixtures.template
