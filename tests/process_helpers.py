"""What the lifecycle and fault tests check about real processes and what they left.

A stopped or killed process is judged by its PIDs (taken with psutil before the
signal), never by command-line patterns; what it left is judged in the registry (run
status, complete journal rows) and the artifact folder (no temporary file).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
from sklearn.datasets import make_classification

from fleetlearn.registry import Registry

__all__ = ["alive", "fleetlearn_cmd", "fleetlearn_env", "gated_table", "journal",
           "kill_tree", "stop_tree", "temp_artifacts", "tree", "wait_exit"]

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
GATED = "gated_models.GatedClassifier"


def fleetlearn_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` plus what a ``fleetlearn`` child needs here: this checkout first on the
    path, ``tests/`` for the gated estimator (its Ray workers inherit it), and that
    estimator trusted by exact name."""
    path = os.pathsep.join(p for p in (str(REPO), str(TESTS_DIR), env.get("PYTHONPATH"))
                           if p)
    return {**env, "PYTHONPATH": path, "FLEETLEARN_TRUSTED_TYPES": GATED,
            "PYTHONUNBUFFERED": "1"}


def gated_table(folder: Path) -> Path:
    """A small classification table (300 rows): every unit is one gated fit."""
    X, y = make_classification(n_samples=300, n_features=6, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]).assign(label=y)
    path = folder / "gated.parquet"
    frame.to_parquet(path, index=False)
    return path


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it, right now."""
    try:
        root = psutil.Process(pid)
        return [pid, *(c.pid for c in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def alive(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` still running (a zombie waiting for its parent is gone)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_exit(proc: subprocess.Popen[Any], sig: int, timeout_s: float = 120.0
              ) -> tuple[int, float]:
    """Send ``sig`` to ``proc``; its exit code and the seconds from the signal to exit."""
    start = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(timeout_s)
    return code, time.monotonic() - start


def kill_tree(pids: Iterable[int]) -> None:
    """SIGKILL what is left of ``pids`` (a test's own processes, by PID)."""
    for pid in alive(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def stop_tree(pid: int, timeout_s: float = 15.0) -> None:
    """SIGTERM ``pid``'s whole tree, then SIGKILL what is left after ``timeout_s``."""
    pids = tree(pid)
    for p in alive(pids):
        try:
            os.kill(p, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + timeout_s
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    kill_tree(pids)


def journal(reg: Registry, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every journal row of a run, by (model, unit): what a re-run would change."""
    return {(t.model_name, name): {"status": u.status, "payload": u.payload,
                                   "duration_s": u.duration_s, "error": u.error,
                                   "created_at": u.created_at}
            for t in reg.list_trials(run_id) for name, u in t.units.items()}


def temp_artifacts(folder: Path) -> list[Path]:
    """Files in the artifact folder that are not a finished ``<sha>.skops``."""
    if not folder.exists():
        return []
    return [p for p in folder.rglob("*") if p.is_file()
            and not (p.suffix == ".skops" and not p.name.startswith("."))]


def fleetlearn_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fleetlearn", *args]
