"""A run as its readers see it: summary, detail, progress and failed units.

Computed from the registry alone (the journal is the truth), so the CLI, the API, the
report and the GUI show the same numbers for a run, finished or still training.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fleetlearn.insights._text import first_line
from fleetlearn.training import plan_run_units

if TYPE_CHECKING:
    from fleetlearn.registry import Registry, Run, Trial

__all__ = ["DatasetProgress", "RunDataset", "RunDetail", "RunProgress", "RunSummary",
           "UnitFailure", "UnitRetry", "run_detail", "run_failures", "run_progress",
           "run_retries", "run_summaries"]

#: What a failed unit without error text shows (a lost task can end so).
UNKNOWN_ERROR = "unknown error"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


@dataclass(frozen=True)
class UnitFailure:
    """One unit of a run that did not succeed.

    Attributes
    ----------
    dataset, model, unit : str
        Where it failed (``unit`` is ``cv0`` …, ``final`` or ``curve``).
    status : str
        The journal's status (``failed``).
    error : str
        The first line of the error (:func:`first_line`); the journal keeps the rest.
    """

    dataset: str
    model: str
    unit: str
    status: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        """``{"dataset", "model", "unit", "status", "error"}``."""
        return {"dataset": self.dataset, "model": self.model, "unit": self.unit,
                "status": self.status, "error": self.error}


@dataclass(frozen=True)
class UnitRetry:
    """One unit of a run that Ray ran more than once (its worker or node was lost).

    Attributes
    ----------
    dataset, model, unit : str
        Which unit.
    status : str
        The journal's status for its last attempt (``ok``, or ``failed`` when every
        attempt was lost).
    attempts : int
        How many times Ray started it, the last one included.
    node, node_ip : str or None
        Where the last attempt ran (None when no attempt came back).
    failed_attempts : tuple of dict
        The attempts before it, ``{"attempt", "node", "node_ip", "error"}`` each, as
        Ray recorded them (``node`` None when Ray had no record); empty when unknown.
    """

    dataset: str
    model: str
    unit: str
    status: str
    attempts: int
    node: str | None
    node_ip: str | None
    failed_attempts: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """Every attribute, ``failed_attempts`` as a list."""
        return {"dataset": self.dataset, "model": self.model, "unit": self.unit,
                "status": self.status, "attempts": self.attempts, "node": self.node,
                "node_ip": self.node_ip, "failed_attempts": list(self.failed_attempts)}


@dataclass(frozen=True)
class DatasetProgress:
    """Units journaled and planned for one dataset of a run."""

    units_done: int
    units_total: int

    def to_dict(self) -> dict[str, Any]:
        """``{"units_done", "units_total"}``."""
        return {"units_done": self.units_done, "units_total": self.units_total}


@dataclass(frozen=True)
class RunProgress:
    """How far a run is: units (folds, final fits, curves) and trials done of planned.

    Attributes
    ----------
    units_done, units_total : int
        Journaled units (a failed unit counts as done: it is not retried) and planned ones.
    trials_done, trials_total : int
        Trials (one model on one dataset) with every planned unit journaled, and trials.
    fraction : float
        ``units_done / units_total`` rounded to 4 digits (0 for an empty plan).
    datasets : dict of str to DatasetProgress
        Per dataset, by its name in the run.
    failures : tuple of UnitFailure
        Every unit that did not succeed, in trial order then unit name.
    retried : tuple of UnitRetry
        Every unit that Ray ran more than once because its worker or node was lost,
        in the same order.
    """

    units_done: int
    units_total: int
    trials_done: int
    trials_total: int
    fraction: float
    datasets: dict[str, DatasetProgress]
    failures: tuple[UnitFailure, ...]
    retried: tuple[UnitRetry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The API's ``progress`` object (failures without their status: all failed)."""
        return {"units_done": self.units_done, "units_total": self.units_total,
                "trials_done": self.trials_done, "trials_total": self.trials_total,
                "fraction": self.fraction,
                "datasets": {name: d.to_dict() for name, d in self.datasets.items()},
                "failures": [{"dataset": f.dataset, "model": f.model, "unit": f.unit,
                              "error": f.error} for f in self.failures],
                "retried": [r.to_dict() for r in self.retried]}


@dataclass(frozen=True)
class RunDataset:
    """One table of a run, by its name in that run."""

    name: str
    rows: int
    features: int
    task: str
    target: str

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "rows", "features", "task", "target"}``."""
        return {"name": self.name, "rows": self.rows, "features": self.features,
                "task": self.task, "target": self.target}


@dataclass(frozen=True)
class RunSummary:
    """One line of a run list.

    ``to_dict()`` is the API's ``GET /v1/runs`` row; ``started_at`` and :attr:`seconds`
    are for tables that show how long a run took.
    """

    id: str
    name: str | None
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    datasets: tuple[str, ...]

    @property
    def seconds(self) -> float | None:
        """Wall time from start to finish; None while running or never started."""
        return _seconds(self.started_at, self.finished_at)

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "name", "status", "created_at", "finished_at", "error", "datasets"}``."""
        return {"id": self.id, "name": self.name, "status": self.status,
                "created_at": _iso(self.created_at), "finished_at": _iso(self.finished_at),
                "error": self.error, "datasets": list(self.datasets)}


@dataclass(frozen=True)
class RunDetail:
    """A run with its status, timings, datasets, progress and configuration.

    ``to_dict()`` is the API's ``GET /v1/runs/{id}`` answer without ``process`` (the
    launcher's view of the training process, which the API adds).
    """

    id: str
    name: str | None
    status: str
    error: str | None
    seed: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    datasets: tuple[RunDataset, ...]
    progress: RunProgress
    config: dict[str, Any]

    @property
    def seconds(self) -> float | None:
        """Wall time from start to finish; None while running or never started."""
        return _seconds(self.started_at, self.finished_at)

    def to_dict(self) -> dict[str, Any]:
        """The API shape: datetimes as ISO 8601 text, nested read models as dicts."""
        return {"id": self.id, "name": self.name, "status": self.status, "error": self.error,
                "seed": self.seed, "created_at": _iso(self.created_at),
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
                "datasets": [d.to_dict() for d in self.datasets],
                "progress": self.progress.to_dict(), "config": self.config}


def _failures(trials: list[Trial], names: dict[int, str]) -> tuple[UnitFailure, ...]:
    return tuple(
        UnitFailure(dataset=names.get(t.dataset_id, str(t.dataset_id)), model=t.model_name,
                    unit=unit, status=u.status, error=first_line(u.error) or UNKNOWN_ERROR)
        for t in trials for unit, u in sorted(t.units.items()) if u.status != "ok")


def _retries(trials: list[Trial], names: dict[int, str]) -> tuple[UnitRetry, ...]:
    return tuple(
        UnitRetry(dataset=names.get(t.dataset_id, str(t.dataset_id)), model=t.model_name,
                  unit=unit, status=u.status, attempts=int(u.payload.get("attempts") or 1),
                  node=u.payload.get("node"), node_ip=u.payload.get("node_ip"),
                  failed_attempts=tuple(u.payload.get("failed_attempts") or ()))
        for t in trials for unit, u in sorted(t.units.items())
        if int((u.payload or {}).get("attempts") or 1) > 1)


def run_retries(registry: Registry, run_id: str) -> tuple[UnitRetry, ...]:
    """Every unit of a run that Ray ran again after losing its worker or node.

    The task journals how many attempts it took (``attempts`` in the unit's payload);
    the driver adds where the lost attempts ran (``failed_attempts``).

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    run_id : str
        Run id or a unique prefix.

    Returns
    -------
    tuple of UnitRetry
        In trial order, then by unit name; empty when no worker or node was lost.

    Raises
    ------
    NotFoundError
        No such run.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> [(r.unit, r.attempts, r.node_ip) for r in run_retries(Registry(), "3f2a9c")]
    ...                                                              # doctest: +SKIP
    [('cv1', 2, '127.0.0.3')]
    """
    run = registry.get_run(run_id)
    names = {d.id: d.name for d in registry.run_datasets(run.id)}
    return _retries(registry.list_trials(run.id), names)


def run_failures(registry: Registry, run_id: str) -> tuple[UnitFailure, ...]:
    """Every unit of a run that did not succeed, with the first line of its error.

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    run_id : str
        Run id or a unique prefix.

    Returns
    -------
    tuple of UnitFailure
        In trial order, then by unit name; empty when every unit so far succeeded.

    Raises
    ------
    NotFoundError
        No such run.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> [f.to_dict() for f in run_failures(Registry(), "3f2a9c")]    # doctest: +SKIP
    [{'dataset': 'iris', 'model': 'svc', 'unit': 'cv0', 'status': 'failed',
      'error': 'ValueError: ...'}]
    """
    run = registry.get_run(run_id)
    names = {d.id: d.name for d in registry.run_datasets(run.id)}
    return _failures(registry.list_trials(run.id), names)


def _progress(registry: Registry, run: Run, names: dict[int, str]) -> RunProgress:
    config = run.config or {}
    trials = registry.list_trials(run.id)
    models: dict[str, list[tuple[str, Any]]] = {}
    for t in trials:
        dname = names.get(t.dataset_id, str(t.dataset_id))
        models.setdefault(dname, []).append((t.model_name, (t.spec or {}).get("iterative")))
    # Planned exactly as training plans it, so "done of total" reaches total at the end.
    planned = plan_run_units(models, int(config.get("folds") or 0),
                             bool(config.get("final_fit", True)),
                             bool(config.get("curves", True)))
    per_trial: dict[tuple[str, str], int] = {}
    totals = dict.fromkeys(models, 0)
    for u in planned:
        per_trial[(u.dataset, u.model)] = per_trial.get((u.dataset, u.model), 0) + 1
        totals[u.dataset] += 1
    done = dict.fromkeys(models, 0)
    trials_done = 0
    for t in trials:
        dname = names.get(t.dataset_id, str(t.dataset_id))
        done[dname] += len(t.units)
        trials_done += len(t.units) >= per_trial.get((dname, t.model_name), 0)
    units_done, total = sum(done.values()), len(planned)
    return RunProgress(
        units_done=units_done, units_total=total, trials_done=trials_done,
        trials_total=len(trials), fraction=round(units_done / total, 4) if total else 0.0,
        datasets={d: DatasetProgress(done[d], totals[d]) for d in models},
        failures=_failures(trials, names), retried=_retries(trials, names))


def run_progress(registry: Registry, run_id: str) -> RunProgress:
    """Units and trials done of a run, per dataset, with its failed units.

    The total is planned the way training plans it (``training.plan_run_units``): per
    trial, the CV folds, the final fit, and a learning-curve unit when curves are on and
    the model has no per-iteration metric.

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    run_id : str
        Run id or a unique prefix.

    Raises
    ------
    NotFoundError
        No such run.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> p = run_progress(Registry(), "3f2a9c")    # doctest: +SKIP
    >>> f"{p.units_done}/{p.units_total}"    # doctest: +SKIP
    '12/28'
    """
    run = registry.get_run(run_id)
    names = {d.id: d.name for d in registry.run_datasets(run.id)}
    return _progress(registry, run, names)


def run_detail(registry: Registry, run_id: str) -> RunDetail:
    """A run: status, timings, datasets, progress (with failures) and configuration.

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    run_id : str
        Run id or a unique prefix.

    Raises
    ------
    NotFoundError
        No such run.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> detail = run_detail(Registry(), "3f2a9c")    # doctest: +SKIP
    >>> detail.status, detail.progress.fraction    # doctest: +SKIP
    ('running', 0.43)
    """
    run = registry.get_run(run_id)
    records = registry.run_datasets(run.id)
    names = {d.id: d.name for d in records}
    return RunDetail(
        id=run.id, name=run.name, status=run.status, error=run.error, seed=run.seed,
        created_at=run.created_at, started_at=run.started_at, finished_at=run.finished_at,
        datasets=tuple(RunDataset(d.name, d.n_rows, d.n_features, d.task, d.target)
                       for d in records),
        progress=_progress(registry, run, names), config=run.config)


def run_summaries(registry: Registry, limit: int = 50, offset: int = 0) -> list[RunSummary]:
    """The most recent runs, newest first, each with its datasets' names (``offset``:
    skip that many of the newest first, for paging).

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> [r.status for r in run_summaries(Registry(), limit=3)]    # doctest: +SKIP
    ['running', 'finished', 'finished']
    """
    return [RunSummary(id=r.id, name=r.name, status=r.status, created_at=r.created_at,
                       started_at=r.started_at, finished_at=r.finished_at, error=r.error,
                       datasets=tuple(d.name for d in registry.run_datasets(r.id)))
            for r in registry.list_runs(limit=limit, offset=offset)]
