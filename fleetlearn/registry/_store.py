"""The registry: runs, datasets, trials and their journal, model versions and aliases."""

from __future__ import annotations

import hashlib
import os
import random
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, joinedload

from fleetlearn.config import default_artifact_dir, default_registry_url
from fleetlearn.errors import (
    ArtifactIntegrityError,
    ConfigError,
    NotFoundError,
    RegistryError,
    did_you_mean,
)
from fleetlearn.registry._artifacts import (
    ArtifactStore,
    artifact_types,
    dump_estimator,
    load_estimator,
)
from fleetlearn.registry._engine import (
    SQLITE_BEGIN_OPTION,
    connect_error,
    create_registry_engine,
    is_postgres,
    sentence,
)
from fleetlearn.registry._entities import DatasetRecord, ModelVersion, Run, Trial, TrialUnit
from fleetlearn.registry._launch_store import LaunchStoreMixin
from fleetlearn.registry._migrate import upgrade_to_head
from fleetlearn.registry._names import validate_alias, validate_model_name
from fleetlearn.registry._schema import (
    SqlAlias,
    SqlDataset,
    SqlModelVersion,
    SqlRun,
    SqlRunDataset,
    SqlTrial,
    SqlTrialUnit,
    utcnow,
)
from fleetlearn.registry._serving_store import ServingStoreMixin

__all__ = ["Registry", "RUN_STATUSES", "TRIAL_STATUSES", "UNIT_STATUSES"]

RUN_STATUSES = ("running", "finished", "failed", "interrupted")
TERMINAL_RUN_STATUSES = ("finished", "failed", "interrupted")
TRIAL_STATUSES = ("pending", "running", "ok", "failed", "partial")
UNIT_STATUSES = ("ok", "failed")

# Keys for pg_advisory_xact_lock(int, int): one lock space per concern.
_PG_LOCK_MODEL_NAME = 0x464C01
_PG_LOCK_DIGEST = 0x464C02
_MAX_REGISTER_ATTEMPTS = 50
_NAMES_PER_QUERY = 500  # bound parameters per IN (...): well under SQLite's limit


def _check_choice(what: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(
            f"Invalid {what} {value!r}: expected one of {', '.join(map(repr, allowed))}."
        )
    return value


def _compact_versions(versions: Sequence[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"1-3, 5"`` for error messages."""
    ranges: list[list[int]] = []
    for v in sorted(versions):
        if ranges and v == ranges[-1][1] + 1:
            ranges[-1][1] = v
        else:
            ranges.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _is_version_conflict(exc: IntegrityError) -> bool:
    text = str(exc.orig)
    return (
        "uq_model_versions_name_version" in text
        or "model_versions.name, model_versions.version" in text
    )


class Registry(ServingStoreMixin, LaunchStoreMixin):
    """The fleetlearn registry: a SQL database plus a folder of skops artifacts.

    Opening a registry upgrades its schema to the newest migration. SQLite (the
    default, a file in ``~/.fleetlearn``) suits one machine; PostgreSQL suits a
    cluster. Many processes may use the same registry at once.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL; defaults to ``$FLEETLEARN_REGISTRY_URL`` or a SQLite file in
        ``$FLEETLEARN_HOME``.
    artifact_dir : str or Path, optional
        Where model artifacts are written; defaults to ``$FLEETLEARN_ARTIFACTS`` or
        ``<home>/artifacts``.

    Raises
    ------
    RegistryError
        When the URL is invalid or unsupported, or the database cannot be reached.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> reg = Registry(f"sqlite:///{tmp}/registry.db", artifact_dir=f"{tmp}/artifacts")
    >>> run = reg.create_run({"folds": 5}, seed=0, name="demo")
    >>> reg.get_run(run.id[:6]).name
    'demo'
    >>> reg.close()
    """

    def __init__(self, url: str | None = None, artifact_dir: str | Path | None = None) -> None:
        raw_url = url if url is not None else default_registry_url()
        self._engine, self.url = create_registry_engine(raw_url)
        self._read_engine = self._engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
        self._pg = is_postgres(self._engine)
        self._pid = os.getpid()
        self.artifacts = ArtifactStore(
            artifact_dir if artifact_dir is not None else default_artifact_dir()
        )
        try:
            upgrade_to_head(self._engine, self.url)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise connect_error(self.url, exc) from exc
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"Registry({self.url!r}, artifact_dir={str(self.artifacts.root)!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled database connection."""
        self._engine.dispose()

    # ------------------------------------------------------------------ sessions

    def _fork_guard(self) -> None:
        # Pooled connections must never be shared with a forked child: drop the
        # parent's connections (without closing them under the parent's feet).
        if os.getpid() != self._pid:
            self._engine.dispose(close=False)
            self._pid = os.getpid()

    @contextmanager
    def _errors(self, *, integrity: bool = True) -> Iterator[None]:
        try:
            yield
        except IntegrityError as exc:
            if not integrity:
                raise
            raise RegistryError(
                f"Registry {self.url} refused the change: {sentence(exc.orig)}"
            ) from exc
        except OperationalError as exc:
            raise connect_error(self.url, exc) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError):
                # The connection died under the statement (the server went away).
                raise connect_error(self.url, exc) from exc
            raise RegistryError(f"Registry {self.url} failed: {sentence(exc.orig)}") from exc
        except sa.exc.StatementError as exc:  # e.g. a value that is not JSON-serialisable
            raise RegistryError(
                f"Registry {self.url} cannot store a value: {sentence(exc.orig)}"
            ) from exc

    @contextmanager
    def _write(self, *, integrity: bool = True) -> Iterator[Session]:
        """One write transaction (SQLite: BEGIN IMMEDIATE), committed on success."""
        self._fork_guard()
        with self._errors(integrity=integrity):
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """One read-only transaction (SQLite: deferred, never waits for writers)."""
        self._fork_guard()
        with self._errors():
            with Session(self._read_engine) as session, session.begin():
                yield session

    def ping(self) -> None:
        """Check that the database answers now (one ``SELECT 1``).

        Raises
        ------
        RegistryUnavailableError
            The database is down, restarting or busy: retry later.
        """
        with self._read() as s:
            s.execute(sa.text("SELECT 1"))

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self._pg else sqlite.insert)(table)

    def _lock(self, session: Session, space: int, key: str) -> None:
        # SQLite needs nothing: BEGIN IMMEDIATE already serialises writers.
        if self._pg:
            session.execute(
                sa.text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
                {"space": space, "key": key},
            )

    # ---------------------------------------------------------------------- runs

    def create_run(self, config: dict[str, Any], seed: int, name: str | None = None,
                   run_id: str | None = None) -> Run:
        """Start a run: status ``"running"``, created and started now.

        Parameters
        ----------
        config : dict
            The resolved run configuration (stored as JSON, used to resume).
        seed : int
            The run seed every trial seed derives from.
        name : str, optional
            A human-friendly label.
        run_id : str, optional
            The id to use (12 lowercase hex characters); a new random one by default.
            The API picks it up front so it can answer before the run starts.

        Returns
        -------
        Run
        """
        if run_id is not None and not re.fullmatch(r"[0-9a-f]{12}", run_id):
            raise ConfigError(f"A run id is 12 lowercase hex characters, got '{run_id}'.")
        if not isinstance(config, dict):
            raise ConfigError(f"A run config must be a dict, got {type(config).__name__}.")
        now = utcnow()
        row = SqlRun(
            id=run_id or uuid.uuid4().hex[:12],
            name=name,
            status="running",
            config=config,
            seed=int(seed),
            created_at=now,
            started_at=now,
        )
        with self._write() as s:
            s.add(row)
        return _run(row)

    def set_run_status(self, run_id: str, status: str, error: str | None = None) -> Run:
        """Set a run's status; terminal states stamp ``finished_at``.

        ``run_id`` may be a unique prefix, as in :meth:`get_run`. Setting ``"running"``
        again (a resumed run) clears ``finished_at`` and ``error``.
        """
        _check_choice("run status", status, RUN_STATUSES)
        with self._write() as s:
            row = self._resolve_run(s, run_id)
            row.status = status
            if status in TERMINAL_RUN_STATUSES:
                row.finished_at = utcnow()
                row.error = error
            else:
                row.finished_at = None
                row.error = None
            return _run(row)

    def set_run_launcher(self, run_id: str, launcher: dict[str, Any] | None) -> Run:
        """Record the training process of a run (pid, host, log, status, exit code).

        Any API process reads it back through :meth:`get_run` (``Run.launcher``), so it
        can report on, cancel and resume a run another process started. The whole
        record is replaced; None clears it.
        """
        if launcher is not None and not isinstance(launcher, dict):
            raise ConfigError(f"A run's launcher record must be a dict, got "
                              f"{type(launcher).__name__}.")
        with self._write() as s:
            row = self._resolve_run(s, run_id)
            row.launcher = dict(launcher) if launcher is not None else None
            return _run(row)

    def get_run(self, run_id: str) -> Run:
        """Return a run by id or by a unique prefix of its id.

        Raises
        ------
        NotFoundError
            When no run matches, or the prefix matches several runs.
        """
        with self._read() as s:
            return _run(self._resolve_run(s, run_id))

    def list_runs(self, limit: int = 50, offset: int = 0) -> list[Run]:
        """Return the newest ``limit`` runs, newest first, after skipping ``offset``."""
        with self._read() as s:
            rows = s.scalars(
                sa.select(SqlRun).order_by(SqlRun.created_at.desc(), SqlRun.id)
                .offset(max(int(offset), 0)).limit(limit)
            )
            return [_run(r) for r in rows]

    def count_runs(self) -> dict[str, int]:
        """Return how many runs the registry holds in each status (0 for none).

        Examples
        --------
        >>> Registry("sqlite://").count_runs()
        {'running': 0, 'finished': 0, 'failed': 0, 'interrupted': 0}
        """
        with self._read() as s:
            rows = s.execute(sa.select(SqlRun.status, sa.func.count()).group_by(SqlRun.status))
            counts = dict.fromkeys(RUN_STATUSES, 0)
            counts.update({status: int(n) for status, n in rows})
            return counts

    def _resolve_run(self, s: Session, run_id: str) -> SqlRun:
        row = s.get(SqlRun, run_id) if run_id else None
        if row is not None:
            return row
        if run_id:
            pattern = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            matches = list(
                s.scalars(
                    sa.select(SqlRun)
                    .where(SqlRun.id.like(f"{pattern}%", escape="\\"))
                    .order_by(SqlRun.created_at.desc())
                    .limit(6)
                )
            )
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                shown = ", ".join(m.id for m in matches[:5])
                raise NotFoundError(
                    f"Run id prefix {run_id!r} is ambiguous: it matches {shown}"
                    f"{', ...' if len(matches) > 5 else ''}. Give more characters of the id."
                )
        raise self._run_not_found(s, run_id)

    def _run_not_found(self, s: Session, run_id: str) -> NotFoundError:
        recent = list(s.scalars(sa.select(SqlRun.id).order_by(SqlRun.created_at.desc()).limit(100)))
        hint = did_you_mean(run_id, recent) if recent else " The registry has no runs yet."
        return NotFoundError(
            f"No run with id {run_id!r} in registry {self.url}.{hint} "
            "List runs with `fleetlearn runs list`."
        )

    def _require_run(self, s: Session, run_id: str) -> SqlRun:
        row = s.get(SqlRun, run_id)
        if row is None:
            raise self._run_not_found(s, run_id)
        return row

    # ------------------------------------------------------------------ datasets

    def add_dataset(
        self,
        run_id: str,
        *,
        fingerprint: str,
        name: str,
        source: str | None,
        n_rows: int,
        n_features: int,
        task: str,
        target: str,
        schema: dict[str, Any],
    ) -> DatasetRecord:
        """Record a dataset (by fingerprint) and link it to a run under ``name``.

        Idempotent: the same fingerprint is stored once however many runs use it; a
        second call for the same run only updates the name used in that run.

        Returns
        -------
        DatasetRecord
            With ``name`` as used in this run.
        """
        with self._write() as s:
            self._require_run(s, run_id)
            s.execute(
                self._insert(SqlDataset)
                .values(
                    fingerprint=fingerprint,
                    name=name,
                    source=source,
                    n_rows=int(n_rows),
                    n_features=int(n_features),
                    task=task,
                    target=target,
                    schema=schema,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["fingerprint"])
            )
            row = s.scalars(
                sa.select(SqlDataset).where(SqlDataset.fingerprint == fingerprint)
            ).one()
            link = self._insert(SqlRunDataset).values(run_id=run_id, dataset_id=row.id, name=name)
            s.execute(
                link.on_conflict_do_update(
                    index_elements=["run_id", "dataset_id"], set_={"name": link.excluded.name}
                )
            )
            return _dataset(row, name)

    def run_datasets(self, run_id: str) -> list[DatasetRecord]:
        """Return the datasets of a run, each with the name it had in that run."""
        with self._read() as s:
            self._require_run(s, run_id)
            rows = s.execute(
                sa.select(SqlDataset, SqlRunDataset.name)
                .join(SqlRunDataset, SqlRunDataset.dataset_id == SqlDataset.id)
                .where(SqlRunDataset.run_id == run_id)
                .order_by(SqlDataset.id)
            )
            return [_dataset(row, run_name) for row, run_name in rows]

    # ------------------------------------------------------------ trials, journal

    def ensure_trial(
        self, run_id: str, dataset_id: int, model_name: str, spec: dict[str, Any]
    ) -> Trial:
        """Return the trial of ``model_name`` on a dataset in a run, creating it if new.

        Idempotent (resume calls it again): an existing trial keeps its spec, status
        and units.
        """
        return self.ensure_trials(run_id, dataset_id, [(model_name, spec)])[0]

    def ensure_trials(
        self, run_id: str, dataset_id: int, models: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[Trial]:
        """:meth:`ensure_trial` for many models of one dataset in one transaction.

        Returns the trials in the order of ``models`` (``(model_name, spec)`` pairs).
        A run of thousands of models opens in one round trip instead of thousands.
        """
        if not models:
            return []
        now = utcnow()
        with self._write() as s:
            self._require_run(s, run_id)
            if s.get(SqlDataset, dataset_id) is None:
                raise NotFoundError(
                    f"No dataset with id {dataset_id} in registry {self.url}: add it with "
                    "add_dataset() before creating its trials."
                )
            s.execute(
                self._insert(SqlTrial.__table__).on_conflict_do_nothing(
                    index_elements=["run_id", "dataset_id", "model_name"]),
                [{"run_id": run_id, "dataset_id": dataset_id, "model_name": name,
                  "spec": spec, "status": "pending", "created_at": now, "updated_at": now}
                 for name, spec in models],
            )
            names = [name for name, _ in models]
            by_name: dict[str, SqlTrial] = {}
            for start in range(0, len(names), _NAMES_PER_QUERY):
                chunk = names[start:start + _NAMES_PER_QUERY]
                by_name.update((row.model_name, row) for row in s.scalars(
                    sa.select(SqlTrial)
                    .options(joinedload(SqlTrial.units))
                    .where(SqlTrial.run_id == run_id, SqlTrial.dataset_id == dataset_id,
                           SqlTrial.model_name.in_(chunk))
                ).unique())
            return [_trial(by_name[name]) for name in names]

    def record_unit(
        self,
        trial_id: int,
        unit: str,
        status: str,
        payload: dict[str, Any],
        error: str | None = None,
        duration_s: float | None = None,
    ) -> None:
        """Journal one unit of a trial (a fold, the final fit, a curve).

        Idempotent upsert on ``(trial_id, unit)``: recording a unit again replaces
        its status, payload, error and duration. Trial status is not changed: set it
        with :meth:`set_trial_status`.
        """
        self.record_units(
            [
                {
                    "trial_id": trial_id,
                    "unit": unit,
                    "status": status,
                    "payload": payload,
                    "error": error,
                    "duration_s": duration_s,
                }
            ]
        )

    def record_units(self, items: Iterable[dict[str, Any]]) -> None:
        """Journal many units in one transaction (same semantics as :meth:`record_unit`).

        Parameters
        ----------
        items : iterable of dict
            Each with ``trial_id``, ``unit``, ``status``, ``payload`` and optionally
            ``error`` and ``duration_s``. A later item for the same unit wins.
        """
        rows = _unit_rows(items)
        if not rows:
            return
        with self._write() as s:
            self._upsert_units(s, rows)

    def _upsert_units(self, s: Session, rows: list[dict[str, Any]]) -> None:
        trial_ids = sorted({r["trial_id"] for r in rows})
        known = set(s.scalars(sa.select(SqlTrial.id).where(SqlTrial.id.in_(trial_ids))))
        missing = [t for t in trial_ids if t not in known]
        if missing:
            raise NotFoundError(
                f"Cannot journal units of trial(s) {', '.join(map(str, missing))}: no such "
                f"trial in registry {self.url}. Create trials with ensure_trial() first."
            )
        # One statement for every batch, run as an executemany: SQLAlchemy compiles it
        # once (cached) and sends the rows as multi-row VALUES ("insertmanyvalues"),
        # where building ``.values(rows)`` compiled a new statement for every batch.
        s.execute(self._unit_upsert(), rows)
        # Sorted ids: concurrent batches lock trial rows in the same order (no deadlock).
        s.execute(sa.update(SqlTrial).where(SqlTrial.id.in_(trial_ids)).values(updated_at=utcnow()))

    def _unit_upsert(self) -> Any:
        stmt = getattr(self, "_unit_upsert_stmt", None)
        if stmt is None:
            insert = self._insert(SqlTrialUnit.__table__)
            stmt = self._unit_upsert_stmt = insert.on_conflict_do_update(
                index_elements=["trial_id", "unit"],
                set_={c: insert.excluded[c] for c in ("status", "payload", "error",
                                                       "duration_s")},
            )
        return stmt

    def set_trial_status(self, trial_id: int, status: str, error: str | None = None) -> None:
        """Set a trial's status (``pending``, ``running``, ``ok``, ``failed``, ``partial``)."""
        _check_choice("trial status", status, TRIAL_STATUSES)
        with self._write() as s:
            row = s.get(SqlTrial, trial_id)
            if row is None:
                raise NotFoundError(f"No trial with id {trial_id} in registry {self.url}.")
            row.status = status
            row.error = error
            row.updated_at = utcnow()

    def set_trial_statuses(self, statuses: dict[int, tuple[str, str | None]]) -> None:
        """:meth:`set_trial_status` for many trials in one transaction.

        ``statuses`` maps a trial id to ``(status, error)``.
        """
        if not statuses:
            return
        for status, _ in statuses.values():
            _check_choice("trial status", status, TRIAL_STATUSES)
        now = utcnow()
        with self._write() as s:
            known = set(s.scalars(sa.select(SqlTrial.id).where(SqlTrial.id.in_(list(statuses)))))
            missing = sorted(set(statuses) - known)
            if missing:
                raise NotFoundError(
                    f"No trial with id {', '.join(map(str, missing))} in registry {self.url}."
                )
            s.execute(
                sa.update(SqlTrial.__table__)
                .where(SqlTrial.__table__.c.id == sa.bindparam("trial_id"))
                .values(status=sa.bindparam("new_status"), error=sa.bindparam("new_error"),
                        updated_at=now),
                [{"trial_id": t, "new_status": st, "new_error": err}
                 for t, (st, err) in sorted(statuses.items())],
            )

    def list_trials(self, run_id: str, dataset_id: int | None = None) -> list[Trial]:
        """Return a run's trials (optionally of one dataset) with their units, by id."""
        # Two plain column queries, not ORM objects: a run of thousands of trials reads
        # back in a fraction of the time (the driver reads its run once at the end).
        trial_cols = [SqlTrial.id, SqlTrial.run_id, SqlTrial.dataset_id, SqlTrial.model_name,
                      SqlTrial.spec, SqlTrial.status, SqlTrial.error, SqlTrial.created_at,
                      SqlTrial.updated_at]
        unit_cols = [SqlTrialUnit.id, SqlTrialUnit.trial_id, SqlTrialUnit.unit,
                     SqlTrialUnit.status, SqlTrialUnit.payload, SqlTrialUnit.error,
                     SqlTrialUnit.duration_s, SqlTrialUnit.created_at]
        with self._read() as s:
            self._require_run(s, run_id)
            trials = sa.select(*trial_cols).where(SqlTrial.run_id == run_id)
            units = (sa.select(*unit_cols).join(SqlTrial, SqlTrial.id == SqlTrialUnit.trial_id)
                     .where(SqlTrial.run_id == run_id))
            if dataset_id is not None:
                trials = trials.where(SqlTrial.dataset_id == dataset_id)
                units = units.where(SqlTrial.dataset_id == dataset_id)
            by_trial: dict[int, dict[str, TrialUnit]] = {}
            for row in s.execute(units.order_by(SqlTrialUnit.id)):
                by_trial.setdefault(row[1], {})[row[2]] = TrialUnit(*row)
            return [Trial(*row, units=by_trial.get(row[0], {}))
                    for row in s.execute(trials.order_by(SqlTrial.id))]

    def completed_units(self, run_id: str) -> set[tuple[int, str, str]]:
        """Return ``(dataset_id, model_name, unit)`` of every journaled unit of a run.

        Both ``"ok"`` and ``"failed"`` units count: resuming skips them.
        """
        with self._read() as s:
            rows = s.execute(
                sa.select(SqlTrial.dataset_id, SqlTrial.model_name, SqlTrialUnit.unit)
                .join(SqlTrialUnit, SqlTrialUnit.trial_id == SqlTrial.id)
                .where(SqlTrial.run_id == run_id, SqlTrialUnit.status.in_(UNIT_STATUSES))
            )
            return {(d, m, u) for d, m, u in rows}

    # -------------------------------------------------------------------- models

    def register_model(
        self,
        name: str,
        *,
        estimator: Any = None,
        artifact: bytes | None = None,
        run_id: str | None = None,
        trial_id: int | None = None,
        dataset_id: int | None = None,
        metrics: dict[str, Any],
        params: dict[str, Any],
        input_schema: dict[str, Any],
        tags: dict[str, Any] | None = None,
        description: str | None = None,
        journal_unit: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Store a fitted model as the next version of ``name``.

        The skops artifact is written first (content-addressed, atomic rename), then
        one transaction inserts the version and, if given, the journal unit of the
        final fit: either both are recorded or neither. Concurrent registrations of
        the same name get distinct, gap-free version numbers.

        Parameters
        ----------
        name : str
            Model name (letters, digits, ``_.-``).
        estimator : object, optional
            A fitted estimator, serialised with skops.
        artifact : bytes, optional
            Pre-serialised skops bytes (exactly one of ``estimator``/``artifact``).
        run_id, trial_id, dataset_id : optional
            Lineage.
        metrics, params, input_schema : dict
            Scores, estimator parameters and the input columns the model expects.
        tags : dict, optional
        description : str, optional
        journal_unit : dict, optional
            ``{"trial_id", "unit", "status", "payload", "duration_s"}`` recorded with
            the version in the same transaction.

        Returns
        -------
        ModelVersion
        """
        validate_model_name(name)
        if (estimator is None) == (artifact is None):
            raise ConfigError(
                f"register_model({name!r}) needs exactly one of estimator= (a fitted model) "
                "or artifact= (skops bytes)."
            )
        data = bytes(artifact) if artifact is not None else dump_estimator(estimator)
        # Recorded with the version (what load checks against the allow-list); also
        # fails early on bytes that are not skops.
        types = artifact_types(data, source=f"The artifact of model {name!r}")
        unit_rows = _unit_rows([journal_unit]) if journal_unit is not None else []
        digest, size, _ = self.artifacts.save_bytes(data)

        for attempt in range(_MAX_REGISTER_ATTEMPTS):
            try:
                with self._write(integrity=False) as s:
                    self._lock(s, _PG_LOCK_MODEL_NAME, name)
                    self._lock(s, _PG_LOCK_DIGEST, digest)
                    # A concurrent delete_model_version may have removed the shared file
                    # after we wrote it; under the digest lock, put it back.
                    if not self.artifacts.exists(digest):
                        self.artifacts.save_bytes(data)
                    self._check_lineage(s, name, run_id, trial_id, dataset_id)
                    latest = s.scalar(
                        sa.select(sa.func.max(SqlModelVersion.version)).where(
                            SqlModelVersion.name == name
                        )
                    )
                    row = SqlModelVersion(
                        name=name,
                        version=(latest or 0) + 1,
                        run_id=run_id,
                        trial_id=trial_id,
                        dataset_id=dataset_id,
                        metrics=metrics,
                        params=params,
                        input_schema=input_schema,
                        artifact_digest=digest,
                        artifact_size=size,
                        artifact_types=types,
                        tags=tags or {},
                        description=description,
                        created_at=utcnow(),
                    )
                    s.add(row)
                    s.flush()
                    if unit_rows:
                        self._upsert_units(s, unit_rows)
                    return _model_version(row, ())
            except IntegrityError as exc:
                if _is_version_conflict(exc) and attempt + 1 < _MAX_REGISTER_ATTEMPTS:
                    # Another process took this number first: retry with the next one.
                    time.sleep(random.uniform(0.0, 0.02 * (attempt + 1)))
                    continue
                raise RegistryError(
                    f"Registry {self.url} refused model {name!r}: {sentence(exc.orig)}"
                ) from exc
        raise RegistryError(  # pragma: no cover - only under pathological contention
            f"Could not allocate a version number for model {name!r} after "
            f"{_MAX_REGISTER_ATTEMPTS} attempts; retry the registration."
        )

    def _check_lineage(
        self,
        s: Session,
        name: str,
        run_id: str | None,
        trial_id: int | None,
        dataset_id: int | None,
    ) -> None:
        for value, table, what in (
            (run_id, SqlRun, "run"),
            (trial_id, SqlTrial, "trial"),
            (dataset_id, SqlDataset, "dataset"),
        ):
            if value is not None and s.get(table, value) is None:
                raise NotFoundError(
                    f"Cannot register model {name!r}: its {what} {value!r} does not exist in "
                    f"registry {self.url}. Pass the id the registry returned for it."
                )

    def list_models(
        self,
        name: str | None = None,
        dataset: str | None = None,
        task: str | None = None,
        run_id: str | None = None,
        *,
        alias: str | None = None,
        has_alias: bool = False,
        metric: str | None = None,
        higher_is_better: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ModelVersion]:
        """List model versions; every filter, the order and the page are the database's.

        Parameters
        ----------
        name : str, optional
            When given, every version of that model, oldest first; otherwise the
            latest version of each model, by name.
        dataset : str, optional
            Only versions trained on a dataset of that name (its registered name or
            its name in the training run) or fingerprint.
        task : str, optional
            Only versions trained on a dataset of that task (e.g. ``"classification"``).
        run_id : str, optional
            Only versions registered by that run (exact id).
        alias : str, optional
            Instead of each model's latest version, the version its ``alias`` points at
            (models without that alias are left out; the filters above choose the models).
        has_alias : bool
            Every version holding at least one alias (the filters above apply to the
            version itself), by name then version.
        metric : str, optional
            Only versions with a finite test score on ``metric``, best first (ties by
            name, then version).
        higher_is_better : bool
            The direction of ``metric`` (e.g. False for an error).
        limit, offset : int, optional
            The page: at most ``limit`` versions after skipping ``offset``.

        Examples
        --------
        >>> reg = Registry()    # doctest: +SKIP
        >>> [mv.ref for mv in reg.list_models(has_alias=True, limit=50)]    # doctest: +SKIP
        ['iris-knn:2', 'iris-random_forest:1']
        >>> best = reg.list_models(metric="accuracy", limit=1)    # doctest: +SKIP
        """
        mv = SqlModelVersion
        query = sa.select(mv)
        if name is not None:
            query = query.where(mv.name == name)
        if run_id is not None:
            query = query.where(mv.run_id == run_id)
        if dataset is not None or task is not None:
            query = query.join(SqlDataset, SqlDataset.id == mv.dataset_id)
            if task is not None:
                query = query.where(SqlDataset.task == task)
            if dataset is not None:
                in_run = sa.exists().where(
                    SqlRunDataset.run_id == mv.run_id,
                    SqlRunDataset.dataset_id == mv.dataset_id,
                    SqlRunDataset.name == dataset,
                )
                query = query.where(
                    sa.or_(SqlDataset.name == dataset, SqlDataset.fingerprint == dataset, in_run)
                )
        order: list[Any] = [mv.name, mv.version]
        if alias is not None:
            holds = sa.and_(SqlAlias.name == mv.name, SqlAlias.version == mv.version,
                            SqlAlias.alias == alias)
            if name is None:
                # The models the filters choose, each by the version its alias points at
                # (which the filters need not match).
                names = query.with_only_columns(mv.name).distinct().scalar_subquery()
                query = sa.select(mv).join(SqlAlias, holds).where(mv.name.in_(names))
            else:
                query = query.join(SqlAlias, holds)
        elif has_alias:
            query = query.where(sa.exists().where(SqlAlias.name == mv.name,
                                                  SqlAlias.version == mv.version))
        elif name is None:
            latest = (
                query.with_only_columns(mv.name, sa.func.max(mv.version).label("version"))
                .group_by(mv.name)
                .subquery()
            )
            query = sa.select(mv).join(
                latest, sa.and_(mv.name == latest.c.name, mv.version == latest.c.version))
        if name is not None:
            order = [mv.version]
        if metric is not None:
            score = self._test_score(metric)
            if score is None:  # a name no JSON path can hold: no version has that score
                return []
            query = query.where(score.isnot(None))
            order = [score.desc() if higher_is_better else score.asc(), *order]
        query = query.order_by(*order)
        if offset:
            query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as s:
            rows = list(s.scalars(query))
            aliases = self._aliases_by_version(s, {r.name for r in rows})
            return [_model_version(r, aliases.get((r.name, r.version), ())) for r in rows]

    def _test_score(self, metric: str) -> Any:
        """SQL for a version's test score on ``metric``: the number, else NULL (missing,
        null, or not a number). None when ``metric`` cannot be a JSON path key."""
        column = SqlModelVersion.metrics
        if self._pg:
            # One key at a time (-> with a bound text each): any metric name is safe.
            value = column["test"][metric]
            return sa.case((sa.func.jsonb_typeof(value) == "number",
                            value.as_float()))
        # SQLite's JSON path has no escape for these.
        if '"' in metric or "\\" in metric:
            return None
        path = f'$."test"."{metric}"'
        return sa.case((sa.func.json_type(column, path).in_(("real", "integer")),
                        sa.func.json_extract(column, path)))

    def get_model_version(
        self, name: str, version: int | None = None, alias: str | None = None
    ) -> ModelVersion:
        """Return one version of a model: by number, by alias, or the latest.

        Raises
        ------
        NotFoundError
            Unknown model (with a close name suggested), version (existing ones
            listed) or alias (existing ones listed).
        """
        with self._read() as s:
            row = self._resolve_version(s, name, version, alias)
            aliases = self._aliases_by_version(s, {name})
            return _model_version(row, aliases.get((row.name, row.version), ()))

    def _resolve_version(
        self, s: Session, name: str, version: int | None, alias: str | None
    ) -> SqlModelVersion:
        if version is not None and alias is not None:
            raise ConfigError(
                f"Model {name!r}: give a version or an alias, not both "
                f"(got version {version} and alias {alias!r})."
            )
        versions = list(
            s.scalars(sa.select(SqlModelVersion.version).where(SqlModelVersion.name == name))
        )
        if not versions:
            raise self._model_not_found(s, name)
        if alias is not None:
            target = s.scalar(
                sa.select(SqlAlias.version).where(SqlAlias.name == name, SqlAlias.alias == alias)
            )
            if target is None:
                existing = sorted(s.scalars(sa.select(SqlAlias.alias).where(SqlAlias.name == name)))
                listed = ", ".join(existing) if existing else "none"
                raise NotFoundError(
                    f"Model {name!r} has no alias {alias!r}.{did_you_mean(alias, existing)} "
                    f"Existing aliases: {listed}. Set one with set_alias / "
                    "`fleetlearn models alias`."
                )
            version = target
        elif version is None:
            version = max(versions)
        elif version not in versions:
            raise NotFoundError(
                f"Model {name!r} has no version {version}. Existing versions: "
                f"{_compact_versions(versions)}."
            )
        return s.scalars(
            sa.select(SqlModelVersion).where(
                SqlModelVersion.name == name, SqlModelVersion.version == version
            )
        ).one()

    def _model_not_found(self, s: Session, name: str) -> NotFoundError:
        names = list(s.scalars(sa.select(SqlModelVersion.name).distinct()))
        hint = did_you_mean(name, names) if names else " The registry has no models yet."
        return NotFoundError(
            f"No model named {name!r} in registry {self.url}.{hint} "
            "List models with `fleetlearn models list`."
        )

    def _aliases_by_version(
        self, s: Session, names: set[str]
    ) -> dict[tuple[str, int], tuple[str, ...]]:
        if not names:
            return {}
        out: dict[tuple[str, int], list[str]] = {}
        rows = s.execute(
            sa.select(SqlAlias.name, SqlAlias.version, SqlAlias.alias)
            .where(SqlAlias.name.in_(sorted(names)))
            .order_by(SqlAlias.alias)
        )
        for name, version, alias in rows:
            out.setdefault((name, version), []).append(alias)
        return {key: tuple(v) for key, v in out.items()}

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of model ``name`` at ``version`` (moving it if it exists)."""
        validate_alias(alias)
        with self._write() as s:
            self._resolve_version(s, name, int(version), None)  # NotFoundError if absent
            stmt = self._insert(SqlAlias).values(
                name=name, alias=alias, version=int(version), updated_at=utcnow()
            )
            s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name", "alias"],
                    set_={"version": stmt.excluded.version, "updated_at": stmt.excluded.updated_at},
                )
            )

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias; NotFoundError if it does not exist."""
        with self._write() as s:
            row = s.get(SqlAlias, (name, alias))
            if row is None:
                self._resolve_version(s, name, None, alias)  # raises a precise NotFoundError
            s.delete(row)

    def aliases(self, name: str) -> dict[str, int]:
        """Return ``{alias: version}`` for a model; NotFoundError for an unknown model."""
        with self._read() as s:
            query = (
                sa.select(SqlAlias.alias, SqlAlias.version)
                .where(SqlAlias.name == name)
                .order_by(SqlAlias.alias)
            )
            rows = {alias: version for alias, version in s.execute(query)}
            if not rows:
                # No alias may also mean no such model: tell the two apart.
                any_version = sa.select(SqlModelVersion.id).where(SqlModelVersion.name == name)
                if s.scalar(any_version.limit(1)) is None:
                    raise self._model_not_found(s, name)
            return rows

    def delete_model_version(self, name: str, version: int) -> None:
        """Delete one version and the aliases pointing at it.

        The artifact file is removed only when no other version shares its digest.
        """
        with self._write() as s:
            self._lock(s, _PG_LOCK_MODEL_NAME, name)
            row = self._resolve_version(s, name, int(version), None)
            digest = row.artifact_digest
            s.execute(
                sa.delete(SqlAlias).where(SqlAlias.name == name, SqlAlias.version == row.version)
            )
            s.delete(row)
        # Second transaction, under the digest lock register_model also takes: a
        # concurrent registration of the same content either committed already (we see
        # its reference and keep the file) or will rewrite the file after we unlink it.
        with self._write() as s:
            self._lock(s, _PG_LOCK_DIGEST, digest)
            still_used = s.scalar(
                sa.select(SqlModelVersion.id)
                .where(SqlModelVersion.artifact_digest == digest)
                .limit(1)
            )
            if still_used is None:
                self.artifacts.delete(digest)

    def load_model(
        self,
        name: str,
        version: int | None = None,
        alias: str | None = None,
        trusted: Iterable[str] = (),
    ) -> Any:
        """Load a registered model, verifying its artifact.

        Parameters
        ----------
        name, version, alias
            As in :meth:`get_model_version` (latest when neither is given).
        trusted : iterable of str
            Extra exact type names to trust, for estimators from your own packages
            (added to ``FLEETLEARN_TRUSTED_TYPES``; module prefixes are refused).

        Raises
        ------
        ArtifactIntegrityError
            When the file is missing, does not match the stored sha256 (the message
            starts "Integrity check failed for model ..."), or holds types outside the
            trusted list (each one named).
        ConfigError
            When an opt-in is a module prefix rather than an exact type name.
        """
        mv = self.get_model_version(name, version=version, alias=alias)
        return load_estimator(self.load_artifact(mv), trusted,
                              source=f"model {mv.ref} "
                                     f"({self.artifacts.path_for(mv.artifact_digest)})")

    def load_artifact(self, mv: ModelVersion) -> bytes:
        """Return a version's skops bytes, checked against its registered sha256.

        Raises
        ------
        ArtifactIntegrityError
            "Integrity check failed for model NAME:VERSION: ..." when the file is
            missing or does not match.
        """
        try:
            return self.artifacts.load_bytes(mv.artifact_digest)
        except ArtifactIntegrityError as exc:
            raise ArtifactIntegrityError(
                f"Integrity check failed for model {mv.ref}: {exc}") from exc

    def version_stamp(self) -> str:
        """Return a value that changes whenever a version or an alias changes.

        Cheap (two small queries): serving polls it to know when to reload.
        """
        with self._read() as s:
            max_id, count = s.execute(
                sa.select(sa.func.max(SqlModelVersion.id), sa.func.count(SqlModelVersion.id))
            ).one()
            # The alias table is small (a few per model): hash its content exactly rather
            # than trust timestamps from machines whose clocks may disagree.
            alias_rows = s.execute(
                sa.select(SqlAlias.name, SqlAlias.alias, SqlAlias.version).order_by(
                    SqlAlias.name, SqlAlias.alias
                )
            ).all()
        alias_hash = hashlib.sha1(repr(list(map(tuple, alias_rows))).encode()).hexdigest()[:12]
        return f"{max_id or 0}-{count}-{alias_hash}"


# ------------------------------------------------------------ helpers


def _unit_rows(items: Iterable[dict[str, Any] | None]) -> list[dict[str, Any]]:
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    now = utcnow()
    for item in items:
        if not isinstance(item, dict):
            raise ConfigError(f"A journal unit must be a dict, got {type(item).__name__}.")
        missing = [k for k in ("trial_id", "unit", "status") if item.get(k) is None]
        if missing:
            raise ConfigError(
                f"A journal unit is missing {', '.join(missing)}: expected keys trial_id, "
                f"unit, status, payload (and optional error, duration_s). Got {sorted(item)}."
            )
        status = _check_choice("unit status", item["status"], UNIT_STATUSES)
        duration = item.get("duration_s")
        row = {
            "trial_id": int(item["trial_id"]),
            "unit": str(item["unit"]),
            "status": status,
            "payload": item.get("payload") or {},
            "error": item.get("error"),
            "duration_s": float(duration) if duration is not None else None,
            "created_at": now,
        }
        latest[(row["trial_id"], row["unit"])] = row  # one row per key: PG requires it
    return [latest[key] for key in sorted(latest)]


# ------------------------------------------------------------- row -> entity


def _run(row: SqlRun) -> Run:
    return Run(
        id=row.id,
        name=row.name,
        status=row.status,
        config=row.config,
        seed=row.seed,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
        launcher=row.launcher,
    )


def _dataset(row: SqlDataset, name: str | None = None) -> DatasetRecord:
    return DatasetRecord(
        id=row.id,
        fingerprint=row.fingerprint,
        name=name if name is not None else row.name,
        source=row.source,
        n_rows=row.n_rows,
        n_features=row.n_features,
        task=row.task,
        target=row.target,
        schema=row.schema,
        created_at=row.created_at,
    )


def _unit(row: SqlTrialUnit) -> TrialUnit:
    return TrialUnit(
        id=row.id,
        trial_id=row.trial_id,
        unit=row.unit,
        status=row.status,
        payload=row.payload,
        error=row.error,
        duration_s=row.duration_s,
        created_at=row.created_at,
    )


def _trial(row: SqlTrial) -> Trial:
    return Trial(
        id=row.id,
        run_id=row.run_id,
        dataset_id=row.dataset_id,
        model_name=row.model_name,
        spec=row.spec,
        status=row.status,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        units={u.unit: _unit(u) for u in row.units},
    )


def _model_version(row: SqlModelVersion, aliases: Sequence[str]) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        name=row.name,
        version=row.version,
        run_id=row.run_id,
        trial_id=row.trial_id,
        dataset_id=row.dataset_id,
        metrics=row.metrics,
        params=row.params,
        input_schema=row.input_schema,
        artifact_digest=row.artifact_digest,
        artifact_size=row.artifact_size,
        artifact_types=None if row.artifact_types is None else tuple(row.artifact_types),
        tags=row.tags,
        description=row.description,
        created_at=row.created_at,
        aliases=tuple(aliases),
    )
