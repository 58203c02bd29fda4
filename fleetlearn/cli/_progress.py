"""The progress of a training run: live Rich bars, or log records in json mode."""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fleetlearn.insights import first_line
from fleetlearn.training import ProgressEvent


class RunProgress:
    """Bars for the whole run and for each dataset, with the best score so far.

    Use as a context manager and pass :meth:`update` as ``on_progress``.
    """

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("units"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[best]}"),
            console=console,
            transient=False,
        )
        self.overall: TaskID | None = None
        self.datasets: dict[str, TaskID] = {}
        self.failures = 0

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, event: ProgressEvent) -> None:
        if self.overall is None:
            self.overall = self.progress.add_task(
                f"run {event.run_id}", total=event.total, completed=event.done, best=""
            )
            for name, total in event.dataset_total.items():
                self.datasets[name] = self.progress.add_task(
                    f"  {name}", total=total, completed=event.dataset_done.get(name, 0), best=""
                )
            if event.resumed:
                self.progress.console.print(
                    f"resuming run {event.run_id}: {event.resumed} of {event.total} units "
                    "already done"
                )
        if event.status == "failed" and event.unit is not None:
            self.failures += 1
            self.progress.console.print(
                f"[yellow]failed[/] {event.unit.dataset}/{event.unit.model}/{event.unit.unit}: "
                f"{first_line(event.error) or 'unknown error'}"
            )
        failures = f"  [red]{self.failures} failed[/]" if self.failures else ""
        self.progress.update(self.overall, completed=event.done, best=failures)
        for name, task_id in self.datasets.items():
            best = event.best.get(name)
            label = ""
            if best:
                label = f"best {best[0]} {event.metrics[name]}={best[1]:.4f}"
            self.progress.update(task_id, completed=event.dataset_done.get(name, 0), best=label)


class LoggedProgress:
    """The progress of a run as log records (``--log-format json``), one per event.

    Logger ``fleetlearn.training.progress``; fields ``event`` (start, unit, finish),
    ``done``, ``total``, and for a unit ``dataset``, ``estimator``, ``unit``, ``status``
    (a failed unit: level WARNING, with ``error``), and ``best`` (dataset -> model,
    metric, score so far). The run id comes from the log context.
    """

    def __init__(self) -> None:
        self.log = logging.getLogger("fleetlearn.training.progress")

    def update(self, event: ProgressEvent) -> None:
        fields: dict[str, Any] = {"event": event.kind, "done": event.done,
                                  "total": event.total, "run_id": event.run_id}
        level = logging.INFO
        if event.kind == "start":
            message = (f"run {event.run_id}: {event.total} units "
                       f"({len(event.dataset_total)} dataset(s))")
            if event.resumed:
                message += f", resuming: {event.resumed} already done"
                fields["resumed"] = event.resumed
        elif event.kind == "finish":
            message = f"run {event.run_id}: {event.done} of {event.total} units done"
        else:
            unit = event.unit
            where = f"{unit.dataset}/{unit.model}/{unit.unit}" if unit else "unit"
            message = f"{where} {event.status} ({event.done}/{event.total})"
            if unit is not None:
                fields.update(dataset=unit.dataset, estimator=unit.model, unit=unit.unit)
            fields["status"] = event.status
            if event.status == "failed":
                level = logging.WARNING
                fields["error"] = first_line(event.error) or "unknown error"
                message += f": {fields['error']}"
        if event.best:
            fields["best"] = {name: {"model": model, "metric": event.metrics.get(name),
                                     "score": score}
                              for name, (model, score) in event.best.items()}
        self.log.log(level, message, extra=fields)
