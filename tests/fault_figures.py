"""The figures every fault test writes, in one structure, for benchmarks/faults.py.

benchmarks/faults.py runs each fault test file in its own pytest process with
``FLEETLEARN_FAULT_FIGURES`` naming a JSON file; each test of the file appends one
entry to it (a JSON list), so a file with two tests (the driver's, PostgreSQL's) gives
two rows. Without the variable a test writes ``<tmp_path>/fault_<case>.json``.

One entry (:func:`record`)::

    {"case": "driver/manual",            # the row's name
     "fault": "what was done, in words",
     "test": "tests/slow/test_x.py::test_y",
     "seconds_to_detect": 1.6,          # the fault until fleetlearn/Ray noticed it
     "seconds_until_ready": 12.3,       # the fault until the system was ready again
     "requests": {...}, "before": {...}, "during": {...}, "after": {...},
     "trials_lost": 0, "models_lost": 0, "units_trained_twice": 0,
     ...}                               # what else the test measured

``requests`` and the three windows are tests/fault_load.py ``summary`` dicts of a
predict load (before: load start to the fault; during: the fault until ready; after:
ready until the load stopped), or ``"n/a"`` with ``no_load`` saying why the test has
none; any figure that does not apply to a fault is ``"n/a"`` too, never a made-up 0.

Sizes the benchmark passes (the tests' defaults otherwise): ``FLEETLEARN_FAULT_DOWN_S``
(how long a killed head or registry stays down), ``FLEETLEARN_FAULT_AFTER_S`` (load kept
up after recovery, at least), ``FLEETLEARN_FAULT_INTERVAL_MS`` (pause between two
predict requests).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fault_load import PredictLoad, summary

__all__ = ["AFTER_S", "DOWN_S", "INTERVAL_S", "NA", "load_figures", "record"]

NA = "n/a"
WINDOWS = ("before", "during", "after")
#: How long a killed head (or a stopped registry) stays down.
DOWN_S = float(os.environ.get("FLEETLEARN_FAULT_DOWN_S", "10"))
#: Predict load kept up after the system is ready again, at least.
AFTER_S = float(os.environ.get("FLEETLEARN_FAULT_AFTER_S", "20"))
#: Pause between two predict requests of the load (one client, one after the other).
INTERVAL_S = float(os.environ.get("FLEETLEARN_FAULT_INTERVAL_MS", "100")) / 1000


def load_figures(load: PredictLoad, start: float, fault: float, ready: float,
                 end: float) -> dict[str, Any]:
    """``requests`` (all of ``start``..``end``) and the before/during/after summaries
    of ``load`` (``time.monotonic()`` marks)."""
    assert start <= fault <= ready <= end, (start, fault, ready, end)
    bounds = {"before": (start, fault), "during": (fault, ready), "after": (ready, end)}
    return {"requests": summary(load.between(start, end)),
            **{w: summary(load.between(a, b)) for w, (a, b) in bounds.items()}}


def _seconds(value: float | str) -> float | str:
    return round(value, 2) if isinstance(value, int | float) else value


def record(tmp_path: Path, *, case: str, fault: str, seconds_to_detect: float | str,
           seconds_until_ready: float | str, trials_lost: int | str, models_lost: int | str,
           units_trained_twice: int | str, load: dict[str, Any] | None = None,
           no_load: str | None = None, **extra: Any) -> dict[str, Any]:
    """Write one test's figures (see the module docstring) and return them.

    Give ``load`` (from :func:`load_figures`) or ``no_load`` (why the test has no
    predict load), not both.
    """
    assert (load is None) != (no_load is None), "give load or no_load"
    requests = load if load is not None else {k: NA for k in ("requests", *WINDOWS)}
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    figures: dict[str, Any] = {
        "case": case, "fault": fault, "test": test,
        "seconds_to_detect": _seconds(seconds_to_detect),
        "seconds_until_ready": _seconds(seconds_until_ready),
        **requests, **({"no_load": no_load} if no_load else {}),
        "trials_lost": trials_lost, "models_lost": models_lost,
        "units_trained_twice": units_trained_twice, **extra}
    target = os.environ.get("FLEETLEARN_FAULT_FIGURES")
    if target:  # one file for the whole pytest process: append this test's entry
        out = Path(target)
        entries = [*(json.loads(out.read_text()) if out.exists() else []), figures]
    else:
        out = tmp_path / f"fault_{case.replace('/', '_')}.json"
        entries = [figures]
    out.write_text(json.dumps(entries, indent=2, default=str))
    print(json.dumps(figures, indent=2, default=str))
    return figures
