"""Fault figures (issue 9): each fault test run for its numbers, not as a test.

Not a test. Every fault is the slow test that proves it (real processes on a
``tests/cluster_fixtures.py`` process cluster); this runs that test in its own pytest
process with ``FLEETLEARN_FAULT_FIGURES`` naming a JSON file, which the test fills with
what it measured: predict requests sent/succeeded/failed and p50/p99 latency before,
during and after the fault, seconds until the cluster was ready again, trials and
models lost, units trained twice. A test that writes no figures (yet) is recorded with
its outcome only; a fault whose test is not in this checkout is "not available".

Faults and their tests:

- ``worker_node``: a worker node SIGKILLed mid-run (tests/slow/test_fault_worker_node.py);
- ``driver``: the training driver SIGKILLed mid-run (tests/slow/test_fault_driver.py);
- ``head``: the head (GCS) SIGKILLed and restarted with Redis under predict load and a
  run in flight (tests/slow/test_fault_head.py);
- ``replica``: a Serve replica's node killed under load (tests/slow/test_fault_serving.py);
- ``postgres``: the PostgreSQL registry restarted during serving
  (tests/slow/test_fault_postgres.py).

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


def run_fault(name: str, test: str, folder: Path, sizes: dict[str, str],
              timeout_s: float) -> dict[str, Any]:
    """One run of ``test``: its figures (when it writes them) and its outcome."""
    if not (REPO / test).exists():
        return {"fault": name, "test": test, "outcome": "not available"}
    figures_path = folder / f"{name}.json"
    figures_path.unlink(missing_ok=True)
    env = {**os.environ, **sizes, "FLEETLEARN_FAULT_FIGURES": str(figures_path),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    log = folder / f"{name}.log"
    start = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(
                [sys.executable, "-m", "pytest", test, "-q", "-s", "-p", "no:randomly",
                 "-p", "no:cacheprovider"], cwd=REPO, env=env, stdout=out,
                stderr=subprocess.STDOUT, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = None
    record: dict[str, Any] = {"fault": name, "test": test, "log": str(log),
                              "seconds": round(time.monotonic() - start, 1),
                              "outcome": {0: "passed", None: "timed out"}.get(code, "failed")}
    if figures_path.exists():
        record.update(json.loads(figures_path.read_text()))
        record["fault"] = name
    return record


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def table(records: list[dict[str, Any]]) -> str:
    head = ["fault", "outcome", "sent", "ok", "failed", "p50/p99 before", "p50/p99 during",
            "p50/p99 after", "ready s", "trials lost", "models lost", "units twice"]
    rows = [head]
    for r in records:
        # Fault 4 counts requests retried by the client: answered, and lost after retries.
        total = r.get("requests") or ({"sent": r["sent"], "ok": r.get("answered"),
                                       "failed": r.get("lost")} if "sent" in r else {})
        lat = [f"{_cell((r.get(w) or {}).get('p50_ms'))}/{_cell((r.get(w) or {}).get('p99_ms'))}"
               for w in WINDOWS]
        rows.append([r["fault"], r["outcome"], _cell(total.get("sent")), _cell(total.get("ok")),
                     _cell(total.get("failed")), *lat, _cell(r.get("seconds_until_ready")),
                     _cell(r.get("trials_lost")), _cell(r.get("models_lost")),
                     _cell(r.get("units_trained_twice"))])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n(latencies in ms; requests counted without client retries)"


def plot(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in records if r.get("requests")]
    fig, (lat_ax, fail_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.25
    for i, window in enumerate(WINDOWS):
        xs = [k + (i - 1) * width for k in range(len(measured))]
        p50 = [(r.get(window) or {}).get("p50_ms") or 0 for r in measured]
        p99 = [(r.get(window) or {}).get("p99_ms") or 0 for r in measured]
        lat_ax.bar(xs, p99, width, alpha=0.35, color=f"C{i}")
        lat_ax.bar(xs, p50, width, color=f"C{i}", label=f"{window} (p50 solid, p99 light)")
        fail_ax.bar(xs, [(r.get(window) or {}).get("failed", 0) for r in measured], width,
                    color=f"C{i}", label=window)
    for ax in (lat_ax, fail_ax):
        ax.set_xticks(range(len(measured)), [r["fault"] for r in measured])
        ax.legend(fontsize=8)
    lat_ax.set_ylabel("predict latency (ms)")
    lat_ax.set_yscale("log")
    fail_ax.set_ylabel("failed predict requests")
    most = max([(r.get(w) or {}).get("failed", 0) for r in measured for w in WINDOWS] or [0])
    fail_ax.set_ylim(0, max(1, most) * 1.15)
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
                record = run_fault(name, FAULTS[name], folder, sizes, args.timeout_s)
                if record.get("log"):  # keep the log of a failed run next to the results
                    kept = args.out / f"faults_{name}_{k + 1}.log"
                    if record["outcome"] != "passed":
                        kept.write_text(Path(record["log"]).read_text(errors="replace"))
                        record["log"] = str(kept.relative_to(REPO)) if kept.is_relative_to(
                            REPO) else str(kept)
                    else:
                        record.pop("log")
                record["trial"] = k + 1
                records.append(record)
                print(f"  {record['outcome']}", flush=True)
    result = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform()},
              "mode": "compose" if args.compose else "processes",
              "sizes": {"down_s": args.down_s, "after_s": args.after_s,
                        "interval_ms": args.interval_ms, "repeat": args.repeat},
              "records": records}
    (args.out / "faults.json").write_text(json.dumps(result, indent=2))
    if any(r.get("requests") for r in records):
        plot(records, args.out / "faults.png")
    print(table(records))
    return 0 if all(r["outcome"] in ("passed", "not available") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
