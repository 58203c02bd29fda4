"""Plain, immutable records the registry hands to callers.

ORM rows (``Sql*`` in ``_schema.py``) never leave the registry: they are bound to a
session and would lazily hit the database from anywhere. These dataclasses are
detached copies; ``to_dict()`` gives a JSON-serialisable form for the CLI and API.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Run", "DatasetRecord", "TrialUnit", "Trial", "ModelVersion", "ApiKey", "Launch"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _Record:
    """Shared ``to_dict`` for the frozen dataclasses below."""

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-serialisable dict (datetimes as ISO 8601)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class Run(_Record):
    """One training run: a config, a seed and what became of it.

    ``status`` is one of ``"running"``, ``"finished"``, ``"failed"``, ``"interrupted"``.
    ``launcher`` is the training process of a run started through the API (``pid``,
    ``host``, ``log``, ``status``, ``started_at``, ``exit_code``), None otherwise.
    """

    id: str
    name: str | None
    status: str
    config: dict[str, Any]
    seed: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    launcher: dict[str, Any] | None = None


@dataclass(frozen=True)
class DatasetRecord(_Record):
    """A dataset seen by the registry, identified by its content fingerprint.

    ``name`` is the name used in the run it was looked up from (a table may be called
    differently in two runs); the first name it was registered under otherwise.
    """

    id: int
    fingerprint: str
    name: str
    source: str | None
    n_rows: int
    n_features: int
    task: str
    target: str
    schema: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class TrialUnit(_Record):
    """One journaled piece of a trial: a CV fold (``"cv0"``...), ``"final"`` or ``"curve"``."""

    id: int
    trial_id: int
    unit: str
    status: str
    payload: dict[str, Any]
    error: str | None
    duration_s: float | None
    created_at: datetime


@dataclass(frozen=True)
class Trial(_Record):
    """One model on one dataset in one run, with its journaled units by unit name."""

    id: int
    run_id: str
    dataset_id: int
    model_name: str
    spec: dict[str, Any]
    status: str
    error: str | None
    created_at: datetime
    updated_at: datetime
    units: dict[str, TrialUnit] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the trial as a JSON-serialisable dict, units included."""
        out = super().to_dict()
        out["units"] = {name: u.to_dict() for name, u in self.units.items()}
        return out


@dataclass(frozen=True)
class ModelVersion(_Record):
    """One registered version of a named model, with its lineage and artifact digest.

    ``aliases`` lists the aliases currently pointing at this version, sorted.
    ``artifact_types`` lists the exact type names its skops artifact holds, recorded
    at registration (None for versions registered before migration 0003).
    """

    id: int
    name: str
    version: int
    run_id: str | None
    trial_id: int | None
    dataset_id: int | None
    metrics: dict[str, Any]
    params: dict[str, Any]
    input_schema: dict[str, Any]
    artifact_digest: str
    artifact_size: int
    tags: dict[str, Any]
    description: str | None
    created_at: datetime
    aliases: tuple[str, ...] = ()
    artifact_types: tuple[str, ...] | None = None

    @property
    def ref(self) -> str:
        """``"name:version"``, the string users pass back to load this exact version."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ApiKey(_Record):
    """An API key as stored: never the secret, only what identifies it.

    ``prefix`` is the secret's first 8 characters (``flk_`` + 4), enough to recognise
    a key in a list without revealing it.
    """

    id: int
    name: str
    prefix: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class Launch(_Record):
    """A training process an API launcher started, recorded from the moment it spawned.

    ``status``: ``"starting"`` (the child is checking its data and joining Ray; no run
    row yet), ``"recorded"`` (the run exists: follow it there), ``"failed"`` (the
    process ended, or died, before recording the run: ``error`` says why) or
    ``"cancelled"`` (stopped through the API before it recorded the run).
    """

    run_id: str
    pid: int
    host: str
    log: str
    status: str
    error: str | None
    exit_code: int | None
    created_at: datetime
    updated_at: datetime
