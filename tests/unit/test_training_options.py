"""The run declared once: every option of :class:`RunOptions` reaches each of the five
entry points (run files, ``fleetlearn train``, ``fleetlearn.train()``, the API body,
``Client.start_run``) with the same default and the same bound.

No Ray: the CLI and ``train()`` are stopped where they hand the checked options to
the driver.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
import httpx
import pytest
import typer
import yaml
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sklearn.datasets import load_iris

import fleetlearn
import fleetlearn.cli.train as cli_train
import fleetlearn.training
import fleetlearn.training._execute as execute
from fleetlearn.api import create_app
from fleetlearn.cli import app, main
from fleetlearn.client import Client
from fleetlearn.config import fleetlearn_home
from fleetlearn.errors import ConfigError
from fleetlearn.serving import ServeSettings
from fleetlearn.training import (
    DatasetOptions,
    RunOptions,
    RunRequest,
    describe_field,
    load_run_file,
    options_error,
    target_for,
)

#: A value other than the default for every run option but the datasets. A new field
#: fails ``test_every_option_has_a_sample`` until it is added here, and then every
#: entry point test below checks it.
SAMPLE: dict[str, Any] = {
    "models": ["ridge", "random_forest:n_estimators=5"],
    "folds": 7,
    "test_size": 0.3,
    "metric": "balanced_accuracy",
    "seed": -42,
    "schedule": "sequential",
    "curves": False,
    "final_fit": False,
    "max_retries": 1,
    "quadratic_row_limit": 500,
    "name": "nightly",
    "extra": {"team": "ml"},
}
OPTIONS = [name for name in RunOptions.model_fields if name != "datasets"]


def _bounds(name: str) -> list[tuple[Any, bool]]:
    """Values just inside and just outside each declared bound: ``(value, accepted)``."""
    cases: list[tuple[Any, bool]] = []
    field = RunOptions.model_fields[name]
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            cases += [(meta.ge, True), (meta.ge - 1, False)]
        elif isinstance(meta, annotated_types.Gt):
            step = 0.01 if field.annotation is float else 1
            cases += [(meta.gt, False), (meta.gt + step, True)]
        elif isinstance(meta, annotated_types.Le):
            cases += [(meta.le, True), (meta.le + 1, False)]
        elif isinstance(meta, annotated_types.Lt):
            step = 0.01 if field.annotation is float else 1
            cases += [(meta.lt, False), (meta.lt - step, True)]
        elif isinstance(meta, annotated_types.MaxLen):
            cases += [("x" * meta.max_length, True), ("x" * (meta.max_length + 1), False)]
    if field.annotation is float:  # as a float option is typed and parsed
        cases = [(float(value), ok) for value, ok in cases]
    return cases


BOUNDED = [(name, value, ok) for name in OPTIONS for value, ok in _bounds(name)]
BAD_CHOICES = [("schedule", "concurent"), ("curves", "maybe"), ("folds", "five")]


def _expected(tmp_path: Path, **options: Any) -> RunOptions:
    return RunOptions(datasets=[DatasetOptions(str(tmp_path / "a.csv"), "y")], **options)


def _message(name: str, value: Any) -> str:
    """The one sentence every entry point answers a bad value with."""
    with pytest.raises(ConfigError) as info:
        RunOptions(datasets=[DatasetOptions("a.csv", "y")], **{name: value})
    return str(info.value)


# ------------------------------------------------------------------ the declaration


def test_every_option_has_a_sample() -> None:
    assert set(SAMPLE) == set(OPTIONS)
    defaults = RunOptions(datasets=[DatasetOptions("a.csv", "y")])
    for name, value in SAMPLE.items():
        assert getattr(defaults, name) != value, f"SAMPLE[{name!r}] is the default"


def test_every_option_has_help_text() -> None:
    for name, field in RunOptions.model_fields.items():
        assert field.description, f"{name} has no description"


def test_bound_errors_name_the_option_and_the_range() -> None:
    assert _message("folds", 1) == ("The 'folds' option must be an int in the range [2, inf). "
                                    "Got 1 instead.")
    assert _message("test_size", 1.0) == ("The 'test_size' option must be a float in the "
                                          "range (0, 1). Got 1.0 instead.")
    assert "[-2147483648, 2147483648)" in _message("seed", 2**31)
    assert _message("schedule", "concurent").endswith("Did you mean 'concurrent'?")
    # A bool is not an int, though Python says it is.
    assert "Got True instead" in _message("folds", True)


def test_dataset_entry_errors_name_the_dataset() -> None:
    with pytest.raises(ConfigError, match="'task' option of dataset 'a.csv'.*'regression'"):
        RunOptions(datasets=[{"path": "a.csv", "target": "y", "task": "regresion"}])
    with pytest.raises(ConfigError, match="Did you mean 'models'"):
        RunOptions(datasets=[{"path": "a.csv", "target": "y", "model": ["ridge"]}])
    with pytest.raises(ConfigError, match="No target column for a.csv"):
        DatasetOptions("a.csv", "")


def test_stored_options_round_trip_and_old_stored_configs_still_load() -> None:
    opts = RunOptions(datasets=[DatasetOptions("a.csv", "y", task="regression")], **SAMPLE)
    assert RunOptions.from_dict(json.loads(json.dumps(opts.to_dict()))) == opts
    # What a run stored before the options were a pydantic model (the dataclass's asdict).
    old = {"datasets": [{"path": "a.csv", "target": "y", "task": None, "name": None,
                         "models": None}], "models": None, "folds": 3, "test_size": 0.2,
           "metric": None, "seed": 9, "schedule": "concurrent", "curves": True,
           "final_fit": True, "max_retries": 3, "quadratic_row_limit": 10000, "name": None,
           "extra": {}}
    assert RunOptions.from_dict(old).to_dict() == old


def test_with_options_checks_the_changes() -> None:
    opts = RunOptions(datasets=[DatasetOptions("a.csv", "y")])
    assert opts.with_options(folds=3).folds == 3
    assert opts.folds == 5
    with pytest.raises(ConfigError, match="'folds' option"):
        opts.with_options(folds=1)


def test_target_lookup_tries_name_file_stem_path_then_star(tmp_path: Path) -> None:
    path = tmp_path / "data" / "wine.v2.csv"
    assert target_for("data/wine.v2.csv", "cultivar") == "cultivar"
    assert target_for("data/wine.v2.csv", {"data/wine.v2.csv": "a"}) == "a"
    assert target_for("data/wine.v2.csv", {"wine.v2.csv": "b"}) == "b"
    assert target_for("data/wine.v2.csv", {"wine.v2": "c"}) == "c"
    assert target_for("wine.v2.csv", {str(path): "d"}, path=path) == "d"
    assert target_for("up.csv", {"wine": "e"}, name="wine") == "e"
    assert target_for("x.csv", {"other": "f", "*": "g"}) == "g"
    with pytest.raises(ConfigError, match="No target column for dataset 'x.csv'.*--target"):
        target_for("x.csv", {"other": "f"})
    with pytest.raises(ConfigError, match="No target column"):
        target_for("x.csv", "")


def test_the_options_load_without_scikit_learn_or_ray() -> None:
    """What lets ``fleetlearn train`` build its options from the model at start-up."""
    code = ("import sys; from fleetlearn.training import RunOptions; "
            "print(sorted(m for m in ('sklearn', 'ray', 'fleetlearn.training._execute') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_every_training_export_resolves() -> None:
    for name in fleetlearn.training.__all__:
        assert getattr(fleetlearn.training, name) is not None, name
    assert set(fleetlearn.training.__all__) == set(fleetlearn.training._EXPORTS)


# ------------------------------------------------------------------ 1. run files


def _write_run_file(tmp_path: Path, suffix: str = ".yaml", **options: Any) -> Path:
    doc = {"datasets": [{"path": "a.csv", "target": "y"}], **options}
    path = tmp_path / f"run{suffix}"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_run_file_reaches_every_option(tmp_path: Path) -> None:
    assert load_run_file(_write_run_file(tmp_path, **SAMPLE)) == _expected(tmp_path, **SAMPLE)
    assert load_run_file(_write_run_file(tmp_path)) == _expected(tmp_path)


@pytest.mark.parametrize(("name", "value", "ok"), BOUNDED)
def test_run_file_bounds(tmp_path: Path, name: str, value: Any, ok: bool) -> None:
    path = _write_run_file(tmp_path, **{name: value})
    if ok:
        assert getattr(load_run_file(path), name) == value
    else:
        with pytest.raises(ConfigError) as info:
            load_run_file(path)
        assert str(info.value) == _message(name, value)


# ------------------------------------------------------------------ 2. the CLI


@pytest.fixture
def captured_cli(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stop ``fleetlearn train`` where it hands the checked options to the driver."""
    seen: dict[str, Any] = {}

    def run_training(config: RunOptions, **kwargs: Any) -> None:
        seen["config"] = config
        raise typer.Exit(0)

    monkeypatch.setattr(cli_train, "run_training", run_training)
    return seen


def _cli_args(options: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for name, value in options.items():
        flag = "--" + cli_train.OPTION_PARAMS[name].replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else flag.replace("--", "--no-", 1))
        elif isinstance(value, list):
            for item in value:
                args += [flag, str(item)]
        elif isinstance(value, dict):
            for key, item in value.items():
                args += [flag, f"{key}={item}"]
        else:
            args += [flag, str(value)]
    return args


def test_cli_params_carry_each_fields_default_and_help() -> None:
    command = typer.main.get_command(app)
    params = {p.name: p for p in command.commands["train"].params}  # type: ignore[attr-defined]
    for name in OPTIONS:
        param = params[cli_train.OPTION_PARAMS[name]]
        field = RunOptions.model_fields[name]
        default = field.get_default(call_default_factory=True)
        assert param.default == (default if default != {} else None) or (
            param.default is None and default is None), name
        assert field.description in (param.help or ""), name
        if _bounds(name):
            assert describe_field(field) in param.help, name


def test_cli_reaches_every_option(tmp_path: Path, captured_cli: dict[str, Any]) -> None:
    table = str(tmp_path / "a.csv")
    assert main(["train", table, "-t", "y", *_cli_args(SAMPLE)]) == 0
    assert captured_cli["config"] == _expected(tmp_path, **SAMPLE)
    assert main(["train", table, "-t", "y"]) == 0
    assert captured_cli["config"] == _expected(tmp_path)


def test_cli_options_override_every_run_file_option(tmp_path: Path,
                                                    captured_cli: dict[str, Any]) -> None:
    run_file = _write_run_file(tmp_path, folds=3)
    assert main(["train", "--config", str(run_file), *_cli_args(SAMPLE)]) == 0
    assert captured_cli["config"] == _expected(tmp_path, **SAMPLE)
    assert main(["train", "--config", str(run_file)]) == 0
    assert captured_cli["config"] == _expected(tmp_path, folds=3)


@pytest.mark.parametrize(("name", "value", "ok"), BOUNDED)
def test_cli_bounds(tmp_path: Path, captured_cli: dict[str, Any],
                    capsys: pytest.CaptureFixture[str], name: str, value: Any, ok: bool) -> None:
    code = main(["train", str(tmp_path / "a.csv"), "-t", "y", *_cli_args({name: value})])
    err = capsys.readouterr().err.strip()
    if ok:
        assert code == 0, err
        assert getattr(captured_cli["config"], name) == value
    else:
        assert code == 2
        assert err == f"error: {_message(name, value)}"


# ------------------------------------------------------------------ 3. train()


@pytest.fixture
def captured_train(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def train_run(config: RunOptions, **kwargs: Any) -> None:
        seen["config"] = config

    monkeypatch.setattr(execute, "train_run", train_run)
    return seen


def test_train_signature_has_every_option_with_its_default() -> None:
    params = inspect.signature(fleetlearn.train).parameters
    for name in OPTIONS:
        default = RunOptions.model_fields[name].get_default(call_default_factory=True)
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[name].default == default or (
            default == {} and params[name].default is None), name


def test_train_reaches_every_option(tmp_path: Path, captured_train: dict[str, Any]) -> None:
    table = str(tmp_path / "a.csv")
    fleetlearn.train(table, "y", **SAMPLE)
    assert captured_train["config"] == _expected(tmp_path, **SAMPLE)
    fleetlearn.train(table, "y")
    assert captured_train["config"] == _expected(tmp_path)


@pytest.mark.parametrize(("name", "value", "ok"), BOUNDED)
def test_train_bounds(tmp_path: Path, captured_train: dict[str, Any], name: str, value: Any,
                      ok: bool) -> None:
    if ok:
        fleetlearn.train(str(tmp_path / "a.csv"), "y", **{name: value})
        assert getattr(captured_train["config"], name) == value
    else:
        with pytest.raises(ConfigError) as info:
            fleetlearn.train(str(tmp_path / "a.csv"), "y", **{name: value})
        assert str(info.value) == _message(name, value)


# ------------------------------------------------------------------ 4. the API body


def _request_options(tmp_path: Path, body: dict[str, Any]) -> RunOptions:
    request = RunRequest.model_validate({"datasets": ["a.csv"], "target": "y", **body})
    return request.to_options(lambda ref: tmp_path / ref)


def test_api_body_has_every_option_with_the_same_declaration() -> None:
    for name in OPTIONS:
        assert RunRequest.model_fields[name] is RunOptions.model_fields[name] or (
            repr(RunRequest.model_fields[name]) == repr(RunOptions.model_fields[name])), name
    body_schema = RunRequest.model_json_schema()["properties"]
    options_schema = RunOptions.model_json_schema()["properties"]
    for name in OPTIONS:
        assert body_schema[name] == options_schema[name], name


def test_api_body_reaches_every_option(tmp_path: Path) -> None:
    assert _request_options(tmp_path, SAMPLE) == _expected(tmp_path, **SAMPLE)
    assert _request_options(tmp_path, {}) == _expected(tmp_path)
    # JSON, as a client sends it.
    assert _request_options(tmp_path, json.loads(json.dumps(SAMPLE))) == _expected(
        tmp_path, **SAMPLE)


@pytest.mark.parametrize(("name", "value", "ok"), BOUNDED)
def test_api_body_bounds(tmp_path: Path, name: str, value: Any, ok: bool) -> None:
    if ok:
        assert getattr(_request_options(tmp_path, {name: value}), name) == value
    else:
        with pytest.raises(ValidationError) as info:
            RunRequest.model_validate({"datasets": ["a.csv"], "target": "y", name: value})
        assert info.value.errors()[0]["loc"] == (name,)  # the 422 names the field
        assert str(options_error(info.value)) == _message(name, value)


def test_api_body_dataset_entries_and_targets(tmp_path: Path) -> None:
    body = {"datasets": ["a.csv", {"dataset": "b.csv", "target": "t", "task": "regression",
                                   "name": "bee", "models": ["ridge"]}],
            "target": {"a.csv": "y"}, "task": "classification"}
    opts = RunRequest.model_validate(body).to_options(lambda ref: tmp_path / ref)
    assert opts.datasets == [
        DatasetOptions(str(tmp_path / "a.csv"), "y", task="classification"),
        DatasetOptions(str(tmp_path / "b.csv"), "t", task="regression", name="bee",
                       models=["ridge"]),
    ]
    with pytest.raises(ConfigError, match="No target column for dataset 'a.csv'"):
        RunRequest.model_validate({"datasets": ["a.csv"]}).to_options(lambda r: tmp_path / r)
    with pytest.raises(ValidationError) as info:
        RunRequest.model_validate({"datasets": [{"dataset": "a.csv", "trget": "y"}]})
    assert "Did you mean 'target'" in str(options_error(info.value))


# ------------------------------------------------------------------ 5. Client.start_run


def _client_body(**kwargs: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["body"] = json.loads(request.content)
        return httpx.Response(202, json={"id": "0123456789ab", "status": "starting"})

    client = Client("http://fleetlearn.test", transport=httpx.MockTransport(handler))
    client.start_run("a.csv", "y", **kwargs)
    return seen["body"]


def test_client_signature_has_every_option_with_the_bodys_default() -> None:
    params = inspect.signature(Client.start_run).parameters
    for name in [*OPTIONS, "task"]:
        field = RunRequest.model_fields[name]
        default = field.get_default(call_default_factory=True)
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[name].default == default or (
            default == {} and params[name].default is None), name


def test_client_reaches_every_option(tmp_path: Path) -> None:
    body = _client_body(**SAMPLE)
    assert RunRequest.model_validate(body).to_options(lambda ref: tmp_path / ref) == _expected(
        tmp_path, **SAMPLE)
    # Defaults are left to the server, which applies the same ones.
    assert _client_body() == {"datasets": ["a.csv"], "target": "y"}
    assert RunRequest.model_validate(_client_body()).to_options(
        lambda ref: tmp_path / ref) == _expected(tmp_path)


@pytest.mark.parametrize(("name", "value", "ok"), BOUNDED)
def test_client_sends_each_bound_value_as_given(name: str, value: Any, ok: bool) -> None:
    # The server checks (test_api_body_bounds); the client passes the value through.
    assert _client_body(**{name: value})[name] == value


# The real route: POST /v1/runs of the app, its child pointed at a dead Ray address so
# a started run stops before training. What the route accepted is read back from the
# run file the launcher writes for its child (what the child trains).


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    data = tmp_path / "data"
    data.mkdir()
    frame = load_iris(as_frame=True).frame.rename(columns={"target": "y"})
    frame.to_csv(data / "a.csv", index=False)
    home = tmp_path / "home"
    settings = ServeSettings(registry_url=f"sqlite:///{home}/registry.db",
                             artifact_dir=str(home / "artifacts"), data_dir=str(data),
                             ray_address="127.0.0.1:1")
    with TestClient(create_app(settings)) as http:
        yield http


def _route_options(http: TestClient, run_id: str) -> RunOptions:
    run_file = fleetlearn_home() / "runs" / f"{run_id}.yaml"
    return RunOptions.from_dict(yaml.safe_load(run_file.read_text()))


def test_the_route_reaches_every_option(api: TestClient, tmp_path: Path) -> None:
    # SAMPLE's models and metric are for different tasks; the route checks the tables
    # too, so iris gets classification models (every other value as in SAMPLE).
    body = {**SAMPLE, "models": ["logistic_regression", "random_forest:n_estimators=5"]}
    answer = api.post("/v1/runs", json={"datasets": ["a.csv"], "target": "y", **body})
    assert answer.status_code == 202, answer.text
    expected = RunOptions(datasets=[DatasetOptions(str((tmp_path / "data" / "a.csv").resolve()),
                                                   "y")], **body)
    assert _route_options(api, answer.json()["id"]) == expected


@pytest.mark.parametrize(("name", "value", "ok"), BOUNDED)
def test_the_route_bounds(api: TestClient, name: str, value: Any, ok: bool) -> None:
    # An accepted value passes the body's validation and stops at the dataset (a name
    # no table has), so no process starts; a refused one is the options' 422.
    answer = api.post("/v1/runs", json={"datasets": ["missing.csv"], "target": "y",
                                        name: value})
    assert answer.status_code == 422
    if ok:
        assert answer.json()["error"] == "DataFileNotFoundError", answer.text
        assert "No dataset 'missing.csv'" in answer.json()["detail"]
    else:
        assert answer.json()["error"] == "ValidationError"
        assert answer.json()["detail"] == _message(name, value)
        assert answer.json()["errors"][0]["loc"] == ["body", name]  # the field named
    assert not (fleetlearn_home() / "runs").exists()  # nothing started


@pytest.mark.parametrize(("name", "value"), BAD_CHOICES)
def test_the_route_answers_bad_choices_with_the_options_sentence(
        api: TestClient, name: str, value: Any) -> None:
    answer = api.post("/v1/runs", json={"datasets": ["a.csv"], "target": "y", name: value})
    assert answer.status_code == 422
    assert answer.json()["detail"] == _message(name, value)
    assert [p["loc"] for p in answer.json()["errors"]][0][:2] == ["body", name]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"folds": 1}, "The 'folds' option must be an int in the range [2, inf). Got 1"),
        ({"folds": "five"}, "The 'folds' option must be an int"),
        ({"seeds": 3}, "Unknown run option(s) 'seeds'"),
        ({"datasets": []}, "the 'datasets' option needs at least one"),
        ({"schedule": "sometimes"}, "'schedule' option must be one of"),
        ({"datasets": [{"dataset": "a.csv", "task": "regresion"}]},
         "The 'task' option of dataset 'a.csv'"),
    ],
)
def test_api_body_errors_read_like_the_other_entry_points(api: TestClient,
                                                          body: dict[str, Any],
                                                          words: str) -> None:
    with pytest.raises(ValidationError) as info:
        RunRequest.model_validate({"datasets": ["a.csv"], "target": "y", **body})
    assert words in str(options_error(info.value))
    answer = api.post("/v1/runs", json={"datasets": ["a.csv"], "target": "y", **body})
    assert answer.status_code == 422
    assert answer.json()["detail"] == str(options_error(info.value))


@pytest.mark.parametrize("name", ["folds", "seed", "max_retries", "quadratic_row_limit"])
def test_a_whole_float_is_its_int_but_fractions_strings_and_booleans_are_errors(
        name: str) -> None:
    # JSON has one number type, and JSON Schema's "integer" accepts 3.0: an API client
    # (or a schema-driven fuzzer) may send it.
    base = {"datasets": [{"path": "t.csv", "target": "y"}]}
    options = fleetlearn.training.RunOptions.model_validate({**base, name: 3.0})
    assert getattr(options, name) == 3
    assert type(getattr(options, name)) is int
    for bad in (3.5, "3", True):
        with pytest.raises(ConfigError, match=f"'{name}' option must be an int"):
            fleetlearn.training.RunOptions.model_validate({**base, name: bad})
