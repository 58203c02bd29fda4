"""Settings: an explicit value beats the environment beats the default, for every field.

``ServeSettings`` (``FLEETLEARN_SERVE_*``) directly and through ``fleetlearn serve``
(``fleetlearn.cli.main`` with a list of arguments; every case here fails or stops
before a server would listen), and ``HomeSettings`` (``FLEETLEARN_HOME``, ...) through
its public functions. The running server's view of the three sources is checked over
HTTP in ``tests/integration/test_serve_settings.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fleetlearn.cli import main
from fleetlearn.config import (
    HomeSettings,
    default_artifact_dir,
    default_registry_url,
    fleetlearn_home,
)
from fleetlearn.errors import ConfigError
from fleetlearn.serving import ServeSettings

# A valid value other than the default for every field, as the environment writes it
# and as Python reads it back. A new field fails test_every_field_is_covered until
# it is added here.
ENV_VALUES: dict[str, tuple[str, Any]] = {
    "registry_url": ("sqlite:////srv/registry.db", "sqlite:////srv/registry.db"),
    "artifact_dir": ("/srv/artifacts", "/srv/artifacts"),
    "host": ("::1", "::1"),
    "port": ("8123", 8123),
    "auth": ("on", "on"),
    "max_rows": ("77", 77),
    "max_body_mb": ("1.5", 1.5),
    "max_models": ("3", 3),
    "max_cache_mb": ("64", 64.0),
    "refresh_s": ("0.25", 0.25),
    "batch_max_rows": ("16", 16),
    "batch_wait_ms": ("0", 0.0),
    "stats_window_s": ("5", 5.0),
    "stats_flush_s": ("30", 30.0),
    "preload": ("churn@prod, wine:2,", ["churn@prod", "wine:2"]),
    "upload_max_mb": ("8", 8.0),
    "data_dir": ("/srv/data", "/srv/data"),
    "ray_address": ("10.0.0.5:6379", "10.0.0.5:6379"),
    "run_retries": ("0", 0),
    "trusted_types": ("mypkg.models.A, mypkg.models.B", ["mypkg.models.A", "mypkg.models.B"]),
    "auth_failures_allowed": ("3", 3),
    "model_packages": ("sklearn, mypkg", ["sklearn", "mypkg"]),
}


@pytest.fixture(autouse=True)
def _no_serve_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's own FLEETLEARN_SERVE_* variables must not leak into these tests."""
    for key in list(os.environ):
        if key.upper().startswith("FLEETLEARN_SERVE_"):
            monkeypatch.delenv(key)


def _env_name(field: str) -> str:
    return f"FLEETLEARN_SERVE_{field.upper()}"


def _one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback
    assert "pydantic" not in err, err
    assert "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------- ServeSettings, in Python


def test_every_field_is_covered() -> None:
    assert set(ENV_VALUES) == set(ServeSettings.model_fields)


def test_nothing_set_gives_every_declared_default() -> None:
    settings = ServeSettings()
    for name, field in ServeSettings.model_fields.items():
        assert getattr(settings, name) == field.get_default(call_default_factory=True), name
    assert (settings.max_rows, settings.port, settings.auth) == (10_000, 8000, "auto")


@pytest.mark.parametrize("field", sorted(ENV_VALUES))
def test_every_field_reads_its_environment_variable(field: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    raw, expected = ENV_VALUES[field]
    assert expected != ServeSettings.model_fields[field].get_default(call_default_factory=True)
    monkeypatch.setenv(_env_name(field), raw)
    assert getattr(ServeSettings(), field) == expected


@pytest.mark.parametrize("field", sorted(ENV_VALUES))
def test_an_explicit_value_beats_the_environment(field: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    raw, _ = ENV_VALUES[field]
    monkeypatch.setenv(_env_name(field), raw)
    # The default's own value, given explicitly: the case the old "equals the
    # default, so not given" check got wrong.
    default = ServeSettings.model_fields[field].get_default(call_default_factory=True)
    assert getattr(ServeSettings(**{field: default}), field) == default


def _bounded_fields() -> list[tuple[str, str, Any]]:
    """(field, bound, value) for every bound declared on a ServeSettings field."""
    out = []
    for name, field in ServeSettings.model_fields.items():
        for item in field.metadata:
            for bound in ("ge", "gt", "le"):
                value = getattr(item, bound, None)
                if value is not None:
                    out.append((name, bound, value))
    return out


def test_the_bounds_are_declared_on_the_fields() -> None:
    declared = {(name, bound) for name, bound, _ in _bounded_fields()}
    assert declared >= {("max_rows", "ge"), ("port", "ge"), ("port", "le"),
                        ("refresh_s", "gt"), ("batch_wait_ms", "ge"), ("max_cache_mb", "gt")}


@pytest.mark.parametrize(("field", "bound", "value"), _bounded_fields())
def test_each_bound_accepts_its_edge_and_refuses_past_it(field: str, bound: str,
                                                         value: Any) -> None:
    integer = ServeSettings.model_fields[field].annotation is int
    step = 1 if integer else 0.5
    inside = {"ge": value, "gt": value + step, "le": value}[bound]
    outside = {"ge": value - step, "gt": value, "le": value + step}[bound]
    assert getattr(ServeSettings(**{field: inside}), field) == inside
    with pytest.raises(ConfigError, match=rf"^{field} must be .*, got {outside!r}\.$"):
        ServeSettings(**{field: outside})


def test_a_bad_environment_value_names_the_variable_and_the_fix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLEARN_SERVE_MAX_ROWS", "0")
    with pytest.raises(ConfigError) as caught:
        ServeSettings()
    assert str(caught.value) == ("FLEETLEARN_SERVE_MAX_ROWS='0' is not valid: max_rows must "
                                 "be at least 1. Fix or unset FLEETLEARN_SERVE_MAX_ROWS.")
    # An explicit value replaces the bad one: nothing is read from the environment.
    assert ServeSettings(max_rows=5).max_rows == 5


def test_every_bad_value_is_named_in_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLEARN_SERVE_AUTH", "sometimes")
    with pytest.raises(ConfigError) as caught:
        ServeSettings(port=0, refresh_s="soon")
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "port must be between 1 and 65535, got 0. "
        "FLEETLEARN_SERVE_AUTH='sometimes' is not valid: auth must be auto, on or off. "
        "Fix or unset FLEETLEARN_SERVE_AUTH. "
        "refresh_s must be a number, got 'soon'.")


def test_an_unknown_keyword_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="'max_row' is not a serving setting. Did you mean "
                                          "'max_rows'?"):
        ServeSettings(max_row=5)


def test_keys_off_away_from_loopback_is_refused_from_any_source(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLEARN_SERVE_HOST", "0.0.0.0")
    with pytest.raises(ConfigError, match="Refusing to serve on 0.0.0.0 without API keys"):
        ServeSettings(auth="off")
    assert ServeSettings(auth="off", host="127.0.0.1").host == "127.0.0.1"


def test_settings_round_trip_through_a_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray Serve replicas get the driver's settings as a dict (resolved_settings) and
    # must not re-read their own environment over it.
    sent = ServeSettings(max_rows=5, preload=["a@prod"]).model_dump()
    monkeypatch.setenv("FLEETLEARN_SERVE_MAX_ROWS", "900")
    monkeypatch.setenv("FLEETLEARN_SERVE_PRELOAD", "b")
    again = ServeSettings(**sent)
    assert (again.max_rows, again.preload) == (5, ["a@prod"])


def test_data_path_defaults_to_the_home(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.setenv("FLEETLEARN_HOME", str(tmp_path / "h"))
    assert ServeSettings().data_path == tmp_path / "h" / "data"
    monkeypatch.setenv("FLEETLEARN_SERVE_DATA_DIR", str(tmp_path / "d"))
    assert ServeSettings().data_path == tmp_path / "d"


# ------------------------------------------------------- ServeSettings, through the CLI


def test_a_bad_option_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line_error(capsys, "serve", "--max-rows", "0")
    assert line == "error: --max-rows must be at least 1, got 0."


def test_a_bad_environment_value_names_the_variable_on_the_cli(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLEARN_SERVE_MAX_ROWS", "lots")
    line = _one_line_error(capsys, "serve")
    assert line == ("error: FLEETLEARN_SERVE_MAX_ROWS='lots' is not valid: max_rows must be "
                    "a whole number. Fix or unset FLEETLEARN_SERVE_MAX_ROWS.")


def test_an_option_typed_replaces_a_bad_environment_value(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    # The bad FLEETLEARN_SERVE_MAX_ROWS is never read: --max-rows was typed (with the
    # default's value). The run stops at the next check instead, before listening:
    # a non-loopback host needs a key and this registry holds none.
    monkeypatch.setenv("FLEETLEARN_SERVE_MAX_ROWS", "0")
    line = _one_line_error(capsys, "serve", "--max-rows", "10000", "--host", "0.0.0.0",
                           "--registry", f"sqlite:///{tmp_path / 'registry.db'}")
    assert line.startswith("error: Refusing to serve on 0.0.0.0: API keys are required"), line


def test_an_option_left_out_is_filled_from_the_environment(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    # No --host: FLEETLEARN_SERVE_HOST is used (the same check as above proves it).
    monkeypatch.setenv("FLEETLEARN_SERVE_HOST", "0.0.0.0")
    line = _one_line_error(capsys, "serve", "--registry",
                           f"sqlite:///{tmp_path / 'registry.db'}")
    assert line.startswith("error: Refusing to serve on 0.0.0.0: API keys are required"), line


def test_keys_off_on_a_public_host_names_the_option(
        capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line_error(capsys, "serve", "--host", "0.0.0.0", "--auth", "off")
    assert line.startswith("error: Refusing to serve on 0.0.0.0 without API keys"), line
    assert "--auth off" in line


# ------------------------------------------------------------------------ HomeSettings


def test_home_settings_default_to_the_user_home(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    for name in ("FLEETLEARN_HOME", "FLEETLEARN_REGISTRY_URL", "FLEETLEARN_ARTIFACTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert fleetlearn_home() == tmp_path / ".fleetlearn"
    assert (tmp_path / ".fleetlearn").is_dir()
    assert default_registry_url() == f"sqlite:///{tmp_path / '.fleetlearn' / 'registry.db'}"
    assert default_artifact_dir() == tmp_path / ".fleetlearn" / "artifacts"


def test_home_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("FLEETLEARN_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("FLEETLEARN_REGISTRY_URL", "postgresql+psycopg://db/fleet")
    monkeypatch.setenv("FLEETLEARN_ARTIFACTS", str(tmp_path / "blobs"))
    assert fleetlearn_home() == tmp_path / "state"
    assert default_registry_url() == "postgresql+psycopg://db/fleet"
    assert default_artifact_dir() == tmp_path / "blobs"
    # The home alone moves the registry and the artifacts with it.
    monkeypatch.delenv("FLEETLEARN_REGISTRY_URL")
    monkeypatch.delenv("FLEETLEARN_ARTIFACTS")
    assert default_registry_url() == f"sqlite:///{tmp_path / 'state' / 'registry.db'}"
    assert default_artifact_dir() == tmp_path / "state" / "artifacts"


def test_an_empty_home_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FLEETLEARN_HOME", "")
    monkeypatch.setenv("FLEETLEARN_REGISTRY_URL", "")
    monkeypatch.setenv("FLEETLEARN_ARTIFACTS", "")
    assert fleetlearn_home() == tmp_path / ".fleetlearn"
    assert default_registry_url().endswith("/.fleetlearn/registry.db")
    assert default_artifact_dir() == tmp_path / ".fleetlearn" / "artifacts"


def test_an_explicit_home_setting_beats_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("FLEETLEARN_HOME", str(tmp_path / "env"))
    assert HomeSettings().home_folder == tmp_path / "env"
    assert HomeSettings(home=tmp_path / "given").home_folder == tmp_path / "given"
    assert HomeSettings(home="~/x").home_folder == Path.home() / "x"
