"""Serving settings: one pydantic-settings class, every bound declared on its field.

A value comes from, in order of precedence: an explicit argument (a ``fleetlearn serve``
option the user typed, or a keyword in Python), the ``FLEETLEARN_SERVE_<NAME>``
environment variable, the field's default. pydantic-settings does the ordering, so an
option typed with the default's value (``--max-rows 10000``) still beats the
environment: the CLI passes only the options the user gave.

A bad value raises :class:`~fleetlearn.errors.ConfigError` naming where it came from
(the option, the environment variable or the keyword) and what it must be, never a
pydantic traceback.
"""

from __future__ import annotations

import ipaddress
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from fleetlearn.config import fleetlearn_home
from fleetlearn.errors import ConfigError, did_you_mean
from fleetlearn.registry import check_trusted_names

#: What runs started through the API may name by dotted path (see model_packages).
DEFAULT_MODEL_PACKAGES = ("sklearn", "xgboost", "lightgbm")

__all__ = ["ServeSettings", "is_loopback"]

ENV_PREFIX = "FLEETLEARN_SERVE_"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServeSettings(BaseSettings):
    """How ``fleetlearn serve`` behaves. Every field has a ``FLEETLEARN_SERVE_<NAME>``
    environment variable (e.g. ``FLEETLEARN_SERVE_MAX_ROWS=5000``); an explicit
    argument beats the environment, which beats the default.

    Parameters
    ----------
    registry_url : str, optional
        SQLAlchemy URL of the registry; the home folder's by default.
    artifact_dir : str, optional
        Folder of model artifacts; ``<home>/artifacts`` by default.
    host, port : str, int
        Where the server listens (``host`` also decides whether keys are required).
    auth : {"auto", "on", "off"}
        ``auto``: keys are required as soon as the registry holds an active key, and
        always when ``host`` is not loopback. ``on``: always. ``off``: never (loopback
        only; refused on any other address).
    max_rows : int
        Most rows in one predict request (413 beyond).
    max_body_mb : float
        Largest predict body accepted (413 beyond).
    max_models, max_cache_mb : int, float
        Bounds of the loaded-model cache (least recently used evicted first).
    refresh_s : float
        How often the registry is checked for new versions and moved aliases.
    batch_max_rows, batch_wait_ms : int, float
        Coalescing of concurrent predictions (see ``fleetlearn.serving._batch``).
    stats_window_s, stats_flush_s : float
        Width of a statistics window, and how often windows are written to the registry.
    preload : list of str
        Model references loaded at start; ``/readyz`` waits for them. In the
        environment: comma-separated (``FLEETLEARN_SERVE_PRELOAD=churn@prod,wine:2``).
    upload_max_mb : float
        Largest dataset upload.
    data_dir : str, optional
        Where uploaded datasets are stored; ``<home>/data`` by default.
    ray_address : str, optional
        Ray cluster for runs started through the API; embedded local Ray by default.
    run_retries : int
        How many times a run started through this server is resumed on its own when
        its training process dies or loses its cluster (not after a cancel, a
        Ctrl-C/SIGTERM or bad input), with a growing pause between attempts; 0 turns
        that off.
    trusted_types : list of str
        Exact type names (``mypackage.models.MyClassifier``) whose artifacts the model
        cache also loads, added to the allow-list and to ``FLEETLEARN_TRUSTED_TYPES``.
        In the environment: comma-separated
        (``FLEETLEARN_SERVE_TRUSTED_TYPES=mypkg.A,mypkg.B``); module prefixes are
        refused.
    auth_failures_allowed : int
        Failed authentications in a row one client address may make (none 60 s apart)
        before each further one blocks it for a doubling pause (1 s, 2 s, ... at most
        30 s), answered 429 with ``Retry-After``. Behind a proxy every client shares the
        proxy's address: raise it there.
    model_packages : list of str
        Top-level packages whose classes a run started through this server may name by
        dotted path (``sklearn.ensemble.AdaBoostClassifier``): scikit-learn, XGBoost
        and LightGBM by default; catalog names are always allowed. Naming a module
        imports it, and importing runs its code, so anything else is refused (422)
        before it is imported. In the environment: comma-separated
        (``FLEETLEARN_SERVE_MODEL_PACKAGES=sklearn,xgboost,lightgbm,mypkg``).

    Raises
    ------
    ConfigError
        A value out of its bounds, of the wrong type, or an unknown keyword; the
        message names the keyword or the environment variable it came from.

    Examples
    --------
    >>> ServeSettings(max_rows=500).max_rows
    500
    >>> ServeSettings(max_rows=0)
    Traceback (most recent call last):
    ...
    fleetlearn.errors.ConfigError: max_rows must be at least 1, got 0.
    """

    # extra="forbid": a misspelt keyword is an error, not a silently ignored value
    # (unknown FLEETLEARN_SERVE_* variables are not read at all).
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    registry_url: str | None = None
    artifact_dir: str | None = None
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8000, ge=1, le=65535)
    auth: Literal["auto", "on", "off"] = "auto"
    max_rows: int = Field(10_000, ge=1)
    max_body_mb: float = Field(32.0, gt=0)
    max_models: int = Field(32, ge=1)
    max_cache_mb: float = Field(2048.0, gt=0)
    refresh_s: float = Field(1.0, gt=0)
    batch_max_rows: int = Field(1024, ge=1)
    batch_wait_ms: float = Field(2.0, ge=0)
    stats_window_s: float = Field(10.0, gt=0)
    stats_flush_s: float = Field(10.0, gt=0)
    # NoDecode: the environment holds "a@prod,b:2", not the JSON list pydantic-settings
    # would expect for a list field; _split_preload reads it.
    preload: Annotated[list[str], NoDecode] = Field(default_factory=list)
    upload_max_mb: float = Field(512.0, gt=0)
    data_dir: str | None = None
    ray_address: str | None = None
    run_retries: int = Field(2, ge=0, le=20)
    # NoDecode, as preload: comma-separated in the environment.
    trusted_types: Annotated[list[str], NoDecode] = Field(default_factory=list)
    auth_failures_allowed: int = Field(10, ge=1)
    model_packages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_MODEL_PACKAGES))

    def __init__(self, *, _flags: Mapping[str, str] | None = None, **values: Any) -> None:
        # ``_flags`` ({field: "--option"}) lets the CLI's error name the option typed,
        # in the style of pydantic-settings' own ``_env_prefix``-like init arguments.
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, values, _flags or {})) from None
        except SettingsError as exc:  # an environment value pydantic-settings cannot read
            raise ConfigError(f"{exc}. Fix or unset that {ENV_PREFIX}* variable.") from None

    @field_validator("preload", "trusted_types", "model_packages", mode="before")
    @classmethod
    def _split_preload(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("model_packages")
    @classmethod
    def _top_level_packages(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not v.isidentifier()]
        if bad:
            raise ValueError(f"model_packages holds top-level package names (such as "
                             f"'sklearn'), not {', '.join(map(repr, bad))}")
        return value

    @field_validator("trusted_types")
    @classmethod
    def _exact_types(cls, value: list[str]) -> list[str]:
        # A ConfigError passes through pydantic as it is: one line naming the prefix.
        return list(check_trusted_names(
            value, source=f"trusted_types (--trust or {ENV_PREFIX}TRUSTED_TYPES)"))

    @model_validator(mode="after")
    def _keys_off_loopback(self) -> ServeSettings:
        # A ConfigError (not a ValueError) passes through pydantic as it is.
        if self.auth == "off" and not is_loopback(self.host):
            raise ConfigError(
                f"Refusing to serve on {self.host} without API keys: anyone who can reach it "
                "could use it. Create a key with 'fleetlearn keys create --role predict' and "
                "drop --auth off (or FLEETLEARN_SERVE_AUTH=off), or serve on 127.0.0.1."
            )
        return self

    @property
    def data_path(self) -> Path:
        """The folder of uploaded datasets: ``data_dir``, else ``<home>/data``."""
        return Path(self.data_dir) if self.data_dir else fleetlearn_home() / "data"


def _env_value(name: str) -> tuple[str, str] | None:
    """The environment variable of field ``name`` and its raw value, if set.

    pydantic-settings matches names case-insensitively; so does this.
    """
    wanted = f"{ENV_PREFIX}{name}".upper()
    for key, value in os.environ.items():
        if key.upper() == wanted:
            return key, value
    return None


def _bounds(name: str) -> dict[str, Any]:
    """The bounds declared on field ``name``: ``{"ge": 1, "le": 65535}``."""
    bounds: dict[str, Any] = {}
    for item in ServeSettings.model_fields[name].metadata:  # annotated_types Ge, Gt, Le
        for key in ("ge", "gt", "le"):
            if getattr(item, key, None) is not None:
                bounds[key] = getattr(item, key)
    return bounds


def _requirement(name: str, error: Mapping[str, Any]) -> str:
    """What field ``name`` must be, in words, for one pydantic error."""
    kind = error["type"]
    bounds = _bounds(name)
    if kind in ("greater_than_equal", "greater_than", "less_than_equal"):
        if "ge" in bounds and "le" in bounds:
            return f"must be between {bounds['ge']} and {bounds['le']}"
        if "gt" in bounds:
            return "must be positive" if bounds["gt"] == 0 else (
                f"must be greater than {bounds['gt']}")
        if "ge" in bounds:
            return f"must be at least {bounds['ge']}"
        return f"must be at most {bounds['le']}"
    if kind == "literal_error":
        choices = [str(c) for c in typing.get_args(ServeSettings.model_fields[name].annotation)]
        return f"must be {', '.join(choices[:-1])} or {choices[-1]}"
    if kind.startswith("int_"):
        return "must be a whole number"
    if kind.startswith("float_"):
        return "must be a number"
    if kind == "string_too_short":
        return "must not be empty"
    message = str(error.get("msg", "is not valid"))
    return "must be " + message[len("Input should be "):] if message.startswith(
        "Input should be ") else message[:1].lower() + message[1:]


def _explain(exc: ValidationError, given: Mapping[str, Any], flags: Mapping[str, str]) -> str:
    """One sentence per bad value, naming where it came from, in field order."""
    order = list(ServeSettings.model_fields)
    errors = sorted(exc.errors(), key=lambda e: order.index(e["loc"][0])
                    if e["loc"] and e["loc"][0] in order else len(order))
    sentences = []
    for error in errors:
        name = str(error["loc"][0]) if error["loc"] else "?"
        if error["type"] == "extra_forbidden":
            sentences.append(f"{name!r} is not a serving setting.{did_you_mean(name, order)} "
                             f"Known settings: {', '.join(order)}.")
            continue
        requirement = _requirement(name, error)
        env = _env_value(name)
        if name not in given and env is not None:
            key, raw = env
            sentences.append(f"{key}={raw!r} is not valid: {name} {requirement}. Fix or "
                             f"unset {key}.")
        else:
            label = flags.get(name, name)
            sentences.append(f"{label} {requirement}, got {given.get(name)!r}.")
    return " ".join(sentences)
