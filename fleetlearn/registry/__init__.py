"""The fleetlearn registry: runs, their journal, model versions, aliases and artifacts.

A SQL database (SQLite by default, PostgreSQL on a cluster) whose schema is created
and upgraded only by the Alembic migrations shipped in ``migrations/``, plus a folder
of skops artifacts named by their sha256.

Examples
--------
>>> import tempfile
>>> from sklearn.linear_model import LogisticRegression
>>> tmp = tempfile.mkdtemp()
>>> reg = Registry(f"sqlite:///{tmp}/registry.db", artifact_dir=f"{tmp}/artifacts")
>>> model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
>>> mv = reg.register_model("demo", estimator=model, metrics={}, params={}, input_schema={})
>>> mv.ref
'demo:1'
>>> reg.set_alias("demo", "champion", 1)
>>> int(reg.load_model("demo", alias="champion").predict([[1.0]])[0])
1
>>> reg.close()
"""

from __future__ import annotations

from fleetlearn.registry._artifacts import (
    TRUSTED_TYPES,
    TRUSTED_TYPES_ENV,
    ArtifactStore,
    artifact_types,
    check_trusted_names,
    dump_estimator,
    load_estimator,
    trusted_types_from_env,
    untrusted_types,
)
from fleetlearn.registry._engine import mask_url
from fleetlearn.registry._entities import (
    ApiKey,
    DatasetRecord,
    Launch,
    ModelVersion,
    Run,
    Trial,
    TrialUnit,
)
from fleetlearn.registry._launch_store import LAUNCH_STATUSES
from fleetlearn.registry._migrate import head_revision
from fleetlearn.registry._names import parse_model_ref, validate_alias, validate_model_name
from fleetlearn.registry._store import (
    RUN_STATUSES,
    TRIAL_STATUSES,
    UNIT_STATUSES,
    Registry,
)

__all__ = [
    "Registry",
    "Run",
    "DatasetRecord",
    "Trial",
    "TrialUnit",
    "ModelVersion",
    "ApiKey",
    "Launch",
    "LAUNCH_STATUSES",
    "ArtifactStore",
    "dump_estimator",
    "load_estimator",
    "untrusted_types",
    "artifact_types",
    "check_trusted_names",
    "trusted_types_from_env",
    "TRUSTED_TYPES",
    "TRUSTED_TYPES_ENV",
    "parse_model_ref",
    "validate_model_name",
    "validate_alias",
    "mask_url",
    "head_revision",
    "RUN_STATUSES",
    "TRIAL_STATUSES",
    "UNIT_STATUSES",
]
