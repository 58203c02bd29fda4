"""Schemathesis over /openapi.json, every check on, keys on, every operation: with an
admin key, with a read key, and with no key at all.

Runs on the ASGI app (no server, no Ray) with registered models and an API key of
each role, so predict, alias, key, upload and run routes do real work; positive and
negative data. Every answer must match what the spec declares for it (status code,
content type, headers, body schema: fleetlearn's error body on every 4xx/5xx), a
wrong method must be a 405 with a correct ``Allow``, a request without a key a 401.

One rule is fleetlearn's own, in place of ``positive_data_acceptance``: a request the
spec calls valid may still be refused for what only the server knows (a model's
columns, a dataset that is not in the data folder, a table that is not a table), but
then with a 422 naming that (``InputError``, ``DataFileNotFoundError``, ...), never a
``ValidationError``, which would mean the spec and the server disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from model_fixtures import open_registry, serving_registry
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.generation import GenerationMode

from fleetlearn.api import create_app
from fleetlearn.security import role_allows
from fleetlearn.serving import ServeSettings, ServingState

MODELS = ("toy-logreg", "toy-forest", "house-ridge")
FEATURES = {"toy-logreg": ("x", "flag", "color", "when"),
            "toy-forest": ("x", "flag", "color", "when"), "house-ridge": ("a", "b", "shop")}
#: The key every generated request carries (admin: it may call every operation).
SECRETS: dict[str, str] = {}
#: Keys the test itself uses, never to be revoked by a generated request.
PROTECTED_KEYS: set[str] = set()


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    reg, _ = serving_registry(folder)
    key, SECRETS["admin"] = reg.create_api_key("schemathesis-admin", "admin")
    PROTECTED_KEYS.update({str(key.id), key.name, key.prefix})
    key, SECRETS["read"] = reg.create_api_key("schemathesis-read", "read")
    PROTECTED_KEYS.update({str(key.id), key.name, key.prefix})
    reg.close()
    (folder / "data").mkdir()
    config = ServeSettings(registry_url=f"sqlite:///{folder / 'registry.db'}",
                           artifact_dir=str(folder / "artifacts"), auth="on", max_rows=50,
                           data_dir=str(folder / "data"), upload_max_mb=1.0,
                           # A run that passes every check would start a training process:
                           # pointed at a dead Ray address, it stops at once.
                           ray_address="127.0.0.1:1",
                           refresh_s=0.05, stats_flush_s=3600.0)
    state = ServingState(config, registry=open_registry(folder))
    app = create_app(config, state=state)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    load_all_checks()
    schema.config.checks.update(included_check_names=["all"])
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        # The key is the test's (every request carries the admin one; 'ignored_auth'
        # drops it and expects 401): not a generated header to mutate.
        with_security_parameters=False,
        # Unknown query parameters are ignored, as HTTP APIs do; the spec never says
        # otherwise (OpenAPI cannot), so they are not "invalid data" to reject.
        allow_extra_parameters=False)
    yield schema
    state.registry.close()


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _pytest9_node_id(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy loader renames the test through ``node._nodeid``, an
    # attribute pytest 9 no longer has: give it one to write to.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def _steer(case: schemathesis.Case) -> None:
    """Point most generated model names at registered models, records at their columns.

    Values of every JSON type then reach a real model's validation and prediction, not
    only a 404; the test's own key is never revoked by a generated request.
    """
    params = case.path_parameters or {}
    if params.get("key") in PROTECTED_KEYS:
        params["key"] = "no-such-key"
    name = params.get("name")
    if isinstance(name, str) and len(name) % 4 != 0:
        name = params["name"] = MODELS[len(name) % 3]
        records = case.body.get("records") if isinstance(case.body, dict) else None
        if isinstance(case.body, dict) and case.path.endswith("/predict"):
            columns = FEATURES[name]
            columns_sent = case.body.get("columns")
            if isinstance(columns_sent, list) and len(columns_sent) <= len(columns):
                case.body["columns"] = list(columns[:len(columns_sent)])
            for i, record in enumerate(records if isinstance(records, list) else []):
                if isinstance(record, dict):
                    values = list(record.values())
                    records[i] = {c: values[j] if j < len(values) else None
                                  for j, c in enumerate(columns)}


@schema.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_what_the_spec_declares(case: schemathesis.Case) -> None:
    _steer(case)
    positive = CHECKS.get_one("positive_data_acceptance")
    response = case.call(headers={"Authorization": f"Bearer {SECRETS['admin']}"})
    case.validate_response(response, excluded_checks=[positive],
                           headers={"Authorization": f"Bearer {SECRETS['admin']}"})
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("detail"), str), body
        assert isinstance(body.get("error"), str), body
    if (case.meta is not None and case.meta.generation.mode.is_positive
            and response.status_code == 422):
        assert response.json()["error"] != "ValidationError", (
            f"the spec calls this request valid, FastAPI's validation refused it: "
            f"{response.text}")
    elif case.meta is not None and case.meta.generation.mode.is_positive:
        case.validate_response(response, checks=[positive])


def _role(case: schemathesis.Case) -> str | None:
    """The role the spec says an operation needs (None: open, like /healthz)."""
    return case.operation.definition.raw.get("x-fleetlearn-role")


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_without_a_key_or_with_a_read_key_is_refused_or_answered_as_declared(
        case: schemathesis.Case) -> None:
    _steer(case)
    positive = CHECKS.get_one("positive_data_acceptance")
    role = _role(case)
    for who, headers in (("nobody", {}),
                         ("read", {"Authorization": f"Bearer {SECRETS['read']}"})):
        response = case.call(headers=headers)
        assert response.status_code < 500, (who, response.text)
        case.validate_response(response, excluded_checks=[positive], headers=headers)
        if response.status_code >= 400:
            body = response.json()
            assert isinstance(body.get("detail"), str), body
            assert isinstance(body.get("error"), str), body
        if role is None or case.method.lower() != case.operation.method.lower():
            continue  # open, or a method the path does not answer (405 before any key)
        if who == "nobody":
            assert response.status_code == 401, (case.method, case.path, response.text)
            challenge = response.headers.get("www-authenticate") or [""]
            assert str(challenge[0] if isinstance(challenge, list) else challenge
                       ).lower().startswith("bearer")
        elif not role_allows("read", role):
            assert response.status_code == 403, (case.method, case.path, response.text)
            assert f"'{role}'" in response.json()["detail"]
        else:
            assert response.status_code not in (401, 403), (case.path, response.text)
