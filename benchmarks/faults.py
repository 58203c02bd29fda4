"""Fault figures (issue 9): each fault test run for its numbers, not as a test.

Not a test. Every fault is the slow test that proves it (real processes on a
``tests/cluster_fixtures.py`` process cluster); this runs that test file in its own
pytest process with ``FLEETLEARN_FAULT_FIGURES`` naming a JSON file, to which each of
its tests appends one entry (tests/fault_figures.py has the structure): predict requests
sent/succeeded/failed and p50/p99 latency before, during and after the fault, seconds
until the fault was noticed and until the system was ready again, trials and models
lost, units trained twice; ``"n/a"`` where a figure does not apply (no predict load in
a training fault). One row per entry, with that test's own outcome (from pytest's JUnit
XML); a test that wrote no entry is a row with its outcome only; a fault whose test is
not in this checkout is "not available".

Faults and their tests:

- ``worker_node``: a worker node SIGKILLed mid-run (tests/slow/test_fault_worker_node.py);
- ``driver``: the training driver SIGKILLed mid-run, resumed through the API and by the
  launcher (tests/slow/test_fault_driver.py: two rows);
- ``head``: the head (GCS) SIGKILLed and restarted with Redis under predict load and a
  run in flight (tests/slow/test_fault_head.py);
- ``replica``: a Serve replica's node killed under load (tests/slow/test_fault_serving.py);
- ``postgres``: the PostgreSQL registry restarted during serving and during training
  (tests/slow/test_fault_postgres.py: two rows).

``--compose``: the same faults in containers instead (tests/docker: deploy/'s compose
stack, faults injected with ``docker kill``), run once as one pytest process on one
stack: ``compose_worker`` (fault 1), ``compose_replica`` (fault 4) and ``compose_head``
(fault 3), plus ``compose_stack`` (image build, stack up and ready times). Each test's
outcome comes from pytest's JUnit XML; ``--faults`` and ``--repeat`` apply to the local
faults only.

Writes ``<out>/faults.json`` and ``<out>/faults.png`` (default
``benchmarks/results/issue9``) and prints a table.

Usage::

    python benchmarks/faults.py                          # every fault, once
    python benchmarks/faults.py --faults head --down-s 30 --after-s 60 --interval-ms 20
    python benchmarks/faults.py --repeat 3 --out /tmp/faults
    python benchmarks/faults.py --compose --out benchmarks/results/issue10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FAULTS = {
    "worker_node": "tests/slow/test_fault_worker_node.py",
    "driver": "tests/slow/test_fault_driver.py",
    "head": "tests/slow/test_fault_head.py",
    "replica": "tests/slow/test_fault_serving.py",
    "postgres": "tests/slow/test_fault_postgres.py",
}
WINDOWS = ("before", "during", "after")
#: --compose: figures file suffix (tests/docker_stack.write_figures) -> (fault, test name)
COMPOSE = {
    "compose_stack": ("compose_stack", "test_the_stack_answers_and_a_worker_started_later"),
    "compose_fault_worker": ("compose_worker", "test_fault1_"),
    "compose_fault_serving": ("compose_replica", "test_fault4_"),
    "compose_fault_head": ("compose_head", "test_fault3_"),
}


def run_compose(folder: Path, sizes: dict[str, str], timeout_s: float) -> list[dict[str, Any]]:
    """tests/docker once (one stack): a record per fault, from the figures it wrote."""
    import xml.etree.ElementTree as ET

    junit, log = folder / "compose.xml", folder / "compose.log"
    env = {**os.environ, **sizes, "FLEETLEARN_FAULT_FIGURES": str(folder / "compose.json"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    start = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(
                [sys.executable, "-m", "pytest", "tests/docker", "-q", "-s", "-p",
                 "no:cacheprovider", f"--junitxml={junit}"], cwd=REPO, env=env, stdout=out,
                stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = None
    outcomes: dict[str, str] = {}
    if junit.exists():
        for case in ET.parse(junit).iter("testcase"):
            failed = case.find("failure") is not None or case.find("error") is not None
            skipped = case.find("skipped") is not None
            outcomes[case.get("name", "")] = ("failed" if failed else
                                              "skipped" if skipped else "passed")
    records = []
    for suffix, (fault, test) in COMPOSE.items():
        outcome = next((o for name, o in outcomes.items() if name.startswith(test)),
                       "timed out" if code is None else "not run")
        record: dict[str, Any] = {"fault": fault, "test": f"tests/docker::{test}",
                                  "outcome": outcome, "log": str(log),
                                  "seconds": round(time.monotonic() - start, 1)}
        figures = folder / f"compose_{suffix}.json"
        if figures.exists():
            record.update(json.loads(figures.read_text()))
            record["fault"] = fault
        records.append(record)
    return records


def test_outcomes(junit: Path) -> dict[str, str]:
    """``{test function name: passed | failed | skipped}`` from pytest's JUnit XML."""
    if not junit.exists():
        return {}
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        out[case.get("name", "")] = ("failed" if kinds & {"failure", "error"}
                                     else "skipped" if "skipped" in kinds else "passed")
    return out


def records_of(name: str, test: str, entries: list[dict[str, Any]],
               outcomes: dict[str, str], process_outcome: str) -> list[dict[str, Any]]:
    """One record per entry (its test's outcome), one per test that wrote none."""
    records = []
    for entry in entries:
        function = entry.get("test", "").rsplit("::", 1)[-1]
        records.append({**entry, "fault": name, "test": entry.get("test") or test,
                        "outcome": outcomes.get(function, process_outcome)})
    written = {r["test"].rsplit("::", 1)[-1] for r in records}
    for function, outcome in sorted(outcomes.items()):
        if function not in written:
            records.append({"fault": name, "case": f"{name} ({function})",
                            "test": f"{test}::{function}",
                            "outcome": outcome})
    return records or [{"fault": name, "case": name, "test": test,
                        "outcome": process_outcome}]


def run_fault(name: str, test: str, folder: Path, sizes: dict[str, str],
              timeout_s: float) -> list[dict[str, Any]]:
    """One run of ``test``'s file: a record per test (its figures and its outcome)."""
    if not (REPO / test).exists():
        return [{"fault": name, "case": name, "test": test, "outcome": "not available"}]
    figures_path = folder / f"{name}.json"
    figures_path.unlink(missing_ok=True)
    junit = folder / f"{name}.xml"
    junit.unlink(missing_ok=True)
    env = {**os.environ, **sizes, "FLEETLEARN_FAULT_FIGURES": str(figures_path),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    log = folder / f"{name}.log"
    start = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(
                [sys.executable, "-m", "pytest", test, "-q", "-s", "-p", "no:randomly",
                 "-p", "no:cacheprovider", f"--junitxml={junit}"], cwd=REPO, env=env,
                stdout=out,
                stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = None
    process_outcome = {0: "passed", None: "timed out"}.get(code, "failed")
    entries = json.loads(figures_path.read_text()) if figures_path.exists() else []
    records = records_of(name, test, entries, test_outcomes(junit), process_outcome)
    for record in records:
        record.update(log=str(log), seconds=round(time.monotonic() - start, 1))
    return records


def _window(record: dict[str, Any], window: str) -> dict[str, Any]:
    """A record's summary of ``window`` (or of all its "requests"); {} when "n/a"."""
    value = record.get(window)
    return value if isinstance(value, dict) else {}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if value == "n/a":
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def table(records: list[dict[str, Any]]) -> str:
    head = ["fault", "outcome", "sent", "ok", "failed", "p50/p99 before", "p50/p99 during",
            "p50/p99 after", "detect s", "ready s", "trials lost", "models lost",
            "units twice"]
    rows = [head]
    for r in records:
        na = r.get("requests") == "n/a"  # a fault without a predict load
        total = _window(r, "requests")
        if not total and "sent" in r:  # compose fault 4: answered, and lost after retries
            total = {"sent": r["sent"], "ok": r.get("answered"), "failed": r.get("lost")}
        lat = ["n/a" if na else
               f"{_cell(_window(r, w).get('p50_ms'))}/{_cell(_window(r, w).get('p99_ms'))}"
               for w in WINDOWS]
        counts = ["n/a"] * 3 if na else [_cell(total.get(k)) for k in ("sent", "ok", "failed")]
        rows.append([r.get("case") or r["fault"], r["outcome"], *counts, *lat,
                     _cell(r.get("seconds_to_detect")), _cell(r.get("seconds_until_ready")),
                     _cell(r.get("trials_lost")), _cell(r.get("models_lost")),
                     _cell(r.get("units_trained_twice"))])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + ("\n(latencies in ms; requests counted without client retries;"
                               " n/a: the figure does not apply to that fault)")


def plot(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in records if _window(r, "requests")]
    fig, (lat_ax, fail_ax, time_ax) = plt.subplots(
        1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    width = 0.25
    for i, window in enumerate(WINDOWS):
        xs = [k + (i - 1) * width for k in range(len(measured))]
        p50 = [_window(r, window).get("p50_ms") or 0 for r in measured]
        p99 = [_window(r, window).get("p99_ms") or 0 for r in measured]
        lat_ax.bar(xs, p99, width, alpha=0.35, color=f"C{i}")
        lat_ax.bar(xs, p50, width, color=f"C{i}", label=f"{window} (p50 solid, p99 light)")
        fail_ax.bar(xs, [_window(r, window).get("failed", 0) for r in measured], width,
                    color=f"C{i}", label=window)
    for ax in (lat_ax, fail_ax):
        ax.set_xticks(range(len(measured)), [r.get("case") or r["fault"] for r in measured],
                      fontsize=8, rotation=30, ha="right")
        ax.legend(fontsize=8)
    lat_ax.set_ylabel("predict latency (ms)")
    lat_ax.set_yscale("log")
    fail_ax.set_ylabel("failed predict requests")
    most = max([_window(r, w).get("failed", 0) for r in measured for w in WINDOWS] or [0])
    fail_ax.set_ylim(0, max(1, most) * 1.15)
    if measured and most == 0:  # an empty panel would read as "not measured"
        fail_ax.text(0.5, 0.5, "no predict request failed", ha="center",
                     transform=fail_ax.transAxes)
    # Every fault, with or without a predict load: how fast it was seen and recovered.
    timed = [r for r in records if r.get("outcome") == "passed"]
    for i, (key, label) in enumerate((("seconds_to_detect", "noticed"),
                                      ("seconds_until_ready", "ready again"))):
        values = [r.get(key) if isinstance(r.get(key), int | float) else 0 for r in timed]
        time_ax.bar([k + (i - 0.5) * 0.4 for k in range(len(timed))], values, 0.4,
                    color=f"C{i + 3}", label=label)
    time_ax.set_xticks(range(len(timed)), [r.get("case") or r["fault"] for r in timed],
                       fontsize=8, rotation=30, ha="right")
    time_ax.set_ylabel("seconds after the fault")
    time_ax.legend(fontsize=8)
    where = ("compose stack, containers" if any(r["fault"].startswith("compose")
                                                for r in records)
             else "process cluster on one machine")
    fig.suptitle(f"fleetlearn under faults ({where})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"comma-separated, from {', '.join(FAULTS)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each fault")
    parser.add_argument("--down-s", type=float, default=10.0,
                        help="seconds a killed head (or registry) stays down")
    parser.add_argument("--after-s", type=float, default=20.0,
                        help="seconds of load kept up after recovery, at least")
    parser.add_argument("--interval-ms", type=float, default=100.0,
                        help="pause between two predict requests of the load")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="per fault run")
    parser.add_argument("--out", type=Path, default=None,
                        help="default benchmarks/results/issue9 (issue10 with --compose)")
    parser.add_argument("--compose", action="store_true",
                        help="the faults in containers (tests/docker) instead")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.faults.split(",") if n.strip()]
    unknown = sorted(set(names) - set(FAULTS))
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    sizes = {"FLEETLEARN_FAULT_DOWN_S": str(args.down_s),
             "FLEETLEARN_FAULT_AFTER_S": str(args.after_s),
             "FLEETLEARN_FAULT_INTERVAL_MS": str(args.interval_ms)}
    if args.out is None:
        args.out = REPO / "benchmarks" / "results" / ("issue10" if args.compose else "issue9")
    args.out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fl-faults-") as tmp:
        folder = Path(tmp)
        if args.compose:
            print("compose: tests/docker ...", flush=True)
            records = run_compose(folder, sizes, args.timeout_s * 2)
            if any(r["outcome"] != "passed" for r in records):
                kept = args.out / "faults_compose.log"
                kept.write_text((folder / "compose.log").read_text(errors="replace"))
            for r in records:
                r.pop("log", None)
                print(f"  {r['fault']}: {r['outcome']}", flush=True)
            names = []
        for name in names:
            for k in range(args.repeat):
                print(f"{name} ({k + 1}/{args.repeat}): {FAULTS[name]} ...", flush=True)
                runs = run_fault(name, FAULTS[name], folder, sizes, args.timeout_s)
                kept = args.out / f"faults_{name}_{k + 1}.log"
                for record in runs:
                    if record.get("log"):  # keep the log of a failed run next to the results
                        if record["outcome"] not in ("passed", "skipped"):
                            kept.write_text(Path(record["log"]).read_text(errors="replace"))
                            record["log"] = str(kept.relative_to(REPO)) if kept.is_relative_to(
                                REPO) else str(kept)
                        else:
                            record.pop("log")
                    record["trial"] = k + 1
                    records.append(record)
                    print(f"  {record.get('case') or name}: {record['outcome']}", flush=True)
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform()},
              "mode": "compose" if args.compose else "processes",
              "sizes": {"down_s": args.down_s, "after_s": args.after_s,
                        "interval_ms": args.interval_ms, "repeat": args.repeat},
              "records": records}
    (args.out / "faults.json").write_text(json.dumps(result, indent=2))
    if any(_window(r, "requests") for r in records):
        plot(records, args.out / "faults.png")
    print(table(records))
    return 0 if all(r["outcome"] in ("passed", "skipped", "not available")
                    for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
