"""Validation of model names and aliases, and parsing of model references."""

from __future__ import annotations

import re

from fleetlearn.errors import ConfigError

__all__ = ["validate_model_name", "validate_alias", "parse_model_ref"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise ConfigError.

    Examples
    --------
    >>> validate_model_name("churn-rf")
    'churn-rf'
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"Invalid model name {name!r}: it must start with a letter or digit and contain "
            "only letters, digits, '_', '.', '-' (at most 128 characters). "
            "Choose a name like 'churn-rf' or 'iris_logreg'."
        )
    return name


def validate_alias(alias: str) -> str:
    """Return ``alias`` if it is a valid alias, else raise ConfigError.

    Aliases follow the model-name rules but cannot be all digits, which would read as
    a version number.

    Examples
    --------
    >>> validate_alias("champion")
    'champion'
    """
    if not isinstance(alias, str) or not _NAME_RE.match(alias) or alias.isdigit():
        raise ConfigError(
            f"Invalid alias {alias!r}: it must start with a letter or digit, contain only "
            "letters, digits, '_', '.', '-' (at most 128 characters) and not be all digits "
            "(that would read as a version). Choose a name like 'champion' or 'prod'."
        )
    return alias


def parse_model_ref(ref: str) -> tuple[str, int | None, str | None]:
    """Split a model reference into ``(name, version, alias)``.

    Accepted forms: ``"name"`` (latest version), ``"name:3"`` or ``"name/3"``
    (version 3), ``"name:latest"``, and ``"name@champion"`` (the version the alias
    points at).

    Examples
    --------
    >>> parse_model_ref("churn-rf@champion")
    ('churn-rf', None, 'champion')
    >>> parse_model_ref("churn-rf:3")
    ('churn-rf', 3, None)
    >>> parse_model_ref("churn-rf")
    ('churn-rf', None, None)
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(
            f"Invalid model reference {ref!r}: expected 'name', 'name:VERSION' or 'name@ALIAS'."
        )
    ref = ref.strip()
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return validate_model_name(name), None, validate_alias(alias)
    for sep in (":", "/"):
        if sep in ref:
            name, _, raw = ref.partition(sep)
            validate_model_name(name)
            if raw == "latest":
                return name, None, None
            if not raw.isdigit() or int(raw) < 1:
                raise ConfigError(
                    f"Invalid model reference {ref!r}: the version after {sep!r} must be a "
                    "positive integer or 'latest' (e.g. 'churn-rf:3'); use 'name@alias' "
                    "for an alias."
                )
            return name, int(raw), None
    return validate_model_name(ref), None, None
