"""``fleetlearn.serving:build_app``: the Serve application a config file (``serve deploy``,
KubeRay's RayService ``serveConfigV2``) imports. Built here as Ray Serve builds it, with
Ray's own import and builder call, and no Ray started (the unit conftest forbids it)."""

from __future__ import annotations

import pytest
from ray import serve
from ray._common.utils import import_attr
from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

from fleetlearn.errors import ConfigError
from fleetlearn.serving._ray_serve import APP_NAME, TARGET_ONGOING_REQUESTS

IMPORT_PATH = "fleetlearn.serving:build_app"


def _build(args: dict) -> serve.Application:
    return call_user_app_builder_with_args_if_necessary(import_attr(IMPORT_PATH), args)


def test_the_import_path_builds_the_fleetlearn_deployment_with_its_autoscaling() -> None:
    app = _build({"replicas": 2, "max_replicas": 5, "num_cpus": 0.5, "host": "0.0.0.0",
                  "max_rows": 5000})
    assert isinstance(app, serve.Application)
    deployment = app._bound_deployment
    assert deployment.name == APP_NAME
    scaling = deployment._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.initial_replicas, scaling.max_replicas) == (2, 2, 5)
    assert scaling.target_ongoing_requests == TARGET_ONGOING_REQUESTS
    assert deployment.ray_actor_options["num_cpus"] == 0.5
    # The replicas get only the settings given (checked); the rest, secrets included,
    # each replica reads from its own environment.
    assert deployment.init_args == ({"host": "0.0.0.0", "max_rows": 5000}, "micro")


def test_no_args_gives_one_replica_and_no_settings() -> None:
    deployment = _build({})._bound_deployment
    scaling = deployment._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 1)
    assert deployment.init_args == ({}, "micro")


def test_values_from_a_config_file_are_converted_and_checked() -> None:
    deployment = _build({"replicas": "3", "batching": "serve", "max_rows": "200"})._bound_deployment
    assert deployment._deployment_config.autoscaling_config.min_replicas == 3
    assert deployment.init_args == ({"max_rows": 200}, "serve")


@pytest.mark.parametrize(("args", "message"), [
    ({"replica": 2}, "'replica' is not an argument of fleetlearn's Serve app. Did you mean "
                     "'replicas'?"),
    ({"replicas": "two"}, "replicas of fleetlearn's Serve app must be a whole number, got 'two'."),
    ({"replicas": 1.5}, "replicas of fleetlearn's Serve app must be a whole number, got 1.5."),
    ({"replicas": 0}, "--replicas must be at least 1, got 0."),
    ({"batching": "ray"}, "batching must be one of serve, micro, got 'ray'."),
    ({"max_rows": 0}, "max_rows must be at least 1, got 0."),
    ({"host": "0.0.0.0", "auth": "off"}, "Refusing to serve on 0.0.0.0 without API keys"),
])
def test_bad_args_fail_with_one_sentence_naming_them(args: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _build(args)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_the_environment_fills_what_the_args_leave_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # A bad FLEETLEARN_SERVE_* value on the node fails the build, naming the variable.
    monkeypatch.setenv("FLEETLEARN_SERVE_MAX_ROWS", "-1")
    with pytest.raises(ConfigError, match="FLEETLEARN_SERVE_MAX_ROWS='-1' is not valid"):
        _build({})
