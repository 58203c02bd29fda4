"""An estimator whose ``fit`` waits for the test's signal: a run as long as the test needs.

A test that must act while training is under way (cancel a run, kill a driver) cannot
rely on a model being "probably slow": on a fast machine the run finishes first. Give
the run ``gated_models.GatedClassifier:gate=<folder>`` instead (a ``module.Class``
model spec; ``tests/`` is on the ``PYTHONPATH`` of the session's Ray workers and of
``fleetlearn train`` children, see ``ray_session`` in ``tests/conftest.py``).

Each ``fit`` takes the next ticket in the gate folder: it creates ``started-<n>``
(holding the Ray job id, the Ray task's name, "dataset/model/unit", the Ray node id
and the pid of the process that fits), then waits until
``open-<n>`` or ``open`` exists, at most ``timeout_s`` (then it raises, so a test that
forgot to open the gate fails instead of hanging). The test sees what started with
:func:`started`, lets one fit through with :func:`open_ticket` and all with
:func:`open_all`, and waits on conditions with :func:`wait_until`.

Examples
--------
>>> spec = f"gated_models.GatedClassifier:gate={tmp_path / 'gate'}"   # doctest: +SKIP
>>> wait_until(lambda: started(gate), "a fit to start")               # doctest: +SKIP
>>> open_ticket(gate, 0)                                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import ray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

__all__ = ["GatedClassifier", "started", "open_ticket", "open_all", "wait_until"]

T = TypeVar("T")
POLL_S = 0.02


def _take_ticket(gate: Path) -> int:
    """Create ``started-<n>`` for the lowest free n (atomic across processes)."""
    gate.mkdir(parents=True, exist_ok=True)
    context = ray.get_runtime_context() if ray.is_initialized() else None
    job = context.get_job_id() if context is not None else "local"
    # The Ray task's name is the unit's ("dataset/model/cv0"): which unit this fit is.
    task = context.get_task_name() if context is not None else None
    # The Ray node: tells the fits of two embedded Rays apart (both run job 01000000).
    node = context.get_node_id() if context is not None else None
    n = 0
    while True:
        try:
            fd = os.open(gate / f"started-{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            n += 1
            continue
        with os.fdopen(fd, "w") as out:
            json.dump({"ticket": n, "job": job, "pid": os.getpid(), "task": task,
                       "node": node}, out)
        return n


def _wait_at(gate: Path, ticket: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ((gate / "open").exists() or (gate / f"open-{ticket}").exists()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate}: ticket {ticket} was not opened within "
                               f"{timeout_s:g} s")
        time.sleep(POLL_S)


class GatedClassifier(ClassifierMixin, BaseEstimator):
    """A logistic regression whose ``fit`` first waits at ``gate`` (no gate: no wait).

    Parameters
    ----------
    gate : str, optional
        The gate folder (see the module docstring).
    timeout_s : float
        Longest a fit waits for its ticket to open.
    """

    def __init__(self, gate: str | None = None, timeout_s: float = 300.0) -> None:
        self.gate = gate
        self.timeout_s = timeout_s

    def fit(self, X: Any, y: Any) -> GatedClassifier:
        if self.gate is not None:
            gate = Path(self.gate)
            _wait_at(gate, _take_ticket(gate), self.timeout_s)
        self.model_ = LogisticRegression(max_iter=1000).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.model_.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model_.predict_proba(X)


def started(gate: Path) -> dict[int, dict[str, Any]]:
    """The fits that took a ticket so far: ``{ticket: {"job", "pid", "task", "node"}}``."""
    out = {}
    for path in gate.glob("started-*"):
        try:
            info = json.loads(path.read_text())
        except ValueError:  # created, not written yet: seen on the next look
            continue
        out[int(info["ticket"])] = info
    return out


def open_ticket(gate: Path, ticket: int) -> None:
    """Let the fit holding ``ticket`` go on."""
    gate.mkdir(parents=True, exist_ok=True)
    (gate / f"open-{ticket}").touch()


def open_all(gate: Path) -> None:
    """Let every fit, waiting or future, go on."""
    gate.mkdir(parents=True, exist_ok=True)
    (gate / "open").touch()


def wait_until(check: Callable[[], T], what: str, timeout_s: float = 180.0) -> T:
    """Poll ``check`` until it returns something true; fail naming ``what`` after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} "
                                 f"(last: {value!r})")
        time.sleep(0.05)
