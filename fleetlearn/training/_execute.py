"""Running a training run on Ray and journaling every unit as it lands.

The driver validates everything first (tables, targets, models, metric, registry,
Ray), so bad input fails before anything is written. Then :class:`_RunDriver` reads
top to bottom: it records the run (:meth:`~_RunDriver.record`), puts each dataset
into the object store once and submits one Ray task per unit
(:meth:`~_RunDriver._submit`), and writes each result to the registry as soon as it
arrives (:meth:`~_RunDriver._drain`): that journal is what ``resume`` reads to run
only what is missing.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import logging
import math
import os
import re
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray
from ray.exceptions import LocalRayletDiedError, NodeDiedError, RayError, WorkerCrashedError

from fleetlearn.catalog import ModelSpec, default_models, resolve_model, resolve_model_dict
from fleetlearn.data import Dataset, check_folds, load_dataset
from fleetlearn.errors import ConfigError, RegistryUnavailableError, Terminated
from fleetlearn.evaluation import PRIMARY_METRIC, check_metric, greater_is_better
from fleetlearn.logs import bind_log_context, log_context
from fleetlearn.registry import ModelVersion, Registry, validate_model_name
from fleetlearn.training._launcher import RETRIES_LEFT_ENV
from fleetlearn.training._options import DatasetOptions, ModelEntry, RunOptions, dataset_configs
from fleetlearn.training._plan import (
    UnitKey,
    make_splits,
    plan_run_units,
    split_seed,
    unit_fold,
)
from fleetlearn.training._ray import connect_ray, earlier_attempts
from fleetlearn.training._results import run_leaderboard
from fleetlearn.training._seeds import derive_seed
from fleetlearn.training._tasks import run_unit_batch

__all__ = [
    "PreparedDataset",
    "ProgressEvent",
    "TrainResult",
    "prepare",
    "run_units",
    "train",
    "train_run",
]

log = logging.getLogger(__name__)


@dataclass
class PreparedDataset:
    """A loaded, checked dataset with the models that will train on it."""

    name: str
    dataset: Dataset
    specs: list[ModelSpec]
    metric: str
    notes: list[str] = field(default_factory=list)


@dataclass
class ProgressEvent:
    """What the driver reports after each unit (and at start and end).

    ``best`` maps a dataset to ``(model, mean primary score over its finished folds)``.
    """

    kind: str  # "start" | "unit" | "finish"
    run_id: str
    total: int
    done: int
    dataset_total: dict[str, int]
    dataset_done: dict[str, int]
    best: dict[str, tuple[str, float]]
    metrics: dict[str, str]
    unit: UnitKey | None = None
    status: str | None = None
    error: str | None = None
    resumed: int = 0


@dataclass
class TrainResult:
    """The outcome of :func:`train`: the run id, its leaderboard and its models."""

    run_id: str
    leaderboard: pd.DataFrame
    models: list[ModelVersion]
    warnings: list[str]
    failed: list[dict[str, str]]
    elapsed_s: float
    #: Units Ray ran more than once (a lost worker or node), this process only:
    #: ``{"dataset", "model", "unit", "attempts", "node_ip"}`` each.
    retried: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        board = self.leaderboard.replace({np.nan: None})
        return {
            "run_id": self.run_id,
            "leaderboard": board.to_dict(orient="records"),
            "models": [m.to_dict() for m in self.models],
            "warnings": self.warnings,
            "failed": self.failed,
            "retried": self.retried,
            "elapsed_s": round(self.elapsed_s, 3),
        }


ProgressCallback = Callable[[ProgressEvent], None]


def _metric_for(config: RunOptions, task: str) -> str:
    metric = config.metric
    if isinstance(metric, dict):
        metric = metric.get(task)  # type: ignore[call-overload]  # keys are task names
    return check_metric(metric or PRIMARY_METRIC[task], task)


def _unique(names: Iterable[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}-{seen[name]}")
        else:
            seen[name] = 1
            out.append(name)
    return out


def prepare(config: RunOptions) -> list[PreparedDataset]:
    """Load and check every dataset and resolve its models; write nothing.

    Raises the first :class:`~fleetlearn.errors.FleetlearnError` found, so a run with
    a bad table, target, model or metric fails before it touches the registry.
    """
    names = _unique(d.name or _name_from_path(d.path) for d in config.datasets)
    prepared = []
    for entry, name in zip(config.datasets, names, strict=True):
        _check_name(name, f"Dataset name {name!r} (from {entry.path})")
        dataset = load_dataset(entry.path, entry.target, task=entry.task, name=name)
        check_folds(dataset, config.folds, config.test_size)
        task = dataset.task
        metric = _metric_for(config, task)
        wanted = entry.models if entry.models is not None else config.models
        notes: list[str] = []
        if wanted:
            specs = [
                resolve_model_dict(m, task) if isinstance(m, dict) else resolve_model(str(m), task)
                for m in wanted
            ]
        else:
            specs, notes = default_models(task, dataset.n_rows, config.quadratic_row_limit)
        specs = [
            replace(s, name=n) for s, n in zip(specs, _unique(s.name for s in specs), strict=True)
        ]
        for spec in specs:
            _check_name(f"{name}-{spec.name}", f"Model name {spec.name!r} on dataset {name!r}")
        prepared.append(PreparedDataset(name, dataset, specs, metric, notes))
    return prepared


def _name_from_path(path: str) -> str:
    """A registry-safe dataset name from a file name: ``"my data.v2.csv"`` -> ``"my_data"``."""
    stem = Path(str(path).rstrip("/")).name.split(".")[0]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_.-")
    return safe[:64] or "data"


def _check_name(full: str, what: str) -> None:
    """Registered models are called ``{dataset}-{model}``: check before training."""
    try:
        validate_model_name(full)
    except ConfigError:
        raise ConfigError(
            f"{what} cannot name a registered model ({full!r}): use letters, digits, '_', "
            "'.' and '-' only, starting with a letter or digit, at most 128 characters "
            "together. Set 'name:' in the run file."
        ) from None


def _open_registry(registry: Registry | str | None) -> Registry:
    if registry is None or isinstance(registry, str):
        return Registry(registry)
    return registry


def train(
    data: str | Path | Sequence[str | Path | DatasetOptions] | None = None,
    target: str | dict[str, str] | None = None,
    *,
    models: Sequence[ModelEntry] | None = None,
    task: str | None = None,
    folds: int = 5,
    test_size: float = 0.2,
    metric: str | dict[str, str] | None = None,
    seed: int = 0,
    schedule: str = "concurrent",
    curves: bool = True,
    final_fit: bool = True,
    max_retries: int = 3,
    quadratic_row_limit: int = 10_000,
    name: str | None = None,
    extra: dict[str, Any] | None = None,
    config: RunOptions | None = None,
    registry: Registry | str | None = None,
    address: str | None = None,
    on_progress: ProgressCallback | None = None,
    resume: str | None = None,
) -> TrainResult:
    """Train models on one or more tables in parallel on Ray and register them.

    The run options are those of :class:`RunOptions` (checked through it, with its
    defaults and bounds; ``tests/unit/test_training_options.py`` keeps this
    signature equal to its fields).

    Parameters
    ----------
    data : path or list of paths
        CSV/Parquet files or folders of Parquet shards (or :class:`DatasetOptions`).
    target : str or dict
        The target column for every table, or ``{path_or_file_name: column}``.
    models : list of str or dict, optional
        Short names (``"random_forest"``), ``"name:param=value,..."`` or dotted paths
        (``"sklearn.ensemble.AdaBoostClassifier:n_estimators=200"``). The default set
        for the task when omitted.
    folds, test_size, metric, seed, schedule, curves, final_fit, max_retries, \
quadratic_row_limit, name, extra
        See :class:`RunOptions`.
    config : RunOptions, optional
        A whole configuration instead of the arguments above.
    registry : Registry or str, optional
        A :class:`fleetlearn.Registry` or a SQLAlchemy URL; the home folder's SQLite
        registry by default.
    address : str, optional
        Ray cluster address (``HOST:PORT``); ``$RAY_ADDRESS`` or embedded local Ray
        by default.
    on_progress : callable, optional
        Called with a :class:`ProgressEvent` after each unit.
    resume : str, optional
        Id of an interrupted run: train only its missing units.

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> import fleetlearn
    >>> result = fleetlearn.train("wine.csv", target="cultivar",
    ...                           models=["logistic_regression", "random_forest"], folds=3)
    ...                                                         # doctest: +SKIP
    >>> result.leaderboard[["dataset", "model", "cv_mean", "test"]]  # doctest: +SKIP
    """
    if resume is None and config is None:
        options: dict[str, Any] = {
            "models": list(models) if models else None, "folds": folds, "test_size": test_size,
            "metric": metric, "seed": seed, "schedule": schedule, "curves": curves,
            "final_fit": final_fit, "max_retries": max_retries,
            "quadratic_row_limit": quadratic_row_limit, "name": name,
        }
        if extra is not None:
            options["extra"] = extra
        config = RunOptions(datasets=dataset_configs(data, target, task), **options)
    return train_run(config, registry=registry, address=address, on_progress=on_progress,
                     resume=resume)


def run_units(prepared: list[PreparedDataset], config: RunOptions) -> list[UnitKey]:
    """Every unit a prepared run trains (see :func:`~fleetlearn.training._plan.plan_run_units`)."""
    return plan_run_units({p.name: [(s.name, s.iterative) for s in p.specs] for p in prepared},
                          config.folds, config.final_fit, config.curves)


def train_run(
    config: RunOptions | None,
    registry: Registry | str | None = None,
    address: str | None = None,
    on_progress: ProgressCallback | None = None,
    resume: str | None = None,
    run_id: str | None = None,
) -> TrainResult:
    """Run (or resume) a configured training run; see :func:`train`.

    ``run_id`` (12 lowercase hex characters) names a new run up front: the REST API
    answers with it before the training process has written the run.
    """
    # Every log record of the run carries its id (known here, or once it is recorded).
    with log_context(run_id=resume or run_id):
        return _train_run(config, registry, address, on_progress, resume, run_id)


def _train_run(config: RunOptions | None, registry: Registry | str | None,
               address: str | None, on_progress: ProgressCallback | None,
               resume: str | None, run_id: str | None) -> TrainResult:
    started = time.perf_counter()
    if resume is not None and run_id is not None:
        raise ConfigError("A resumed run keeps its id: give either resume or run_id, not both.")
    if run_id is not None and not re.fullmatch(r"[0-9a-f]{12}", run_id):
        raise ConfigError(f"A run id is 12 lowercase hex characters, got '{run_id}'.")
    reg = _open_registry(registry)
    if resume is not None:
        run = reg.get_run(resume)
        if run.status == "finished":
            raise ConfigError(
                f"Run {run.id} already finished; nothing to resume. See 'fleetlearn runs show "
                f"{run.id}'."
            )
        config = RunOptions.from_dict(run.config)
    if config is None:
        raise ConfigError("No run options given: pass a RunOptions, or resume a run by id.")
    prepared = prepare(config)
    started_ray = connect_ray(address)
    try:
        # From here on Ctrl-C and SIGTERM are requests the driver honours between two
        # results: recording the run is never cut half-way, and what finished is
        # journaled before the run is marked interrupted.
        with _StopOnSignals() as stop:
            driver = _RunDriver.record(config, prepared, reg, on_progress, resume=resume,
                                       new_id=run_id)
            driver.run(stop)
            return driver.result(started)
    finally:
        if started_ray:
            ray.shutdown()


#: How long finished units may wait in the driver before they are journaled together.
#: A hard kill of the driver loses at most this much finished work (it is re-run on
#: resume); batching is what keeps journaling cheap with thousands of tiny trials.
JOURNAL_FLUSH_S = 0.25
#: The most results collected per ``ray.wait`` call.
_WAIT_BATCH = 256
#: How many of the oldest pending tasks each ``ray.wait`` looks at (at least twice the
#: cluster's CPUs). Ray runs a run's tasks about in submission order, so the window
#: holds every running task; waiting on all pending refs instead costs O(pending) per
#: call, which made a 20,000-unit run quadratic in the driver.
_WAIT_WINDOW = 1024
#: Pauses between attempts of a journal batch (or a registration) while the registry
#: is unavailable: about 75 s in all, then the run fails (and can be resumed).
JOURNAL_RETRY_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0, 15.0)
#: Units per CPU in a wave from which units share Ray tasks (:func:`units_per_task`).
BATCH_FROM_UNITS_PER_CPU = 32
#: Tasks per CPU left when units share tasks: enough for Ray to balance the load.
BATCH_TASKS_PER_CPU = 16
#: The most units one task runs.
BATCH_MAX_UNITS = 64
#: A wave of at least this many units per CPU is sent in two steps: a first slice
#: (:data:`PROBE_TASKS_PER_CPU` tasks per CPU), then the rest in tasks sized from how
#: long the first slice's units took (:func:`adapted_units_per_task`).
ADAPT_FROM_UNITS_PER_CPU = 8
#: Tasks per CPU in a wave's first slice: every CPU busy twice over while it runs.
PROBE_TASKS_PER_CPU = 2
#: Results of the first slice that size the rest (or all of it, if it has fewer).
PROBE_RESULTS = 8
#: What one task's body should take at least once units are known to be short: its
#: 1-3 ms of Ray and driver cost is then at most a few percent of it.
TASK_BODY_S = 0.1
#: Tasks per CPU left, at least, when the rest of a wave of short units is packed.
ADAPT_TASKS_PER_CPU = 4


def units_per_task(units: int, cpus: float) -> int:
    """How many units of a wave share one Ray task.

    One each, unless the wave has at least :data:`BATCH_FROM_UNITS_PER_CPU` units per
    CPU of the cluster (thousands of tiny trials): then enough share a task to leave
    about :data:`BATCH_TASKS_PER_CPU` tasks per CPU, at most :data:`BATCH_MAX_UNITS`.
    Each Ray task costs about 1-2 ms of CPU around its body (submit, schedule,
    argument and result transfer, the worker's task loop); with tiny units that is
    most of the run. Sixteen tasks per CPU still balance uneven units, and a lost
    node re-runs at most one task's units per CPU it had.

    >>> units_per_task(60, 2), units_per_task(2_000, 4), units_per_task(20_000, 4)
    (1, 31, 64)
    """
    if cpus <= 0 or units < BATCH_FROM_UNITS_PER_CPU * cpus:
        return 1
    return max(1, min(BATCH_MAX_UNITS, int(units / cpus / BATCH_TASKS_PER_CPU)))


def adapted_units_per_task(planned: int, unit_s: float, units_left: int, cpus: float) -> int:
    """Units per task for the rest of a wave, once its first units took ``unit_s``
    (their median duration) each.

    Units that take longer than :data:`TASK_BODY_S` keep the ``planned`` size
    (:func:`units_per_task`). Shorter ones are packed until a task's body takes
    about :data:`TASK_BODY_S`, as long as :data:`ADAPT_TASKS_PER_CPU` tasks per CPU
    are left and no task runs more than :data:`BATCH_MAX_UNITS`: with thousands of
    millisecond units, Ray's own cost per task (1-3 ms, more when its workers
    outnumber the cores) would otherwise be most of the run, and it cannot be
    known before the first units have run.

    >>> adapted_units_per_task(1, 2.0, 1_000, 8), adapted_units_per_task(1, 0.02, 1_872, 64)
    (1, 5)
    >>> adapted_units_per_task(1, 0.0, 100_000, 4), adapted_units_per_task(31, 0.01, 1_000, 4)
    (64, 31)
    """
    if cpus <= 0 or unit_s >= TASK_BODY_S:
        return planned
    wanted = TASK_BODY_S / max(unit_s, 1e-6)
    balanced = units_left / (cpus * ADAPT_TASKS_PER_CPU)
    return max(planned, min(BATCH_MAX_UNITS, int(min(wanted, balanced)) or 1))


#: One planned unit of a wave: its key, its task item (spec, unit, seed) and its group
#: (dataset, CPUs a fit takes): only units of one group share a task.
_Planned = tuple[UnitKey, tuple[dict[str, Any], str, int], tuple[str, int]]


@dataclass
class _WaveTasks:
    """A wave's Ray tasks, as the driver sends them.

    All at once, in tasks of :func:`units_per_task` units; or, for a wave of at least
    :data:`ADAPT_FROM_UNITS_PER_CPU` units per CPU, in two steps: a first slice of
    :data:`PROBE_TASKS_PER_CPU` tasks per CPU, then, as soon as :data:`PROBE_RESULTS`
    of its units have finished (or all of it has), the rest in tasks sized from their
    median duration (:func:`adapted_units_per_task`). The first slice keeps every CPU
    busy while it runs, so the cluster never waits for the second step.
    """

    send_task: Callable[[list[UnitKey], list[tuple[dict[str, Any], str, int]]], Any]
    #: Units not sent yet, in the wave's order.
    unsent: collections.deque[_Planned]
    cpus: float
    #: The units of every task sent, by its result's reference.
    pending: dict[Any, list[UnitKey]] = field(default_factory=dict)
    #: References in the order the tasks were sent.
    queue: collections.deque[Any] = field(default_factory=collections.deque)
    per_task: int = 1
    #: True while the first slice runs and the rest waits to be sized.
    probing: bool = False
    #: Results that size the rest: :data:`PROBE_RESULTS`, or the first slice's units.
    enough: int = PROBE_RESULTS
    durations: list[float] = field(default_factory=list)

    def start(self) -> None:
        total = len(self.unsent)
        self.per_task = units_per_task(total, self.cpus)
        first = math.ceil(self.cpus * PROBE_TASKS_PER_CPU) * self.per_task
        if (self.cpus > 0 and self.per_task < BATCH_MAX_UNITS and first < total
                and total >= ADAPT_FROM_UNITS_PER_CPU * self.cpus):
            self.probing, self.enough = True, min(PROBE_RESULTS, first)
            self._send(first)
        else:
            self._send(None)

    def observe(self, result: dict[str, Any]) -> None:
        """Take one unit's result: while the first slice runs, its duration counts."""
        if self.probing and result["status"] == "ok":
            self.durations.append(float(result.get("duration_s") or 0.0))

    def size_rest(self) -> None:
        """Send the rest once enough of the first slice's units have finished."""
        if self.probing and len(self.durations) >= self.enough:
            self.send_rest()

    def send_rest(self) -> None:
        """Send every unit left, in tasks sized from the durations seen so far."""
        if self.probing and self.durations:
            median = statistics.median(self.durations)
            planned, self.per_task = self.per_task, adapted_units_per_task(
                self.per_task, median, len(self.unsent), self.cpus)
            if self.per_task != planned:
                log.info("units took %.1f ms each: the wave's %d other units go %d a task",
                         median * 1e3, len(self.unsent), self.per_task)
        self.probing = False
        self._send(None)

    def _send(self, limit: int | None) -> None:
        keys: list[UnitKey] = []
        items: list[tuple[dict[str, Any], str, int]] = []
        group: tuple[str, int] | None = None
        sent = 0
        while self.unsent and (limit is None or sent < limit):
            key, item, of = self.unsent.popleft()
            if keys and (len(keys) >= self.per_task or of != group):
                self._task(keys, items)
                keys, items = [], []
            keys.append(key)
            items.append(item)
            group, sent = of, sent + 1
        if keys:
            self._task(keys, items)

    def _task(self, keys: list[UnitKey], items: list[tuple[dict[str, Any], str, int]],
              ) -> None:
        ref = self.send_task(keys, items)
        self.pending[ref] = keys
        self.queue.append(ref)


@dataclass
class _RunDriver:
    """One run being trained: what it trains, where it is recorded, what it reported.

    :meth:`record` writes the run, its datasets and trials (or finds them again on
    resume) and plans the units still to train; :meth:`run` trains them wave by wave;
    :meth:`result` closes the run and reads its leaderboard back from the registry.
    """

    config: RunOptions
    registry: Registry
    run_id: str
    #: By dataset name, in the run's order.
    datasets: dict[str, PreparedDataset]
    dataset_ids: dict[str, int]
    #: ``(dataset, model)`` -> trial id.
    trial_ids: dict[tuple[str, str], int]
    units: list[UnitKey]
    todo: list[UnitKey]
    tracker: _Tracker
    on_progress: ProgressCallback | None
    #: Units that finished with an error (this process only; the journal has them all).
    failed: list[dict[str, str]] = field(default_factory=list)
    #: Units Ray ran more than once (this process only).
    retried: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def record(cls, config: RunOptions, prepared: list[PreparedDataset], reg: Registry,
               on_progress: ProgressCallback | None, *, resume: str | None,
               new_id: str | None) -> _RunDriver:
        """Write the run, its datasets and trials; plan what is left to train."""
        if resume is None:
            run = reg.create_run(config.to_dict(), seed=config.seed, name=config.name,
                                 run_id=new_id)
        else:
            run = reg.set_run_status(resume, "running")
        run_id = run.id
        bind_log_context(run_id=run_id)

        if resume is not None:
            recorded = {d.name: d for d in reg.run_datasets(run_id)}
            for p in prepared:
                rec = recorded.get(p.name)
                if rec is None or rec.fingerprint != p.dataset.fingerprint:
                    raise ConfigError(
                        f"Dataset '{p.name}' ({p.dataset.source}) changed since run {run_id} "
                        "started, so the run cannot be resumed with the same folds. Start a "
                        "new run."
                    )
        dataset_ids: dict[str, int] = {}
        for p in prepared:
            d = p.dataset
            rec = reg.add_dataset(
                run_id, fingerprint=d.fingerprint, name=p.name, source=d.source,
                n_rows=d.n_rows, n_features=len(d.schema.columns), task=d.task,
                target=d.schema.target, schema=d.schema.to_dict(),
            )
            dataset_ids[p.name] = rec.id
        trial_ids = {}
        for p in prepared:  # one transaction per dataset, however many models
            trials = reg.ensure_trials(run_id, dataset_ids[p.name],
                                       [(s.name, s.to_dict()) for s in p.specs])
            trial_ids.update({(p.name, t.model_name): t.id for t in trials})

        units = run_units(prepared, config)
        id_to_name = {v: k for k, v in dataset_ids.items()}
        done_keys = reg.completed_units(run_id) if resume else set()
        done = {UnitKey(id_to_name[d], m, u) for d, m, u in done_keys if d in id_to_name}
        todo = [u for u in units if u not in done]

        tracker = _Tracker(run_id, units, {p.name: p.metric for p in prepared})
        if resume is not None:  # a new run has journaled nothing: no need to read it back
            tracker.seed_from_registry(reg, id_to_name)
        tracker.resumed = len(units) - len(todo)
        tracker.emit(on_progress, "start")
        return cls(config, reg, run_id, {p.name: p for p in prepared}, dataset_ids, trial_ids,
                   units, todo, tracker, on_progress)

    # ------------------------------------------------------------------ training

    def run(self, stop: _StopOnSignals | None = None) -> None:
        """Train every unit still to do; the run ends ``interrupted`` or ``failed`` on
        Ctrl-C, SIGTERM or an error (what finished before is journaled either way)."""
        if self.config.schedule == "sequential":
            waves = [[u for u in self.todo if u.dataset == name] for name in self.datasets]
        else:
            waves = [self.todo]
        remote = ray.remote(run_unit_batch)
        try:
            with contextlib.ExitStack() as stack:
                if stop is None:
                    stop = stack.enter_context(_StopOnSignals())
                stop.check()  # a signal while the run was being recorded
                for wave in waves:
                    if wave:
                        self._drain(self._submit(wave, remote), stop)
        except KeyboardInterrupt as exc:
            why = ("stopped by SIGTERM" if isinstance(exc, Terminated)
                   else "interrupted by the user (Ctrl-C)")
            self.registry.set_run_status(self.run_id, "interrupted", error=why)
            exc.run_id = self.run_id  # type: ignore[attr-defined]  # for the CLI's hint
            raise
        except BaseException as exc:
            # A driver its launcher will resume (the API's child with retries left)
            # leaves the run 'running' with the error: a reader must not see it 'failed'
            # between this exit and the automatic resume. Its launcher settles it
            # otherwise; if that launcher is gone too, the next read finds the driver
            # dead and marks the run 'interrupted'.
            status = "running" if _resumed_by_launcher() else "failed"
            self.registry.set_run_status(self.run_id, status,
                                         error=f"{type(exc).__name__}: {exc}")
            raise

    def _submit(self, wave: list[UnitKey], remote: Any) -> _WaveTasks:
        """Put each dataset of the wave once and plan its units' Ray tasks: one unit per
        task, or a few consecutive units of one model (or of models with the same CPU
        need) per task when the wave is much larger than the cluster
        (:func:`units_per_task`). A wave of many units per CPU is sent in two steps,
        the rest sized by the first slice's durations (:class:`_WaveTasks`)."""
        config = self.config
        bundles = {}
        for name in dict.fromkeys(u.dataset for u in wave):
            d = self.datasets[name].dataset
            splits = make_splits(np.asarray(d.y), d.task, config.folds, config.test_size,
                                 split_seed(config.seed, d.fingerprint))
            # One put per dataset: every task of this dataset takes the reference.
            bundles[name] = ray.put({"X": d.X, "y": np.asarray(d.y), "splits": splits,
                                     "schema": d.schema})
        specs = {(p.name, s.name): s for p in self.datasets.values() for s in p.specs}
        spec_dicts: dict[tuple[str, str], dict[str, Any]] = {}

        def send(keys: list[UnitKey], items: list[tuple[dict[str, Any], str, int]],
                 ) -> ray.ObjectRef:
            first = keys[0]
            more = f"+{len(keys) - 1}" if len(keys) > 1 else ""
            return remote.options(
                num_cpus=specs[(first.dataset, first.model)].n_jobs,
                max_retries=config.max_retries,
                retry_exceptions=False,
                name=f"{first.dataset}/{first.model}/{first.unit}{more}",
            ).remote(bundles[first.dataset], items, self.datasets[first.dataset].metric)

        planned: list[tuple[UnitKey, tuple[dict[str, Any], str, int], tuple[str, int]]] = []
        for key in wave:
            pair = (key.dataset, key.model)
            if pair not in spec_dicts:
                spec_dicts[pair] = specs[pair].to_dict()
            seed = derive_seed(config.seed, self.datasets[key.dataset].dataset.fingerprint,
                               key.model, key.unit if key.unit.startswith("cv") else "final")
            # Units share a task only within one dataset and one CPU need.
            planned.append((key, (spec_dicts[pair], key.unit, seed),
                            (key.dataset, specs[pair].n_jobs)))
        tasks = _WaveTasks(send, collections.deque(planned),
                           ray.cluster_resources().get("CPU", 0))
        tasks.start()
        return tasks

    def _drain(self, tasks: _WaveTasks, stop: _StopOnSignals) -> None:
        """Journal results as they land, batching what finished together."""
        pending, queue = tasks.pending, tasks.queue  # queue: in submission order
        window: list[ray.ObjectRef] = []
        size = max(_WAIT_WINDOW, 2 * int(ray.cluster_resources().get("CPU", 0)))
        batch: list[dict[str, Any]] = []
        #: Units Ray ran more than once, by task id: where their lost attempts ran is
        #: looked up once, when the wave is done (one read of Ray's task records).
        retried: dict[str, list[dict[str, Any]]] = {}
        last_flush = time.monotonic()
        try:
            while window or queue or tasks.unsent:
                if not (window or queue):
                    tasks.send_rest()  # the first slice ended before it sized the rest
                if stop.requested is not None:
                    for ref in [*window, *queue]:
                        ray.cancel(ref, force=True)
                    stop.check()
                while queue and len(window) < size:
                    window.append(queue.popleft())
                # One call returns everything finished within the flush interval (or at
                # once when all that is left has finished).
                ready, window = ray.wait(window, num_returns=min(len(window), _WAIT_BATCH),
                                         timeout=JOURNAL_FLUSH_S)
                results = _get_all(ready, [len(pending[r]) for r in ready],
                                   self.config.max_retries)
                for ref, task_results in zip(ready, results, strict=True):
                    for key, result in zip(pending.pop(ref), task_results, strict=True):
                        tasks.observe(result)
                        unit = self._landed(key, result)
                        if int(result["payload"].get("attempts") or 1) > 1:
                            retried.setdefault(ref.task_id().hex(), []).append(unit)
                        if not (result["status"] == "ok" and key.unit == "final"):
                            batch.append(unit)  # a final model was journaled with it
                tasks.size_rest()
                now = time.monotonic()
                if batch and (not (window or queue or tasks.unsent)
                              or now - last_flush >= JOURNAL_FLUSH_S):
                    _retrying(self.registry.record_units, batch)
                    batch, last_flush = [], time.monotonic()
            if retried:
                _retrying(self.registry.record_units, _with_lost_attempts(retried))
        finally:
            if batch:  # Ctrl-C or an error: keep what finished so resume skips it
                _retrying(self.registry.record_units, batch)

    def _landed(self, key: UnitKey, result: dict[str, Any]) -> dict[str, Any]:
        """Take one unit's result: register a final model (with its journal entry, in one
        transaction), count it for progress; return its journal entry."""
        unit = {"trial_id": self.trial_ids[(key.dataset, key.model)],
                "unit": key.unit, "status": result["status"],
                "payload": result["payload"], "error": result["error"],
                "duration_s": result["duration_s"]}
        attempts = int(result["payload"].get("attempts") or 1)
        if attempts > 1:
            self.retried.append({"dataset": key.dataset, "model": key.model,
                                 "unit": key.unit, "attempts": attempts,
                                 "node_ip": result["payload"].get("node_ip")})
        if result["status"] == "ok" and key.unit == "final":
            self._register(key, result, unit)
        if result["status"] != "ok":
            self.failed.append({"dataset": key.dataset, "model": key.model,
                                "unit": key.unit,
                                "error": result["error"] or "unknown error"})
        self.tracker.update(key, result)
        self.tracker.emit(self.on_progress, "unit", key, result["status"], result["error"])
        return unit

    def _register(self, key: UnitKey, result: dict[str, Any],
                  unit: dict[str, Any]) -> ModelVersion:
        prepared = self.datasets[key.dataset]
        spec = next(s for s in prepared.specs if s.name == key.model)
        d = prepared.dataset
        name = f"{key.dataset}-{key.model}"
        tries = 0

        def register(**kwargs: Any) -> ModelVersion:
            # A retry after the registry went away may follow a commit whose answer was
            # lost with the connection: the version is there, do not add a second one.
            nonlocal tries
            tries += 1
            if tries > 1:
                for version in self.registry.list_models(name=name, run_id=self.run_id):
                    if version.trial_id == unit["trial_id"]:
                        return version
            return self.registry.register_model(name, **kwargs)

        return _retrying(
            register,
            artifact=result["artifact"],
            run_id=self.run_id,
            trial_id=unit["trial_id"],
            dataset_id=self.dataset_ids[key.dataset],
            metrics={"test": result["payload"]["test_scores"],
                     "primary_metric": prepared.metric},
            params={"estimator": spec.estimator_path, **spec.params},
            input_schema=d.schema.to_dict(),
            tags={"dataset": key.dataset, "model": key.model, "task": d.task,
                  "run": self.run_id},
            journal_unit=unit,
        )

    # ------------------------------------------------------------------ the end

    def result(self, started: float) -> TrainResult:
        """Close the trials and the run; the leaderboard and models as the registry has
        them (a resumed run registered some models in an earlier process)."""
        _finish_trials(self.registry, self.run_id)
        self.registry.set_run_status(self.run_id, "finished")
        self.tracker.emit(self.on_progress, "finish")
        warnings_out = [w for p in self.datasets.values() for w in p.dataset.warnings] + [
            n for p in self.datasets.values() for n in p.notes]
        return TrainResult(self.run_id, run_leaderboard(self.registry, self.run_id),
                           self.registry.list_models(run_id=self.run_id), warnings_out,
                           self.failed, time.perf_counter() - started, self.retried)


def _retrying(write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a registry write, retrying with backoff while the registry is unavailable.

    Journal batches are idempotent upserts, so a batch whose outcome was lost with the
    connection is simply written again. The pauses are :data:`JOURNAL_RETRY_S`; after
    the last one the error propagates and the run is marked failed (resume re-runs
    only what is not journaled).
    """
    for pause in JOURNAL_RETRY_S:
        try:
            return write(*args, **kwargs)
        except RegistryUnavailableError as exc:
            log.warning("registry unavailable, retrying in %.1f s: %s", pause, exc)
            time.sleep(pause)
    return write(*args, **kwargs)


def _resumed_by_launcher() -> bool:
    """Whether this driver's launcher resumes the run by itself when it fails."""
    try:
        return int(os.environ.get(RETRIES_LEFT_ENV, "0")) > 0
    except ValueError:
        return False


def _get_all(refs: list[ray.ObjectRef], sizes: list[int],
             max_retries: int) -> list[list[dict[str, Any]]]:
    """Results of finished tasks (a list of unit results each, ``sizes`` units); a task
    lost after Ray's retries is a failed result for each of its units."""
    if not refs:
        return []
    try:
        return ray.get(refs)
    except RayError:
        pass
    out = []
    for ref, n in zip(refs, sizes, strict=True):
        try:
            out.append(ray.get(ref))
        except RayError as exc:  # the node or worker died and retries ran out
            # Ray raises these only once every retry was lost the same way.
            lost = isinstance(exc, WorkerCrashedError | NodeDiedError | LocalRayletDiedError)
            out.append([{"status": "failed",
                         "payload": {"attempts": max_retries + 1} if lost else {},
                         "artifact": None,
                         "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                         "duration_s": None} for _ in range(n)])
    return out


def _with_lost_attempts(retried: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The journal entries of units Ray ran more than once, with ``failed_attempts``:
    the node and error of each lost attempt of the task that ran them.

    A unit's payload says how many attempts it took (``attempts``, read by the task
    itself); only units with more than one ask Ray about the others, once per wave, so
    a run without lost workers or nodes makes no extra call, and one with many pays
    for one read (Ray's task records are read whole: about 0.1 ms per task here). The
    entries were journaled as they landed; writing them again only adds that field
    (the journal is an upsert). Units that shared a task share its attempts.
    """
    # A unit lost on every attempt (no node in its payload) has no last attempt that
    # came back: ask for all of them.
    earlier = earlier_attempts({
        task: int(units[0]["payload"]["attempts"]) + ("node" not in units[0]["payload"])
        for task, units in retried.items()})
    return [{**unit, "payload": {**unit["payload"], "failed_attempts": earlier[task]}}
            for task, units in retried.items() if task in earlier for unit in units]


def _finish_trials(reg: Registry, run_id: str) -> None:
    done: dict[int, tuple[str, str | None]] = {}
    for trial in reg.list_trials(run_id):
        statuses = [u.status for u in trial.units.values()]
        errors = [u.error for u in trial.units.values() if u.error]
        if statuses and all(s == "ok" for s in statuses):
            done[trial.id] = ("ok", None)
        elif statuses and all(s != "ok" for s in statuses):
            done[trial.id] = ("failed", errors[0] if errors else None)
        else:
            done[trial.id] = ("partial", errors[0] if errors else None)
    reg.set_trial_statuses(done)  # one transaction, not one per trial


class _StopOnSignals:
    """Turn Ctrl-C and SIGTERM into a request the driver loop honours between two results.

    A KeyboardInterrupt raised in the middle of a Ray call can leave the core worker
    in a bad state (seen here: a segfault at exit); checking a flag in the loop stops
    cleanly within a second. SIGTERM (``docker stop``, a service manager) is the same
    request and ends in :class:`~fleetlearn.errors.Terminated`. A second signal
    interrupts at once. An ignored signal stays ignored.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None:
            self._raise(signum)
        self.requested = signum

    @staticmethod
    def _raise(signum: int) -> None:
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    def check(self) -> None:
        """Raise the interrupt asked for, if any."""
        if self.requested is not None:
            self._raise(self.requested)

    def __enter__(self) -> _StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                previous = signal.getsignal(sig)
                if previous is not signal.SIG_IGN:
                    self._previous[sig] = previous
                    signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)


class _Tracker:
    """Counts and best-so-far scores for progress events."""

    def __init__(self, run_id: str, units: list[UnitKey], metrics: dict[str, str]) -> None:
        self.run_id = run_id
        self.total = len(units)
        self.done = 0
        self.resumed = 0
        self.metrics = metrics
        self.dataset_total: dict[str, int] = {}
        for u in units:
            self.dataset_total[u.dataset] = self.dataset_total.get(u.dataset, 0) + 1
        self.dataset_done = dict.fromkeys(self.dataset_total, 0)
        self.fold_sums: dict[tuple[str, str], tuple[float, int]] = {}
        self.best: dict[str, tuple[str, float]] = {}
        self._greater: dict[str, bool] = {}
        # Per dataset, a heap of (sort key, first-seen order, model, mean) with stale
        # entries dropped lazily: finding the new leader when the leader's mean drops
        # costs O(log models), where scanning every model's mean made a run of
        # thousands of models quadratic in the driver.
        self._heaps: dict[str, list[tuple[float, int, str, float]]] = {}
        self._order: dict[tuple[str, str], int] = {}

    def seed_from_registry(self, reg: Registry, id_to_name: dict[int, str]) -> None:
        """Count what earlier processes of a resumed run journaled."""
        for trial in reg.list_trials(self.run_id):
            dname = id_to_name.get(trial.dataset_id)
            if dname is None or dname not in self.dataset_total:
                continue
            for name, unit in trial.units.items():
                self.update(UnitKey(dname, trial.model_name, name),
                            {"status": unit.status, "payload": unit.payload})

    def update(self, key: UnitKey, result: dict[str, Any]) -> None:
        self.done += 1
        self.dataset_done[key.dataset] = self.dataset_done.get(key.dataset, 0) + 1
        if result["status"] != "ok" or unit_fold(key.unit) is None:
            return
        metric = self.metrics[key.dataset]
        value = result["payload"].get("scores", {}).get(metric)
        if value is None:
            return
        pair = (key.dataset, key.model)
        total, count = self.fold_sums.get(pair, (0.0, 0))
        total, count = total + float(value), count + 1
        self.fold_sums[pair] = (total, count)
        mean = total / count
        better = self._better(key.dataset)
        order = self._order.setdefault(pair, len(self._order))
        heap = self._heaps.setdefault(key.dataset, [])
        heapq.heappush(heap, (-mean if better else mean, order, key.model, mean))
        best = self.best.get(key.dataset)
        if best is None or (mean > best[1] if better else mean < best[1]):
            self.best[key.dataset] = (key.model, mean)
        elif best[0] == key.model:  # the leader's mean dropped: someone else may lead now
            while True:  # the best entry that is still a model's current mean
                _, _, model, value_now = heap[0]
                t, c = self.fold_sums[(key.dataset, model)]
                if t / c == value_now:
                    break
                heapq.heappop(heap)
            self.best[key.dataset] = (model, value_now)

    def _better(self, dataset: str) -> bool:
        if dataset not in self._greater:
            self._greater[dataset] = greater_is_better(self.metrics[dataset])
        return self._greater[dataset]

    def emit(self, callback: ProgressCallback | None, kind: str,
             unit: UnitKey | None = None, status: str | None = None,
             error: str | None = None) -> None:
        if callback is None:
            return
        callback(ProgressEvent(kind, self.run_id, self.total, self.done, self.dataset_total,
                               dict(self.dataset_done), dict(self.best), self.metrics, unit,
                               status, error, self.resumed))
