"""API keys and auth: every route checks the role, keys are created, used, revoked.

The ASGI app in memory (no Ray, no network) over a real SQLite registry holding
models registered as training registers them (tests/model_fixtures.py); fixtures
in tests/api_fixtures.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import (
    PREDICT,
    ROLES,
    is_error,
    pipeline_says,
    serve,
    settings_for,
    toy_records,
)
from fastapi.testclient import TestClient
from model_fixtures import ServingModels, open_registry

from fleetlearn.errors import ConfigError
from fleetlearn.serving import ServeSettings, ServingState


def _routes(client: TestClient) -> list[tuple[str, Callable[[dict[str, str]], Any]]]:
    """(least role, request) for every protected route."""
    toy = {"records": toy_records(1)}
    return [
        ("read", lambda h: client.get("/v1/info", headers=h)),
        ("read", lambda h: client.get("/v1/models", headers=h)),
        ("read", lambda h: client.get("/v1/models/toy-logreg", headers=h)),
        ("read", lambda h: client.get("/v1/models/toy-logreg/versions/1", headers=h)),
        ("read", lambda h: client.get("/v1/stats", headers=h)),
        ("read", lambda h: client.get("/metrics", headers=h)),
        ("predict", lambda h: client.post(PREDICT.format("toy-logreg"), json=toy, headers=h)),
        ("admin", lambda h: client.put("/v1/models/toy-logreg/aliases/prod",
                                       json={"version": 1}, headers=h)),
        ("admin", lambda h: client.get("/v1/keys", headers=h)),
        ("admin", lambda h: client.post("/v1/keys", json={"name": "x", "role": "read"},
                                        headers=h)),
        ("admin", lambda h: client.delete("/v1/keys/x", headers=h)),
        ("admin", lambda h: client.put("/v1/models/toy-logreg/aliases/tmp",
                                       json={"version": 1}, headers=h)),
        ("admin", lambda h: client.delete("/v1/models/toy-logreg/aliases/tmp", headers=h)),
    ]


def test_every_route_checks_the_role(home: Path, keys: dict[str, str]) -> None:
    with serve(home) as client:
        assert client.get("/v1/info", headers={"authorization": f"Bearer {keys['read']}"}
                          ).json()["auth_required"] is True
        for needed, call in _routes(client):
            for role in ROLES:
                response = call({"authorization": f"Bearer {keys[role]}"})
                if ROLES.index(role) >= ROLES.index(needed):
                    assert response.status_code < 300, (needed, role, response.text)
                    if response.headers.get("content-type") == "application/json":
                        assert "error" not in response.json(), (needed, role, response.text)
                else:
                    body = is_error(response, 403, "Forbidden")
                    assert f"role '{role}'" in body["detail"]
                    assert needed in body["detail"]


def test_missing_unknown_and_revoked_keys_are_401(home: Path, keys: dict[str, str]) -> None:
    with serve(home, auth_failures_allowed=10_000) as client:  # no back-off here
        for _, call in _routes(client):
            for headers in ({}, {"authorization": "Bearer"},
                            {"authorization": f"Basic {keys['admin']}"},
                            {"authorization": "Bearer flk_not-a-real-key"},
                            {"authorization": f"Bearer {keys['revoked']}"}):
                response = call(headers)
                body = is_error(response, 401, "Unauthorized")
                assert response.headers["www-authenticate"] == "Bearer"
                assert "key" in body["detail"]
        # Health checks stay open for load balancers.
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["status"] == "ready"


def test_a_caller_without_the_role_hears_nothing_about_its_body(
        home: Path, keys: dict[str, str]) -> None:
    bad_bodies = [("post", "/v1/keys", b"{not json"), ("post", "/v1/keys", b'{"role": 7}'),
                  ("put", "/v1/models/m/aliases/prod", b"\xff\xfe"),
                  ("post", "/v1/runs", b'{"folds": "many"}')]
    with serve(home, auth_failures_allowed=10_000) as client:
        for method, path, body in bad_bodies:
            sent = {"content": body, "headers": {"content-type": "application/json"}}
            anonymous = client.request(method, path, **sent)
            assert is_error(anonymous, 401, "Unauthorized")["detail"].startswith(
                "An API key is required"), (path, anonymous.text)
            sent["headers"]["authorization"] = f"Bearer {keys['read']}"
            reader = client.request(method, path, **sent)
            assert "role 'read'" in is_error(reader, 403, "Forbidden")["detail"]
            sent["headers"]["authorization"] = f"Bearer {keys['admin']}"
            admin = client.request(method, path, **sent)
            assert is_error(admin, 422, "ValidationError")["errors"], (path, admin.text)


def test_an_address_that_keeps_failing_is_slowed_down_and_counted(
        home: Path, keys: dict[str, str]) -> None:
    good = {"authorization": f"Bearer {keys['read']}"}
    bad = {"authorization": "Bearer flk_guess"}
    with serve(home, auth_failures_allowed=3) as client:
        # A success forgives: failures must come in a row.
        for _ in range(2):
            is_error(client.get("/v1/models", headers=bad), 401)
        assert client.get("/v1/models", headers=good).status_code == 200
        for _ in range(3):
            is_error(client.get("/v1/models", headers=bad), 401)
        is_error(client.get("/v1/models", headers=bad), 401)  # the 4th: blocked 1 s
        started = time.monotonic()
        blocked = client.get("/v1/models", headers=good)  # even a good key waits
        body = is_error(blocked, 429, "TooManyRequests")
        assert "Too many failed authentications" in body["detail"]
        assert int(blocked.headers["retry-after"]) == 1
        time.sleep(max(0.0, 1.05 - (time.monotonic() - started)))
        assert client.get("/v1/models", headers=good).status_code == 200
        metrics = client.get("/metrics", headers=good).text
    assert 'fleetlearn_auth_failures_total{client="testclient"} 6.0' in metrics
    assert 'fleetlearn_auth_throttled_total{client="testclient"} 1.0' in metrics


def test_key_revoked_while_serving_stops_working(home: Path, keys: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fleetlearn.serving._state.KEY_CACHE_S", 0.0)
    headers = {"authorization": f"Bearer {keys['predict']}"}
    with serve(home) as client:
        listed = client.get("/v1/models", headers=headers).json()["data"]
        assert {m["name"] for m in listed} == {"toy-logreg", "toy-forest", "house-ridge"}
        open_registry(home).revoke_api_key("predict-key")
        is_error(client.get("/v1/models", headers=headers), 401)


def test_key_routes_create_list_revoke(home: Path, keys: dict[str, str], models: ServingModels,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fleetlearn.serving._state.KEY_CACHE_S", 0.0)
    admin = {"authorization": f"Bearer {keys['admin']}"}
    with serve(home) as client:
        created = client.post("/v1/keys", json={"name": "ci", "role": "predict"}, headers=admin)
        assert created.status_code == 201, created.text
        assert (created.json()["name"], created.json()["role"]) == ("ci", "predict")
        secret = created.json()["key"]
        assert secret.startswith("flk_")
        assert created.json()["prefix"] == secret[:8]
        mine = {"authorization": f"Bearer {secret}"}
        # The new key works on the next request, and that request is answered in full.
        answer = client.post(PREDICT.format("toy-logreg"), json={"records": toy_records(2)},
                             headers=mine)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == pipeline_says(models, "toy-logreg",
                                                             toy_records(2))
        listed = client.get("/v1/keys", headers=admin).json()
        assert {k["name"] for k in listed} == {"ci", *(f"{r}-key" for r in ROLES)}
        assert all("key" not in k and "key_hash" not in k for k in listed)
        (ci,) = [k for k in listed if k["name"] == "ci"]
        assert (ci["role"], ci["prefix"], ci["revoked_at"]) == ("predict", secret[:8], None)
        every = client.get("/v1/keys?include_revoked=true", headers=admin).json()
        assert "old" in {k["name"] for k in every}
        revoked = client.delete("/v1/keys/ci", headers=admin).json()
        assert (revoked["name"], revoked["role"]) == ("ci", "predict")
        assert revoked["revoked_at"] is not None
        stored = {k.name: k for k in open_registry(home).list_api_keys(include_revoked=True)}
        assert stored["ci"].revoked_at is not None
        is_error(client.get("/v1/models", headers=mine), 401)
        is_error(client.post("/v1/keys", json={"name": "y", "role": "root"}, headers=admin),
                 422)
        is_error(client.delete("/v1/keys/nobody", headers=admin), 404, "NotFoundError")


def test_key_last_use_is_recorded(home: Path, keys: dict[str, str]) -> None:
    with serve(home) as client:
        client.get("/v1/models", headers={"authorization": f"Bearer {keys['read']}"})
    key = next(k for k in open_registry(home).list_api_keys() if k.name == "read-key")
    assert key.last_used_at is not None


def test_auto_auth_turns_on_once_a_key_exists(home: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fleetlearn.serving._state.KEY_CACHE_S", 0.0)
    with serve(home) as client:
        open_list = client.get("/v1/models")  # loopback, no keys: open
        assert open_list.status_code == 200, open_list.text
        assert open_list.json()["count"] == 3
        created = client.post("/v1/keys", json={"name": "first", "role": "admin"}).json()
        assert (created["name"], created["role"]) == ("first", "admin")
        is_error(client.get("/v1/models"), 401)
        headers = {"authorization": f"Bearer {created['key']}"}
        assert client.get("/v1/models", headers=headers).json() == open_list.json()
        assert client.get("/v1/info", headers=headers).json()["auth_required"] is True


def test_auth_on_requires_keys_even_on_loopback(home: Path) -> None:
    with serve(home, auth="on") as client:
        is_error(client.get("/v1/models"), 401)


def test_auth_off_never_asks_for_keys_on_loopback(home: Path, keys: dict[str, str]) -> None:
    with serve(home, auth="off") as client:
        listed = client.get("/v1/keys")
        assert listed.status_code == 200, listed.text
        assert {k["name"] for k in listed.json()} == {f"{r}-key" for r in ROLES}


def test_non_loopback_requires_keys_even_without_any(home: Path) -> None:
    state = ServingState(settings_for(home, host="0.0.0.0"), registry=open_registry(home))
    assert state.auth_required is True
    state.registry.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_auth_off_is_refused_off_loopback(host: str) -> None:
    with pytest.raises(ConfigError, match=f"Refusing to serve on {host} without API keys"):
        ServeSettings(host=host, auth="off")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_auth_off_is_allowed_on_loopback(host: str) -> None:
    assert ServeSettings(host=host, auth="off").auth == "off"

