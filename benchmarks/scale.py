"""Scale benchmark: what one driver, one registry and the object store can carry.

Not a test. Three parts, written to ``<out>/scale.json`` and ``<out>/scale.png``
(default ``benchmarks/results/issue9/``); ``docs/scaling.md`` scales the figures to
10, 100 and 1,000 nodes:

(o) Orchestration overhead per trial at 2,000 and 20,000 tiny trials (a dummy model on
    500 rows, as part (b) of ``training.py``) with Ray given many logical CPUs
    (``--num-cpus``, default 64 on the embedded default), so the driver, not the
    CPUs, is what limits throughput. Target: at most 2.5 ms per trial at both sizes.
    Overhead per trial = (wall - trials x in-process fit+score time / physical cores)
    / trials: the definition of ``training.py`` part (b), with the compute divided by
    the cores that really run it (logical CPUs only let more tasks queue on them).
(j) Journal writes per second on SQLite and PostgreSQL: ``Registry.record_units``
    (the driver's journal path) with batches of the sizes the driver writes, real unit
    payloads (one CV fold's result of ``run_unit``).
(t) The time for a 100 MB table to reach 3 nodes: ``ray.put`` once in the driver, then
    one task pinned to each node that reads it (a local process cluster from
    ``fleetlearn.cluster``, each node with its own loopback IP and object store).

Usage::

    python benchmarks/scale.py                       # full run (see --help for time)
    python benchmarks/scale.py --quick               # smoke run, a few minutes
    python benchmarks/scale.py --parts j --journal-units 2000 --out /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import training as tb  # noqa: E402  - the shared harness: tables, CPU accounting, timers

RESULTS = Path(__file__).resolve().parent / "results" / "issue9"
TARGET_MS = 2.5
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Sizes:
    """Problem sizes of one run (full or ``--quick``); every one is a flag."""

    trials: list[int] = field(default_factory=lambda: [2_000, 20_000])
    rows: int = 500
    sample: int = 200
    num_cpus: int = 64
    with_compute: bool = True  # (o) with the dummy fit + score in each task
    no_compute: bool = True  # (o) again with a task body that does nothing
    journal_units: int = 20_000
    journal_batches: list[int] = field(default_factory=lambda: [1, 32, 256])
    table_mb: int = 100
    nodes: int = 3
    repeats: int = 1


def quick_sizes() -> Sizes:
    return Sizes(trials=[200, 1_000], sample=25, num_cpus=16, journal_units=1_000,
                 table_mb=20)


# ---------------------------------------------------------------------- part o


def warm_workers(num_cpus: int, work: Path, no_compute: bool) -> float:
    """Start the Ray worker processes (one per logical CPU) and load each task body in each.

    Ten units per logical CPU, so that Ray starts every worker it will use and each
    imports fleetlearn's task module and the model before anything is timed; for the
    no-compute runs, :func:`canned_task`'s body (which fleetlearn never runs) is run
    on them too. The timed runs then measure a warm cluster's orchestration, as a
    long-lived cluster gives it, and not interpreter starts.
    """
    path = tb.write_table(work / "warm.parquet", 300, 8, 4)
    start = time.perf_counter()
    n = max(num_cpus * 2, 2)  # 5 folds each: 10 units per worker, so every worker runs some
    tb.run_fleetlearn(path, [tb.DUMMY] * n, 5, num_cpus, work, "warm")
    if no_compute:
        run_driver_only(path, [tb.DUMMY] * n, 5, num_cpus, work, "warm-z", unit_payload(work))
    return time.perf_counter() - start


def canned_task(template: dict[str, Any]) -> Callable[..., list[dict[str, Any]]]:
    """A task body that returns recorded CV unit results at once: no fit, no scoring.

    With it, a run's wall time is fleetlearn's and Ray's orchestration alone (submit,
    schedule, return, wait, journal, close, leaderboard), whatever the machine's
    load does to compute. It stands in for ``run_unit_batch`` (a task runs one or
    more units).
    """

    def run_unit_batch(bundle: Any, items: list[Any], metric: str) -> list[dict[str, Any]]:
        now = time.time()
        one = {**template, "payload": {**template["payload"], "started_at": now,
                                       "finished_at": now}, "artifact": None}
        return [one] * len(items)

    return run_unit_batch


def run_driver_only(path: Path, models: list[str], folds: int, cores: int, work: Path,
                    tag: str, template: dict[str, Any]) -> dict[str, Any]:
    from fleetlearn.training import _execute

    real = _execute.run_unit_batch
    _execute.run_unit_batch = canned_task(template)  # the driver makes its task from this
    try:
        return tb.run_fleetlearn(path, models, folds, cores, work, tag)
    finally:
        _execute.run_unit_batch = real


def _per_trial(x: dict[str, Any], trials: int, cr: float, cores: int) -> dict[str, float]:
    """Per-trial figures of one run; ``cr`` is one trial's in-process compute (s)."""
    cpu = x["cpu_core_s"]
    return {
        "wall_per_trial_ms": x["wall_s"] / trials * 1e3,
        "fit_score_ms": cr * 1e3,
        "overhead_per_trial_ms": (x["wall_s"] - trials * cr / cores) / trials * 1e3,
        # The same with the CPU other processes took from the machine during the run
        # given back: on a shared machine, the figure to read.
        "overhead_undisturbed_ms": (x["wall_s"] - (trials * cr + cpu["other_processes"])
                                    / cores) / trials * 1e3,
        # fleetlearn's and Ray's own CPU beyond the workers, per trial.
        "orchestration_cpu_per_trial_ms": sum(
            cpu.get(k, 0.0) for k in ("driver", "raylet", "gcs_server", "ray_other")
        ) / trials * 1e3,
        "registry_per_trial_ms": x["registry_s"] / trials * 1e3,
        "driver_cpu_per_trial_ms": x["driver_cpu_s"] / trials * 1e3,
        "head_ms_per_trial": x["head_s"] / trials * 1e3,
        "foot_ms_per_trial": x["foot_s"] / trials * 1e3,
        "other_processes_per_trial_ms": cpu["other_processes"] / trials * 1e3,
    }


def _summarise(runs: list[dict[str, Any]], per: list[dict[str, float]]) -> dict[str, Any]:
    med = {k: statistics.median(p[k] for p in per) for k in per[0]}
    best_run = min(runs, key=lambda x: x["wall_s"])
    return {
        "walls_s": [round(x["wall_s"], 3) for x in runs],
        "per_trial_ms": {k: round(v, 4) for k, v in med.items()},
        "breakdown_best_run_s": {k: round(best_run[k], 3) for k in
                                 ("head_s", "span_s", "foot_s", "registry_s", "driver_cpu_s")},
        "registry_by_method_s": best_run["registry_by_method_s"],
        "cpu_core_s": best_run["cpu_core_s"],
        "passed": med["overhead_per_trial_ms"] <= TARGET_MS,
    }


def part_o(sizes: Sizes, cores: int, work: Path, profile: bool, out: Path) -> dict[str, Any]:
    folds = 5
    path = tb.write_table(work / "o.parquet", sizes.rows, 10, 5)
    print(f"\n(o) orchestration overhead: {tb.DUMMY} x {folds} folds on {sizes.rows} rows; "
          f"Ray has {sizes.num_cpus} logical CPUs on {cores} physical cores")
    w, fits = tb.tiny_work(path, max(sizes.sample // folds, 1), folds, sizes.sample)
    template = unit_payload(work)
    results = []
    for n_trials in sizes.trials:
        n_models = max(n_trials // folds, 1)
        trials = n_models * folds
        models = [tb.DUMMY] * n_models
        entry: dict[str, Any] = {"trials": trials, "models": n_models, "folds": folds}
        if sizes.with_compute:
            runs, per = [], []
            for r in range(sizes.repeats):
                before = tb.tiny_fit_score(w, fits)
                runs.append(tb.measure(
                    f"{trials:,} trials #{r + 1}", lambda r=r, m=models, n=trials:
                    tb.run_fleetlearn(path, m, folds, cores, work, f"o{n}-{r}")))
                cr = (before + tb.tiny_fit_score(w, fits)) / 2
                per.append(_per_trial(runs[-1], trials, cr, cores))
            entry.update(_summarise(runs, per))
            t = entry["per_trial_ms"]
            print(f"  {trials:,} trials: wall/trial {t['wall_per_trial_ms']:.2f} ms, overhead/"
                  f"trial {t['overhead_per_trial_ms']:.2f} ms (target <= {TARGET_MS} ms) "
                  f"{tb.verdict(entry['passed'])}; without other processes' CPU "
                  f"{t['overhead_undisturbed_ms']:.2f} ms; driver CPU "
                  f"{t['driver_cpu_per_trial_ms']:.2f} ms/trial, registry "
                  f"{t['registry_per_trial_ms']:.2f} ms/trial")
        if sizes.no_compute:
            # The same run with a task body that returns a recorded result at once
            # (canned_task): orchestration alone, so wall per trial is the overhead,
            # whatever other work on the machine does to compute.
            runs = [tb.measure(f"{trials:,} trials, no compute #{r + 1}",
                               lambda r=r, m=models, n=trials: run_driver_only(
                                   path, m, folds, cores, work, f"z{n}-{r}", template))
                    for r in range(sizes.repeats)]
            bare = _summarise(runs, [_per_trial(x, trials, 0.0, cores) for x in runs])
            entry["no_compute"] = bare
            t = bare["per_trial_ms"]
            print(f"  {trials:,} trials, no compute: wall/trial {t['wall_per_trial_ms']:.2f} "
                  f"ms (target <= {TARGET_MS} ms) {tb.verdict(bare['passed'])}; driver CPU "
                  f"{t['driver_cpu_per_trial_ms']:.2f} ms/trial, registry "
                  f"{t['registry_per_trial_ms']:.2f} ms/trial, Ray daemons + driver "
                  f"{t['orchestration_cpu_per_trial_ms']:.2f} ms/trial")
        results.append(entry)
    profile_file = None
    if profile:
        import subprocess

        # py-spy samples the driver from outside: the driver's Python time is what
        # grows with the number of trials, if anything does.
        profile_file = out / "scale_profile_o.txt"
        n = sizes.trials[-1]
        cmd = [sys.executable, __file__, "--parts", "o", "--trials", str(n), "--repeats", "1",
               "--num-cpus", str(sizes.num_cpus), "--out", str(work / "prof")]
        spy = Path(sys.executable).with_name("py-spy")
        subprocess.run([str(spy), "record", "-f", "raw", "-r", "50", "-o",
                        str(profile_file), "--", *cmd], check=False)
        print(f"  py-spy profile of {n:,} trials written to {profile_file}")

    def growth(kind: str) -> float | None:
        vals = [(r[kind] if kind != "with" else r)["per_trial_ms"]["wall_per_trial_ms"]
                for r in results if (kind in r if kind != "with" else "per_trial_ms" in r)]
        return round(vals[-1] / vals[0], 3) if len(vals) > 1 else None

    judged = [r for r in results if "passed" in r] + [r["no_compute"] for r in results
                                                        if "no_compute" in r]
    return {
        "model": tb.DUMMY, "rows": sizes.rows, "num_cpus": sizes.num_cpus,
        "physical_cores": cores, "sizes": results,
        "wall_per_trial_growth_largest_vs_smallest": growth("with"),
        "no_compute_wall_per_trial_growth": growth("no_compute"),
        "overhead_formula": "(wall - trials * in-process fit+score time / physical cores) / "
                            "trials; training.py part (b)'s definition, the in-process time "
                            "measured just before and after each run and averaged. "
                            "no_compute: the task body returns a recorded result at once, "
                            "so the overhead is wall / trials",
        "target_ms": TARGET_MS,
        "passed": all(r["passed"] for r in judged),
    }


# ---------------------------------------------------------------------- part j


def unit_payload(work: Path) -> dict[str, Any]:
    """One real CV unit's payload, as ``run_unit`` returns it inside a Ray task."""
    from fleetlearn.evaluation import PRIMARY_METRIC
    from fleetlearn.training import make_splits, run_unit

    path = tb.write_table(work / "j.parquet", 500, 10, 5)
    w = tb.load_work(path, [tb.DUMMY], 5)
    bundle = {"X": w.X, "y": w.y, "schema": w.schema,
              "splits": make_splits(w.y, w.task, 5, 0.2, 0)}
    spec = w.specs[0]
    out = run_unit(bundle, spec.to_dict(), "cv0", w.seeds[(spec.name, 0)],
                   PRIMARY_METRIC[w.task])
    return {k: out[k] for k in ("status", "payload", "error", "duration_s")}


def _pg_database() -> tuple[str, Any] | None:
    """A fresh database on the shared PostgreSQL (dropped at the end), or None."""
    import sqlalchemy as sa

    name = f"flscale_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT",
                                 connect_args={"connect_timeout": 5})
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL here: measure SQLite only
        print(f"  PostgreSQL at {PG_URL} unavailable ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0]}); skipping it")
        return None
    return PG_URL.rsplit("/", 1)[0] + f"/{name}", admin


def _drop_pg(name_url: str, admin: Any) -> None:
    name = name_url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def journal_rate(url: str, artifacts: Path, payload: dict[str, Any], units: int,
                 batch: int) -> dict[str, Any]:
    """Write ``units`` journal entries in batches of ``batch``; entries per second."""
    from fleetlearn.registry import Registry

    reg = Registry(url, artifact_dir=artifacts)
    try:
        run = reg.create_run({"bench": "journal"}, seed=0)
        ds = reg.add_dataset(run.id, fingerprint=uuid.uuid4().hex, name="d", source="bench",
                             n_rows=500, n_features=10, task="classification",
                             target="target", schema={})
        folds = 5
        trials = [t.id for t in reg.ensure_trials(
            run.id, ds.id, [(f"m{i}", {"estimator": tb.DUMMY})
                            for i in range((units + folds - 1) // folds)])]
        rows = [{"trial_id": trials[i // folds], "unit": f"cv{i % folds}", **payload}
                for i in range(units)]
        times = []
        start = time.perf_counter()
        for i in range(0, units, batch):
            t0 = time.perf_counter()
            reg.record_units(rows[i:i + batch])
            times.append(time.perf_counter() - t0)
        wall = time.perf_counter() - start
        stored = sum(len(t.units) for t in reg.list_trials(run.id))
    finally:
        reg.close()
    if stored != units:
        raise RuntimeError(f"journal benchmark stored {stored} units, wrote {units}")
    return {"batch": batch, "units": units, "wall_s": round(wall, 3),
            "units_per_s": round(units / wall, 1),
            "batches_per_s": round(len(times) / wall, 1),
            "batch_ms_p50": round(statistics.median(times) * 1e3, 3),
            "batch_ms_p99": round(float(np.percentile(times, 99)) * 1e3, 3)}


def part_j(sizes: Sizes, work: Path) -> dict[str, Any]:
    payload = unit_payload(work)
    size = len(json.dumps(payload["payload"], default=float))
    print(f"\n(j) journal writes: {sizes.journal_units:,} units per cell, batches of "
          f"{', '.join(map(str, sizes.journal_batches))}; payload {size} bytes of JSON")
    backends: dict[str, list[dict[str, Any]]] = {}
    pg = _pg_database()
    try:
        urls = {"sqlite": None, "postgresql": pg[0] if pg else None}
        for backend, url in urls.items():
            if backend == "postgresql" and url is None:
                continue
            backends[backend] = []
            for batch in sizes.journal_batches:
                folder = Path(tempfile.mkdtemp(prefix=f"j-{backend}-{batch}-", dir=work))
                cell_url = url or f"sqlite:///{folder}/reg.db"
                units = sizes.journal_units if batch > 1 else min(sizes.journal_units, 5_000)
                r = tb.measure(f"{backend} batch {batch}", lambda u=cell_url, n=units, b=batch,
                               f=folder: journal_rate(u, f / "artifacts", payload, n, b))
                backends[backend].append(r)
                print(f"    {r['units_per_s']:>9,.0f} units/s, {r['batches_per_s']:>7,.1f} "
                      f"batches/s, batch p50 {r['batch_ms_p50']:.2f} ms")
    finally:
        if pg is not None:
            _drop_pg(*pg)
    return {"payload_bytes": size, "backends": backends,
            "postgresql_url": PG_URL.rsplit("/", 1)[0] + "/<fresh database>" if pg else None,
            "how": "Registry.record_units, one transaction per batch (the driver's journal "
                   "path: an upsert of the batch plus the trials' updated_at), one writer"}


# ---------------------------------------------------------------------- part t


def read_table(holder: list[Any]) -> dict[str, Any]:
    """Task body: fetch the table from the object store (the reference is passed inside a
    list, so the task's own ``ray.get`` is the transfer) and touch every column."""
    import ray

    start = time.perf_counter()
    frame = ray.get(holder[0])
    got = time.perf_counter() - start
    total = float(frame.to_numpy().sum())
    return {"node_id": ray.get_runtime_context().get_node_id(), "get_s": got,
            "read_s": time.perf_counter() - start, "checksum": total, "pid": os.getpid(),
            "finished_at": time.time()}


def transfer_child(address: str, table_mb: int, repeats: int, out: Path) -> None:
    """Runs in its own process (one Ray connection per process): put the table once,
    read it on every node, ``repeats`` times with a fresh object each time."""
    import pandas as pd
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(address=address, log_to_driver=False, include_dashboard=False)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    remote = ray.remote(num_cpus=0)(read_table)

    def on(node: dict[str, Any]) -> Any:
        return remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node["NodeID"], soft=False))

    # Start a worker on every node first (not timed): process start-up is not transfer.
    ray.get([on(n).remote([ray.put(pd.DataFrame({"x": [1.0]}))]) for n in nodes])
    columns = 50
    rows = table_mb * 2**20 // (8 * columns)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((rows, columns)), columns=[f"f{i}" for i in range(columns)])
    size = int(frame.memory_usage(index=False).sum())
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        t0 = time.time()
        ref = ray.put(frame)
        put_s = time.perf_counter() - start
        results = ray.get([on(n).remote([ref]) for n in nodes])
        total = time.perf_counter() - start
        ips = {n["NodeID"]: n["NodeManagerAddress"] for n in nodes}
        runs.append({"put_s": put_s, "total_s": total,
                     "per_node": [{"ip": ips[r["node_id"]], "get_s": r["get_s"],
                                   "read_s": r["read_s"], "done_after_s": r["finished_at"] - t0}
                                  for r in results]})
        del ref
    ray.shutdown()
    out.write_text(json.dumps({"bytes": size, "rows": rows, "columns": columns,
                               "nodes": [n["NodeManagerAddress"] for n in nodes],
                               "runs": runs}))


def part_t(sizes: Sizes, work: Path) -> dict[str, Any]:
    import subprocess

    from fleetlearn.cluster import LocalCluster, NodeOptions

    print(f"\n(t) a {sizes.table_mb} MB table to {sizes.nodes} nodes: ray.put once, one task "
          "pinned to each node reads it")
    block = f"127.{100 + os.getpid() % 150}.{200 + os.getpid() // 150 % 50}"
    store = max(3 * sizes.table_mb, 200) * 2**20
    cluster = LocalCluster(work / "cluster", options=NodeOptions(
        num_cpus=1, memory=max(4 * sizes.table_mb, 512) * 2**20 + store,
        object_store_memory=store), head_ip=f"{block}.1", ip_prefix=block, isolated=True)
    started = time.perf_counter()
    cluster.up(sizes.nodes - 1, timeout=300)
    up_s = time.perf_counter() - started
    try:
        out = work / "transfer.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env["RAY_ADDRESS"] = cluster.address
        env.update(cluster.state.security_env or {} if cluster.state else {})  # TLS + token
        subprocess.run([sys.executable, __file__, "--transfer-child", str(out), "--address",
                        cluster.address, "--table-mb", str(sizes.table_mb), "--repeats",
                        str(sizes.repeats)], check=True, env=env, timeout=900)
        child = json.loads(out.read_text())
    finally:
        cluster.stop()
    runs = child["runs"]
    best = min(runs, key=lambda r: r["total_s"])
    mb = child["bytes"] / 2**20
    local = [p for p in best["per_node"] if p["ip"] == cluster.head_ip]
    remote = [p for p in best["per_node"] if p["ip"] != cluster.head_ip]
    print(f"  cluster of {len(child['nodes'])} nodes up in {up_s:.1f} s (not timed); "
          f"{mb:.0f} MB: put {best['put_s']:.2f} s, on every node after {best['total_s']:.2f} s")
    for p in best["per_node"]:
        print(f"    {p['ip']:<16} get {p['get_s']:.3f} s ({mb / max(p['get_s'], 1e-9):,.0f} MB/s)"
              f"{'  (the driver’s node: shared memory)' if p in local else ''}")
    return {"table_mb": round(mb, 1), "nodes": len(child["nodes"]), "cluster_up_s": round(up_s, 1),
            "put_s": round(best["put_s"], 3), "total_s": round(best["total_s"], 3),
            "read_s": [round(p["get_s"], 3) for p in best["per_node"]],
            "read_ips": [p["ip"] for p in best["per_node"]],
            "remote_mb_per_s": [round(mb / max(p["get_s"], 1e-9), 1) for p in remote],
            "runs": runs, "node_ips": child["nodes"], "head_ip": cluster.head_ip,
            "how": "LocalCluster (fleetlearn.cluster): a head and workers as ray start "
                   "processes, each with its own loopback IP and object store; the driver "
                   "connects to the head, ray.put()s a float table once and runs one task "
                   "per node (NodeAffinitySchedulingStrategy) whose ray.get() is timed; "
                   "best of the repeats"}


# ---------------------------------------------------------------------- output


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [p for p in ("o", "j", "t") if p in results["parts"]]
    fig, axes = plt.subplots(1, len(parts), figsize=(5.4 * len(parts), 4.6), squeeze=False)
    for ax, part in zip(axes[0], parts, strict=True):
        r = results["parts"][part]
        if part == "o":
            labels = [f"{s['trials']:,}" for s in r["sizes"]]
            x = np.arange(len(labels))
            keys = [("per_trial_ms", "overhead_per_trial_ms", "overhead (with fit+score)",
                     "#ef6c00"),
                    ("no_compute", "wall_per_trial_ms", "wall, no compute", "#ffb74d"),
                    ("no_compute", "overhead_undisturbed_ms",
                     "same, other processes' CPU given back", "#ffe0b2"),
                    ("no_compute", "driver_cpu_per_trial_ms", "driver CPU, no compute",
                     "#90caf9"),
                    ("no_compute", "registry_per_trial_ms", "registry, no compute", "#64b5f6")]
            keys = [k for k in keys if all(k[0] in s for s in r["sizes"])]
            width = 0.8 / max(len(keys), 1)
            for i, (where, k, label, color) in enumerate(keys):
                vals = [(s[where]["per_trial_ms"] if where == "no_compute" else s[where])[k]
                        for s in r["sizes"]]
                pos = x + (i - (len(keys) - 1) / 2) * width
                ax.bar(pos, vals, width, color=color, label=label)
                for xi, v in zip(pos, vals, strict=True):
                    ax.text(xi, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
            ax.axhline(TARGET_MS, color="red", ls="--", lw=1.2,
                       label=f"target: overhead <= {TARGET_MS} ms")
            ax.set_xticks(x, labels)
            ax.set_xlabel("tiny trials")
            ax.set_ylabel("milliseconds per trial")
            ax.set_title(f"(o) orchestration per trial, Ray with {r['num_cpus']} logical CPUs\n"
                         f"on {r['physical_cores']} cores: {tb.verdict(r['passed'])}",
                         fontsize=10)
            ax.legend(fontsize=7)
        elif part == "j":
            for backend, cells in r["backends"].items():
                ax.plot([c["batch"] for c in cells], [c["units_per_s"] for c in cells],
                        marker="o", label=backend)
                for c in cells:
                    ax.annotate(f"{c['units_per_s']:,.0f}", (c["batch"], c["units_per_s"]),
                                fontsize=8, textcoords="offset points", xytext=(4, 4))
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("units per batch (one transaction)")
            ax.set_ylabel("journal entries per second")
            ax.set_title(f"(j) journal writes, one writer\n(payload {r['payload_bytes']} B)",
                         fontsize=10)
            ax.legend(fontsize=8)
        else:
            nodes = [f"get on .{ip.rsplit('.', 1)[1]}" + (" (head)" if ip == r["head_ip"]
                                                          else "") for ip in r["read_ips"]]
            ax.bar(["put"], [r["put_s"]], color="#9e9e9e")
            ax.bar(nodes, r["read_s"], color="#64b5f6")
            ax.tick_params(axis="x", labelsize=7)
            ax.set_ylabel("seconds")
            ax.set_title(f"(t) {r['table_mb']} MB table to {r['nodes']} nodes: "
                         f"{r['total_s']:.2f} s", fontsize=10)
    m = results["machine"]
    fig.suptitle(f"fleetlearn scale benchmark - {m['cores']} cores, ray {m['versions']['ray']}"
                 f"{' (quick)' if results['quick'] else ''}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(results: dict[str, Any]) -> None:
    rows = []
    p = results["parts"]
    if "o" in p:
        for s in p["o"]["sizes"]:
            if "per_trial_ms" in s:
                t = s["per_trial_ms"]
                rows.append((f"(o) {s['trials']:,} trials: overhead per trial",
                             f"{t['overhead_per_trial_ms']:.2f} ms", f"<= {TARGET_MS} ms",
                             tb.verdict(s["passed"])))
                rows.append((f"(o) {s['trials']:,} trials: same, other processes' CPU removed",
                             f"{t['overhead_undisturbed_ms']:.2f} ms", "", ""))
                rows.append((f"(o) {s['trials']:,} trials: driver CPU per trial",
                             f"{t['driver_cpu_per_trial_ms']:.2f} ms", "", ""))
            if "no_compute" in s:
                t = s["no_compute"]["per_trial_ms"]
                rows.append((f"(o) {s['trials']:,} trials, no compute: wall per trial",
                             f"{t['wall_per_trial_ms']:.2f} ms", f"<= {TARGET_MS} ms",
                             tb.verdict(s["no_compute"]["passed"])))
                rows.append((f"(o) {s['trials']:,} trials, no compute: driver CPU per trial",
                             f"{t['driver_cpu_per_trial_ms']:.2f} ms", "", ""))
    if "j" in p:
        for backend, cells in p["j"]["backends"].items():
            for c in cells:
                rows.append((f"(j) {backend}, batches of {c['batch']}",
                             f"{c['units_per_s']:,.0f} units/s", "", ""))
    if "t" in p:
        t = p["t"]
        rows.append((f"(t) {t['table_mb']} MB to {t['nodes']} nodes", f"{t['total_s']:.2f} s",
                     "", ""))
    head = ("measurement", "value", "target", "result")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    print()
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for scale.json and scale.png, or scale_<parts>.* when "
                        "--parts names some parts only (default: %(default)s)")
    parser.add_argument("--parts", default="ojt", help="which parts to run, e.g. 'oj'")
    parser.add_argument("--trials", type=_ints, default=None,
                        help="tiny-trial counts of part (o) (default 2000,20000)")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="logical CPUs Ray is given in part (o) (default 64)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of each size in part (o) (default 1)")
    parser.add_argument("--journal-units", type=int, default=None,
                        help="journal entries per cell of part (j) (default 20000)")
    parser.add_argument("--journal-batches", type=_ints, default=None,
                        help="batch sizes of part (j) (default 1,32,256)")
    parser.add_argument("--table-mb", type=int, default=None,
                        help="table size of part (t) (default 100)")
    parser.add_argument("--nodes", type=int, default=None,
                        help="nodes of part (t)'s cluster (default 3)")
    parser.add_argument("--no-compute-only", action="store_true",
                        help="part (o) only with task bodies that do nothing (the "
                        "orchestration alone; minutes instead of tens on a busy machine)")
    parser.add_argument("--profile", action="store_true",
                        help="also run the largest size of (o) under py-spy")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each measurement, wait up to SECONDS for the machine "
                        "to go idle")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--transfer-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.transfer_child is not None:
        transfer_child(args.address, args.table_mb or 100, args.repeats or 1,
                       args.transfer_child)
        return 0
    sizes = quick_sizes() if args.quick else Sizes()
    for name in ("trials", "num_cpus", "repeats", "journal_units", "journal_batches",
                 "table_mb", "nodes"):
        if getattr(args, name) is not None:
            setattr(sizes, name, getattr(args, name))
    if args.no_compute_only:
        sizes.with_compute = False
    parts = [p for p in "ojt" if p in args.parts]
    if not parts:
        parser.error("--parts must name at least one of o, j, t")

    tb.WAIT_IDLE["seconds"] = args.wait_idle
    work = tb.isolate_environment(args.keep)
    args.out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    results: dict[str, Any] = {
        "benchmark": "scale", "quick": args.quick,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sizes": sizes.__dict__, "machine": tb.machine_info(cores),
        "load_avg_start": os.getloadavg(), "parts": {},
    }
    if "o" in parts and sizes.num_cpus > 8 * cores:
        print(f"note: {sizes.num_cpus} logical CPUs on {cores} cores start {sizes.num_cpus} "
              "worker processes that starve the driver; the run measures the OS scheduler "
              f"more than fleetlearn (on this machine try --num-cpus {2 * cores})")
    if "o" in parts:
        import ray

        results["ray_start_s"] = round(tb.start_ray(sizes.num_cpus), 3)
        try:
            results["warm_up_s"] = round(warm_workers(sizes.num_cpus, work,
                                                       sizes.no_compute), 3)
            print(f"Ray with {sizes.num_cpus} logical CPUs started in {results['ray_start_s']:.1f}"
                  f" s, workers warmed in {results['warm_up_s']:.1f} s (not timed)")
            results["parts"]["o"] = part_o(sizes, cores, work, args.profile, args.out)
        finally:
            ray.shutdown()
    if "j" in parts:
        results["parts"]["j"] = part_j(sizes, work)
    if "t" in parts:
        results["parts"]["t"] = part_t(sizes, work)
    results["load_avg_end"] = os.getloadavg()
    results["total_s"] = round(time.perf_counter() - started, 1)
    # A run of some parts only writes scale_<parts>.json: it never overwrites a full run.
    stem = "scale" + ("" if parts == list("ojt") else "_" + "".join(parts))
    stem += "_quick" if args.quick else ""
    json_path, png_path = args.out / f"{stem}.json", args.out / f"{stem}.png"
    json_path.write_text(json.dumps(results, indent=1, default=float) + "\n")
    plot(results, png_path)
    print_table(results)
    print(f"\nwrote {json_path} and {png_path} in {results['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
