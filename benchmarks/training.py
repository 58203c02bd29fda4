"""Training benchmark: fleetlearn on Ray against plain scikit-learn and joblib.

Not a test. Three parts, measured in one process and written to
``<out>/training.json`` and ``<out>/training.png``:

(a) 8 models x 5 folds on a generated 50,000-row, 30-feature table: fleetlearn vs the
    same 40 fits in a plain sequential loop vs ``joblib.Parallel(n_jobs=<cores>)``.
    Targets: wall <= 0.60 x sequential and <= 1.05 x joblib; parallel efficiency
    (sum of task times / (wall x cores)) >= 0.85.
(b) Orchestration overhead: 2,000 tiny trials (a dummy model on 500 rows);
    target <= 10 ms of overhead per trial, journaling included.
(c) The seed layout (one Ray task per model running 5-fold CV inside it) against
    fleetlearn's one task per fold, for random forest, gradient boosting and logistic
    regression: fleetlearn must finish in less wall time.

Every system does exactly the same fits: the pipeline of
``fleetlearn.model.build_pipeline``, the folds of ``make_splits`` and the
seeds fleetlearn derives, one BLAS/OpenMP thread per fit (as fleetlearn's tasks run).
Each wall time starts at the Parquet file and ends with every fold scored, so all of
them include loading the table. Ray is started once, before any timing.

Usage::

    python benchmarks/training.py            # full run, about 12-15 minutes on 2 cores
    python benchmarks/training.py --quick    # smoke run, under a minute
    python benchmarks/training.py --parts b --repeats 3 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import heapq
import io
import json
import os
import platform
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

#: Models of part (a): catalog names with parameters that keep one sequential pass near
#: 1.5 minutes on one core. Listed in catalog order, not sorted by cost: fleetlearn
#: submits units in the order given, so this is what a user would get.
MODELS_A = [
    "logistic_regression",
    "random_forest:n_estimators=20",
    "extra_trees:n_estimators=30",
    "hist_gradient_boosting:max_iter=50",
    "decision_tree",
    "naive_bayes",
    "sgd",
    "mlp:max_iter=20",
]
#: Models of part (c), in the order the issue names them.
MODELS_C = [
    "random_forest:n_estimators=30",
    "gradient_boosting:n_estimators=30",
    "logistic_regression",
]
DUMMY = "sklearn.dummy.DummyClassifier"


@dataclass
class Sizes:
    """Problem sizes of one benchmark run (full or ``--quick``)."""

    rows_a: int = 50_000
    features: int = 30
    informative: int = 15
    models_a: list[str] = field(default_factory=lambda: list(MODELS_A))
    trials_b: int = 2_000
    rows_b: int = 500
    sample_b: int = 200
    rows_c: int = 20_000
    models_c: list[str] = field(default_factory=lambda: list(MODELS_C))
    folds: int = 5
    repeats: int = 2


def quick_sizes(repeats: int | None) -> Sizes:
    return Sizes(
        rows_a=3_000,
        models_a=[
            "logistic_regression",
            "random_forest:n_estimators=5",
            "extra_trees:n_estimators=5",
            "hist_gradient_boosting:max_iter=10",
            "decision_tree",
            "naive_bayes",
            "sgd",
            "mlp:max_iter=5",
        ],
        trials_b=100,
        sample_b=25,
        rows_c=2_000,
        models_c=[
            "random_forest:n_estimators=10",
            "gradient_boosting:n_estimators=10",
            "logistic_regression",
        ],
        repeats=repeats or 1,
    )


# ----------------------------------------------------------------------------- setup


def isolate_environment(keep: bool) -> Path:
    """Point HOME, RAY_TMPDIR and FLEETLEARN_HOME at a fresh short temp folder.

    Ray's socket paths must stay under ~100 characters, and nothing here may touch the
    user's own registry or Ray session.
    """
    work = Path(tempfile.mkdtemp(prefix="flbench-", dir="/tmp"))
    for var in ("HOME", "RAY_TMPDIR", "FLEETLEARN_HOME"):
        os.environ[var] = str(work)
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.pop("FLEETLEARN_REGISTRY_URL", None)
    if not keep:
        import atexit

        atexit.register(shutil.rmtree, work, ignore_errors=True)
    return work


def start_ray(cores: int) -> float:
    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
    return time.perf_counter() - start


def cpu_busy(seconds: float = 1.0) -> float:
    """Cores kept busy by the whole machine over ``seconds`` (other work skews timings)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            parts = [int(v) for v in fh.readline().split()[1:]]
        idle = parts[3] + parts[4]
        return sum(parts) - idle, sum(parts)

    try:
        busy0, total0 = sample()
        time.sleep(seconds)
        busy1, total1 = sample()
    except OSError:
        return float("nan")
    return (busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1)


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command, CPU seconds used so far) for every process."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # Fields after the command: state, ppid, ..., utime (12th), stime (13th).
        table[int(entry.name)] = (int(fields[1]), cmd,
                                  (int(fields[11]) + int(fields[12])) / tick)
    return table


def _label(pid: int, cmd: str) -> str:
    if pid == os.getpid():
        return "driver"
    exe = cmd.split(" ")[0]
    for name in ("raylet", "gcs_server"):
        if exe.endswith(name):
            return name
    if "Agent" in exe:  # ray::DashboardAgent, ray::RuntimeEnvAgent
        return "ray_other"
    if exe.startswith("ray::") or "default_worker.py" in cmd:
        return "ray_workers"
    if "loky" in cmd or "joblib" in cmd:
        return "joblib_workers"
    return "ray_other" if "ray" in cmd else "own_other"


def cpu_snapshot() -> dict[str, Any]:
    """CPU seconds used by this process, by each kind of its descendants, and by the machine."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    mine, todo = {}, [os.getpid()]
    while todo:
        pid = todo.pop()
        if pid in table:
            mine[pid] = (_label(pid, table[pid][1]), table[pid][2])
            todo.extend(children.get(pid, []))
    try:
        with open("/proc/stat") as fh:
            parts = [int(v) for v in fh.readline().split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(parts) - parts[3] - parts[4]) / tick
        # Time the hypervisor gave this VM's CPUs to someone else.
        steal = parts[7] / tick if len(parts) > 7 else 0.0
    except OSError:
        busy = steal = float("nan")
    return {"procs": mine, "machine_busy": busy, "steal": steal}


def cpu_accounting(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """Core-seconds each kind of process used between two snapshots.

    ``other_processes`` is work on the machine outside this benchmark's process tree and
    ``steal`` the time the hypervisor ran something else on this VM's CPUs: when either
    is large, the timings of that run were disturbed.
    """
    out: dict[str, float] = {}
    for pid, (label, cpu) in after["procs"].items():
        start = before["procs"].get(pid, (label, 0.0))[1]
        out[label] = out.get(label, 0.0) + max(cpu - start, 0.0)
    own = sum(out.values())
    out["machine_busy"] = after["machine_busy"] - before["machine_busy"]
    out["steal"] = after["steal"] - before["steal"]
    out["other_processes"] = max(out["machine_busy"] - out["steal"] - own, 0.0)
    return {k: round(v, 3) for k, v in sorted(out.items())}


def machine_info(cores: int) -> dict[str, Any]:
    import joblib
    import pandas
    import ray
    import sklearn

    import fleetlearn

    cpu = platform.processor()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "cores": cores,
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "fleetlearn": getattr(fleetlearn, "__version__", "unknown"),
            "ray": ray.__version__,
            "scikit-learn": sklearn.__version__,
            "joblib": joblib.__version__,
            "numpy": np.__version__,
            "pandas": pandas.__version__,
        },
    }


def write_table(path: Path, rows: int, features: int, informative: int, seed: int = 0) -> Path:
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows, n_features=features, n_informative=min(informative, features),
        random_state=seed,
    )
    frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(features)])
    frame["target"] = y
    frame.to_parquet(path, index=False)
    return path


# ---------------------------------------------------------------- the shared work


@dataclass
class Work:
    """Everything a baseline needs to do fleetlearn's fits: data, specs, folds, seeds."""

    X: Any
    y: np.ndarray
    schema: Any
    task: str
    specs: list[Any]
    folds: list[tuple[np.ndarray, np.ndarray]]
    seeds: dict[tuple[str, int], int]
    load_s: float

    def fits(self) -> list[tuple[Any, int]]:
        """(spec, fold) in fleetlearn's submission order: model by model, fold by fold."""
        return [(s, f) for s in self.specs for f in range(len(self.folds))]


def _unique(names: Iterable[str]) -> list[str]:
    """Model names made unique as ``prepare`` does (``knn``, ``knn-2``): copied, not
    imported, since it is private to the training driver."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def load_work(path: Path, models: Sequence[str], folds: int, seed: int = 0) -> Work:
    """Load the table and plan the fits exactly as ``fleetlearn.training.prepare`` does."""
    from dataclasses import replace

    from fleetlearn.catalog import resolve_model
    from fleetlearn.data import load_dataset
    from fleetlearn.training import derive_seed, make_splits, split_seed

    start = time.perf_counter()
    d = load_dataset(path, "target")
    specs = [resolve_model(m, d.task) for m in models]
    specs = [replace(s, name=n) for s, n in zip(specs, _unique(s.name for s in specs), strict=True)]
    y = np.asarray(d.y)
    splits = make_splits(y, d.task, folds, 0.2, split_seed(seed, d.fingerprint))
    seeds = {
        (s.name, f): derive_seed(seed, d.fingerprint, s.name, f"cv{f}")
        for s in specs
        for f in range(folds)
    }
    return Work(d.X, y, d.schema, d.task, specs, splits.folds, seeds,
                time.perf_counter() - start)


def fit_fold(X: Any, y: np.ndarray, tr: np.ndarray, va: np.ndarray, spec: Any, schema: Any,
             seed: int, task: str, limit_threads: bool = True) -> float:
    """Fit one fold and score it as a fleetlearn CV unit does; return the seconds taken."""
    from threadpoolctl import threadpool_limits

    from fleetlearn.evaluation import score_predictions
    from fleetlearn.model import build_pipeline

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # One thread per fit, as in fleetlearn's tasks (the caller may have set it already).
        limits = threadpool_limits(limits=1) if limit_threads else contextlib.nullcontext()
        with limits:
            pipe = build_pipeline(spec, schema, seed)
            pipe.fit(X.iloc[tr], y[tr])
            score_predictions(pipe, X.iloc[va], y[va], task)
    return time.perf_counter() - start


def run_sequential(path: Path, models: Sequence[str], folds: int) -> dict[str, Any]:
    start = time.perf_counter()
    w = load_work(path, models, folds)
    durations = []
    for spec, f in w.fits():
        tr, va = w.folds[f]
        durations.append(fit_fold(w.X, w.y, tr, va, spec, w.schema, w.seeds[(spec.name, f)],
                                  w.task))
    wall = time.perf_counter() - start
    return {"wall_s": wall, "task_s": durations, "load_s": w.load_s,
            "labels": [f"{s.name}/cv{f}" for s, f in w.fits()]}


def run_joblib(path: Path, models: Sequence[str], folds: int, cores: int) -> dict[str, Any]:
    from joblib import Parallel, delayed

    start = time.perf_counter()
    w = load_work(path, models, folds)
    durations = Parallel(n_jobs=cores)(
        delayed(fit_fold)(w.X, w.y, *w.folds[f], spec, w.schema, w.seeds[(spec.name, f)], w.task)
        for spec, f in w.fits()
    )
    wall = time.perf_counter() - start
    return {"wall_s": wall, "task_s": list(durations), "load_s": w.load_s}


# ------------------------------------------------------------------------ fleetlearn


class RegistryTimer:
    """Wraps a Registry's public methods to add up the driver's time in the registry.

    Only the outermost call counts, so a method that calls another is not counted twice.
    """

    def __init__(self, registry: Any) -> None:
        self.seconds = 0.0
        self.calls: dict[str, int] = {}
        self.by_method: dict[str, float] = {}
        self._depth = 0
        for name in dir(registry):
            attr = getattr(registry, name)
            if name.startswith("_") or not callable(attr) or name in ("close",):
                continue
            setattr(registry, name, self._wrap(name, attr))

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    took = time.perf_counter() - start
                    self.seconds += took
                    self.by_method[name] = self.by_method.get(name, 0.0) + took
                    self.calls[name] = self.calls.get(name, 0) + 1

        return timed


def run_fleetlearn(path: Path, models: Sequence[str], folds: int, cores: int, workdir: Path,
                   tag: str, profile: Path | None = None) -> dict[str, Any]:
    from fleetlearn.registry import Registry
    from fleetlearn.training import DatasetConfig, RunConfig, train_run

    folder = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=workdir))
    registry = Registry(f"sqlite:///{folder}/reg.db", artifact_dir=folder / "artifacts")
    timer = RegistryTimer(registry)
    config = RunConfig(datasets=[DatasetConfig(str(path), "target")], models=list(models),
                       folds=folds, curves=False, final_fit=False)
    profiler = cProfile.Profile() if profile is not None else None
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0_epoch = time.time()
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = train_run(config, registry=registry)
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - start
    t1_epoch = time.time()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    in_registry = timer.seconds
    trials = registry.list_trials(result.run_id)
    registry.close()
    units = [(t.model_name, name, u) for t in trials for name, u in sorted(t.units.items())]
    failed = [f"{m}/{n}: {u.error}" for m, n, u in units if u.status != "ok"]
    if failed:
        raise RuntimeError(f"fleetlearn run {result.run_id} had failed units: {failed[:3]}")
    starts = [u.payload["started_at"] for _, _, u in units]
    ends = [u.payload["finished_at"] for _, _, u in units]
    durations = [u.duration_s for _, _, u in units]
    out = {
        "wall_s": wall,
        "task_s": durations,
        "labels": [f"{m}/{n}" for m, n, _ in units],
        "registry_s": in_registry,
        "registry_calls": timer.calls,
        "registry_by_method_s": {k: round(v, 4) for k, v in sorted(timer.by_method.items())},
        "driver_cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
        # Wall = head (load, registry, put, first dispatch) + span of tasks + foot
        # (journal the last results, finish trials, leaderboard).
        "head_s": min(starts) - t0_epoch,
        "span_s": max(ends) - min(starts),
        "foot_s": t1_epoch - max(ends),
        "idle_in_span_core_s": cores * (max(ends) - min(starts)) - sum(durations),
        "timeline": [[s - t0_epoch, e - t0_epoch] for s, e in zip(starts, ends, strict=True)],
    }
    if profiler is not None and profile is not None:
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("cumulative").print_stats("fleetlearn", 40)
        stats.sort_stats("tottime").print_stats(30)
        profile.write_text(stream.getvalue())
    return out


# ------------------------------------------------------------------------- seed layout


def seed_cv_task(bundle: dict[str, Any], spec_dict: dict[str, Any], seed: int) -> float:
    """The seed layout's task: one whole model, its 5-fold CV run inside the task."""
    from sklearn.model_selection import cross_validate
    from threadpoolctl import threadpool_limits

    from fleetlearn.catalog import ModelSpec
    from fleetlearn.evaluation import score_predictions
    from fleetlearn.model import build_pipeline

    start = time.perf_counter()
    spec = ModelSpec.from_dict(spec_dict)
    X, y, schema = bundle["X"], bundle["y"], bundle["schema"]

    def scorer(est: Any, X_val: Any, y_val: Any) -> dict[str, float]:
        # The same ten metrics a fleetlearn CV unit computes.
        return score_predictions(est, X_val, y_val, schema.task)[0]

    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        cross_validate(build_pipeline(spec, schema, seed), X, y, cv=bundle["folds"],
                       scoring=scorer, n_jobs=1, error_score="raise")
    return time.perf_counter() - start


def run_seed_layout(path: Path, models: Sequence[str], folds: int) -> dict[str, Any]:
    import ray

    remote = ray.remote(seed_cv_task)
    start = time.perf_counter()
    w = load_work(path, models, folds)
    bundle = ray.put({"X": w.X, "y": w.y, "schema": w.schema, "folds": w.folds})
    refs = [remote.options(num_cpus=s.n_jobs).remote(bundle, s.to_dict(), w.seeds[(s.name, 0)])
            for s in w.specs]
    durations = ray.get(refs)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "task_s": list(durations),
            "labels": [s.name for s in w.specs]}


# -------------------------------------------------------------------------- warm-up


def warm_up(models: Sequence[str], cores: int, work: Path) -> dict[str, float]:
    """Start and warm the Ray and joblib worker processes before anything is timed.

    Both pools start cold (a process per core that imports scikit-learn and each
    estimator's module on first use); that start-up is reported here, not in the parts.
    """
    path = write_table(work / "warm.parquet", 300, 8, 4)
    start = time.perf_counter()
    run_fleetlearn(path, models, 2, cores, work, "warm")
    ray_s = time.perf_counter() - start
    start = time.perf_counter()
    run_joblib(path, models, 2, cores)
    return {"fleetlearn_ray_workers_s": round(ray_s, 3),
            "joblib_workers_s": round(time.perf_counter() - start, 3)}


# --------------------------------------------------------------------------- helpers


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    return {"walls_s": [round(w, 3) for w in walls], "best_s": round(min(walls), 3),
            "median_s": round(statistics.median(walls), 3)}


def makespan(durations: Sequence[float], cores: int) -> float:
    """Wall time of greedy list scheduling of ``durations`` (in order) on ``cores`` workers."""
    free = [0.0] * cores
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


#: ``--wait-idle``: seconds to wait, before each measurement, for other work to stop.
WAIT_IDLE = {"seconds": 0.0, "waited": 0.0}


def wait_for_idle(limit: float, threshold: float = 0.3) -> float:
    """Wait up to ``limit`` s until the machine keeps fewer than ``threshold`` cores busy."""
    start = time.perf_counter()
    busy = cpu_busy(0.5)
    while busy > threshold and time.perf_counter() - start < limit:
        busy = cpu_busy(2.0)
    WAIT_IDLE["waited"] += time.perf_counter() - start
    return busy


def measure(label: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    busy = wait_for_idle(WAIT_IDLE["seconds"])
    print(f"  {label:<34}", end="", flush=True)
    before = cpu_snapshot()
    out = fn()
    out["cpu_core_s"] = cpu_accounting(before, cpu_snapshot())
    out["busy_cores_before"] = round(busy, 2)
    other = out["cpu_core_s"]["other_processes"] / max(out["wall_s"], 1e-9)
    steal = out["cpu_core_s"]["steal"] / max(out["wall_s"], 1e-9)
    warn = f"   (other processes on the machine: {other:.2f} cores)" if other > 0.1 else ""
    warn += f"   (CPU stolen by the hypervisor: {steal:.2f} cores)" if steal > 0.05 else ""
    print(f"{out['wall_s']:8.2f} s{warn}", flush=True)
    return out


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def strip(run: dict[str, Any], keep_tasks: bool = True) -> dict[str, Any]:
    out = {k: v for k, v in run.items() if k not in ("timeline", "labels", "task_s")}
    if keep_tasks and "task_s" in run:
        out["task_s"] = [round(t, 4) for t in run["task_s"]]
        if "labels" in run:
            out["labels"] = run["labels"]
    for k, v in list(out.items()):
        if isinstance(v, float):
            out[k] = round(v, 4)
    return out


# ---------------------------------------------------------------------------- part a


def part_a(sizes: Sizes, cores: int, work: Path) -> dict[str, Any]:
    path = write_table(work / "a.parquet", sizes.rows_a, sizes.features, sizes.informative)
    n_fits = len(sizes.models_a) * sizes.folds
    print(f"\n(a) {len(sizes.models_a)} models x {sizes.folds} folds on {sizes.rows_a:,} rows x "
          f"{sizes.features} features ({n_fits} fits)")
    runs: dict[str, list[dict[str, Any]]] = {"sequential": [], "joblib": [], "fleetlearn": []}
    for r in range(sizes.repeats):
        # Interleaved, so drift in machine load hits every system alike.
        runs["sequential"].append(measure(f"sequential  #{r + 1}", lambda: run_sequential(
            path, sizes.models_a, sizes.folds)))
        runs["joblib"].append(measure(f"joblib n_jobs={cores} #{r + 1}", lambda: run_joblib(
            path, sizes.models_a, sizes.folds, cores)))
        runs["fleetlearn"].append(measure(f"fleetlearn  #{r + 1}", lambda r=r: run_fleetlearn(
            path, sizes.models_a, sizes.folds, cores, work, f"a{r}")))
    s = {k: summary(v) for k, v in runs.items()}
    fl = runs["fleetlearn"]
    eff = [sum(x["task_s"]) / (x["wall_s"] * cores) for x in fl]
    best_fl = min(fl, key=lambda x: x["wall_s"])
    med = {k: s[k]["median_s"] for k in s}
    best = {k: s[k]["best_s"] for k in s}
    # Fit times of the fastest sequential pass: the single-core cost of each fit.
    seq = min(runs["sequential"], key=lambda x: x["wall_s"])
    fit_s = seq["task_s"]
    longest = max(range(len(fit_s)), key=fit_s.__getitem__)
    lpt = sorted(fit_s, reverse=True)
    ratios = {
        "fleetlearn_vs_sequential": {"median": med["fleetlearn"] / med["sequential"],
                                     "best": best["fleetlearn"] / best["sequential"]},
        "fleetlearn_vs_joblib": {"median": med["fleetlearn"] / med["joblib"],
                                 "best": best["fleetlearn"] / best["joblib"]},
        "efficiency": {"median": statistics.median(eff), "best": max(eff)},
    }
    targets = {"fleetlearn_vs_sequential": 0.60, "fleetlearn_vs_joblib": 1.05, "efficiency": 0.85}
    passed = {
        "fleetlearn_vs_sequential": ratios["fleetlearn_vs_sequential"]["median"] <= 0.60,
        "fleetlearn_vs_joblib": ratios["fleetlearn_vs_joblib"]["median"] <= 1.05,
        "efficiency": ratios["efficiency"]["median"] >= 0.85,
    }
    sched = {
        "sum_of_fits_sequential_s": sum(fit_s),
        "critical_path_s": fit_s[longest],
        "critical_path_fit": seq["labels"][longest],
        "lower_bound_s": max(sum(fit_s) / cores, fit_s[longest]),
        "plan_order_makespan_s": makespan(fit_s, cores),
        "longest_first_makespan_s": makespan(lpt, cores),
        "sum_of_tasks_fleetlearn_median_s": statistics.median(sum(x["task_s"]) for x in fl),
        "sum_of_tasks_joblib_median_s": statistics.median(
            sum(x["task_s"]) for x in runs["joblib"]),
        "speedup_efficiency_median": med["sequential"] / (med["fleetlearn"] * cores),
        "fleetlearn_best_run": {k: round(best_fl[k], 3) for k in
                                ("head_s", "span_s", "foot_s", "idle_in_span_core_s",
                                 "registry_s", "driver_cpu_s")},
    }
    sched = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in sched.items()}
    print(f"  fleetlearn/sequential {ratios['fleetlearn_vs_sequential']['median']:.3f} "
          f"(target <= 0.60) {verdict(passed['fleetlearn_vs_sequential'])}; "
          f"fleetlearn/joblib {ratios['fleetlearn_vs_joblib']['median']:.3f} "
          f"(<= 1.05) {verdict(passed['fleetlearn_vs_joblib'])}; "
          f"efficiency {ratios['efficiency']['median']:.3f} (>= 0.85) "
          f"{verdict(passed['efficiency'])}  [medians]")
    print(f"  critical path {sched['critical_path_s']:.2f} s ({sched['critical_path_fit']}); "
          f"2-core list schedule of the sequential fit times: plan order "
          f"{sched['plan_order_makespan_s']:.1f} s, longest first "
          f"{sched['longest_first_makespan_s']:.1f} s, bound {sched['lower_bound_s']:.1f} s")
    return {
        "rows": sizes.rows_a, "features": sizes.features, "models": sizes.models_a,
        "folds": sizes.folds, "fits": n_fits,
        "systems": s,
        "runs": {k: [strip(x, keep_tasks=(k != "joblib")) for x in v] for k, v in runs.items()},
        "efficiency_per_run": [round(e, 4) for e in eff],
        "ratios": {k: {kk: round(vv, 4) for kk, vv in v.items()} for k, v in ratios.items()},
        "targets": targets,
        "passed": passed,
        "judged_on": "median of the repeats",
        "schedule": sched,
        "timeline_best_fleetlearn": {"labels": best_fl["labels"],
                                     "start_end_s": [[round(a, 3), round(b, 3)]
                                                     for a, b in best_fl["timeline"]]},
    }


# ---------------------------------------------------------------------------- part b


def tiny_work(path: Path, n_models: int, folds: int, sample: int) -> tuple[Work, list[Any]]:
    """The first ``sample`` (model, fold) fits of part (b), loaded as fleetlearn loads them."""
    w = load_work(path, [DUMMY] * min(n_models, max(sample // folds, 1)), folds)
    return w, w.fits()[:sample]


def tiny_fit_score(w: Work, fits: list[Any]) -> float:
    """Seconds per trial of the dummy fit + score done in this process: the trials' compute."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        start = time.perf_counter()
        for spec, f in fits:
            fit_fold(w.X, w.y, *w.folds[f], spec, w.schema, w.seeds[(spec.name, f)], w.task,
                     limit_threads=False)
        return (time.perf_counter() - start) / len(fits)


def tiny_run_unit(w: Work, fits: list[Any]) -> float:
    """Seconds per trial of fleetlearn's task body ``run_unit``, called in this process.

    It adds to the fit what fleetlearn's task does around it: spec decoding,
    ``threadpool_limits``, warning capture, placement info.
    """
    from fleetlearn.evaluation import PRIMARY_METRIC
    from fleetlearn.training import make_splits, run_unit

    bundle = {"X": w.X, "y": w.y, "schema": w.schema,
              "splits": make_splits(w.y, w.task, len(w.folds), 0.2, 0)}
    start = time.perf_counter()
    for spec, f in fits:
        run_unit(bundle, spec.to_dict(), f"cv{f}", w.seeds[(spec.name, f)],
                 PRIMARY_METRIC[w.task])
    return (time.perf_counter() - start) / len(fits)


def part_b(sizes: Sizes, cores: int, work: Path, profile: bool, out: Path) -> dict[str, Any]:
    path = write_table(work / "b.parquet", sizes.rows_b, 10, 5)
    n_models = sizes.trials_b // sizes.folds
    trials = n_models * sizes.folds
    models = [DUMMY] * n_models
    print(f"\n(b) {trials:,} tiny trials: {n_models} x {DUMMY} x {sizes.folds} folds on "
          f"{sizes.rows_b} rows")
    w, fits = tiny_work(path, n_models, sizes.folds, sizes.sample_b)
    runs, compute = [], []
    for r in range(sizes.repeats):
        # The machine's speed drifts: measure the compute just before and just after the run.
        before = tiny_fit_score(w, fits)
        body = tiny_run_unit(w, fits[: max(len(fits) // 2, 1)])
        runs.append(measure(f"fleetlearn  #{r + 1}", lambda r=r: run_fleetlearn(
            path, models, sizes.folds, cores, work, f"b{r}")))
        after = tiny_fit_score(w, fits)
        compute.append({"fit_score_before_s": before, "fit_score_after_s": after,
                        "fit_score_s": (before + after) / 2, "run_unit_s": body,
                        "sample": len(fits)})
        print(f"  {'  in-process, per trial':<34}fit+score {before * 1e3:.1f} ms before, "
              f"{after * 1e3:.1f} ms after; run_unit {body * 1e3:.1f} ms")
    c = statistics.median(x["fit_score_s"] for x in compute)
    body = statistics.median(x["run_unit_s"] for x in compute)
    per = []
    for x, comp in zip(runs, compute, strict=True):
        wall, cr = x["wall_s"], comp["fit_score_s"]
        per.append({
            "wall_per_trial_ms": wall / trials * 1e3,
            "fit_score_ms": cr * 1e3,
            # Conservative: everything beyond perfectly parallel compute is overhead.
            "overhead_per_trial_ms": (wall - trials * cr / cores) / trials * 1e3,
            # The simpler reading: wall per trial minus one trial's compute.
            "overhead_simple_ms": (wall / trials - cr) * 1e3,
            "registry_per_trial_ms": x["registry_s"] / trials * 1e3,
            "driver_cpu_per_trial_ms": x["driver_cpu_s"] / trials * 1e3,
            "task_time_per_trial_ms": sum(x["task_s"]) / trials * 1e3,
            # CPU of the whole run per trial, by process kind (see cpu_accounting).
            "worker_cpu_per_trial_ms": x["cpu_core_s"].get("ray_workers", 0.0) / trials * 1e3,
            "ray_daemons_cpu_per_trial_ms": sum(
                x["cpu_core_s"].get(k, 0.0) for k in ("raylet", "gcs_server", "ray_other")
            ) / trials * 1e3,
            "other_processes_per_trial_ms": x["cpu_core_s"]["other_processes"] / trials * 1e3,
        })
    med = {k: statistics.median(p[k] for p in per) for k in per[0]}
    best = {k: min(p[k] for p in per) for k in per[0]}
    passed = med["overhead_per_trial_ms"] <= 10.0
    print(f"  wall/trial {med['wall_per_trial_ms']:.2f} ms, overhead/trial "
          f"{med['overhead_per_trial_ms']:.2f} ms (target <= 10 ms) {verdict(passed)}; "
          f"registry {med['registry_per_trial_ms']:.2f} ms/trial, driver CPU "
          f"{med['driver_cpu_per_trial_ms']:.2f} ms/trial  [medians]")
    profile_file = None
    if profile:
        profile_file = out / "training_profile_b.txt"
        measure("fleetlearn under cProfile", lambda: run_fleetlearn(
            path, models, sizes.folds, cores, work, "bprof", profile=profile_file))
        print(f"  profile written to {profile_file}")
    best_run = min(runs, key=lambda x: x["wall_s"])
    return {
        "trials": trials, "rows": sizes.rows_b, "model": DUMMY, "folds": sizes.folds,
        "systems": {"fleetlearn": summary(runs)},
        "runs": [strip(x, keep_tasks=False) for x in runs],
        "in_process": {"fit_score_ms": round(c * 1e3, 3), "run_unit_ms": round(body * 1e3, 3),
                       "per_repeat": compute},
        "per_trial_ms": {"median": {k: round(v, 3) for k, v in med.items()},
                         "best": {k: round(v, 3) for k, v in best.items()}},
        "breakdown_best_run_s": {k: round(best_run[k], 3) for k in
                                 ("head_s", "span_s", "foot_s", "idle_in_span_core_s",
                                  "registry_s", "driver_cpu_s")},
        "overhead_formula": "(wall - trials * in-process fit+score time / cores) / trials; "
                            "the in-process time is the mean of a sample measured just before "
                            "and just after each run",
        "target_ms": 10.0,
        "passed": passed,
        "judged_on": "median of the repeats",
        "profile": str(profile_file) if profile_file else None,
    }


# ---------------------------------------------------------------------------- part c


def part_c(sizes: Sizes, cores: int, work: Path) -> dict[str, Any]:
    path = write_table(work / "c.parquet", sizes.rows_c, sizes.features, sizes.informative)
    print(f"\n(c) seed layout vs fleetlearn: {', '.join(sizes.models_c)}; {sizes.folds}-fold CV "
          f"on {sizes.rows_c:,} rows x {sizes.features} features")
    runs: dict[str, list[dict[str, Any]]] = {"seed_layout": [], "fleetlearn": []}
    for r in range(sizes.repeats):
        runs["seed_layout"].append(measure(f"seed layout (task per model) #{r + 1}",
                                           lambda: run_seed_layout(path, sizes.models_c,
                                                                   sizes.folds)))
        runs["fleetlearn"].append(measure(f"fleetlearn (task per fold) #{r + 1}",
                                          lambda r=r: run_fleetlearn(path, sizes.models_c,
                                                                 sizes.folds, cores, work,
                                                                 f"c{r}")))
    s = {k: summary(v) for k, v in runs.items()}
    ratio = {"median": s["fleetlearn"]["median_s"] / s["seed_layout"]["median_s"],
             "best": s["fleetlearn"]["best_s"] / s["seed_layout"]["best_s"]}
    passed = ratio["median"] < 1.0
    longest_seed = statistics.median(max(x["task_s"]) for x in runs["seed_layout"])
    print(f"  fleetlearn/seed layout {ratio['median']:.3f} (target < 1.0) {verdict(passed)}  "
          f"[medians]; the seed layout's longest task (one model's whole CV) "
          f"{longest_seed:.1f} s")
    return {
        "rows": sizes.rows_c, "features": sizes.features, "models": sizes.models_c,
        "folds": sizes.folds,
        "systems": s,
        "runs": {k: [strip(x) for x in v] for k, v in runs.items()},
        "ratio_fleetlearn_vs_seed": {k: round(v, 4) for k, v in ratio.items()},
        "seed_longest_task_median_s": round(longest_seed, 3),
        "target": "fleetlearn wall < seed layout wall (ratio < 1.0)",
        "passed": passed,
        "judged_on": "median of the repeats",
    }


# ------------------------------------------------------------------------------ plot


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [p for p in ("a", "b", "c") if p in results["parts"]]
    fig, axes = plt.subplots(1, len(parts), figsize=(5.2 * len(parts), 4.8), squeeze=False)
    colors = {"sequential": "#9e9e9e", "joblib": "#64b5f6", "fleetlearn": "#ef6c00",
              "seed_layout": "#9e9e9e"}

    def bars(ax: Any, systems: dict[str, Any], names: list[str]) -> None:
        med = [systems[n]["median_s"] for n in names]
        best = [systems[n]["best_s"] for n in names]
        x = np.arange(len(names))
        ax.bar(x, med, color=[colors[n] for n in names], label="median")
        ax.scatter(x, best, color="black", marker="_", s=400, zorder=3, label="best")
        for xi, m in zip(x, med, strict=True):
            ax.text(xi, m * 0.5, f"{m:.1f} s", ha="center", va="center", fontsize=10,
                    color="white", fontweight="bold")
        ax.set_xticks(x, [n.replace("_", " ") for n in names])
        ax.set_ylabel("wall time (s)")
        ax.set_ylim(0, max(med) * 1.35)

    for ax, part in zip(axes[0], parts, strict=True):
        r = results["parts"][part]
        if part == "a":
            bars(ax, r["systems"], ["sequential", "joblib", "fleetlearn"])
            seq, jl = r["systems"]["sequential"]["median_s"], r["systems"]["joblib"]["median_s"]
            ax.axhline(0.60 * seq, color="red", ls="--", lw=1.2,
                       label=f"target 0.60 x sequential = {0.60 * seq:.1f} s")
            ax.axhline(1.05 * jl, color="purple", ls=":", lw=1.5,
                       label=f"target 1.05 x joblib = {1.05 * jl:.1f} s")
            eff = r["ratios"]["efficiency"]["median"]
            ratio_s = r["ratios"]["fleetlearn_vs_sequential"]["median"]
            ratio_j = r["ratios"]["fleetlearn_vs_joblib"]["median"]
            passed = "all pass" if all(r["passed"].values()) else "NOT all pass"
            ax.set_title(f"(a) {len(r['models'])} models x {r['folds']} folds, {r['rows']:,} rows\n"
                         f"fleetlearn/seq {ratio_s:.2f}, /joblib {ratio_j:.2f}, efficiency "
                         f"{eff:.2f}: {passed}", fontsize=10)
            ax.legend(fontsize=8, loc="upper right")
        elif part == "b":
            med = r["per_trial_ms"]["median"]
            compute = med["fit_score_ms"] / results["machine"]["cores"]
            vals = [med["wall_per_trial_ms"], compute, med["overhead_per_trial_ms"],
                    med["registry_per_trial_ms"], med["driver_cpu_per_trial_ms"]]
            labels = ["wall", "fit+score\n/ cores", "overhead\n(wall - that)", "registry\n(driver)",
                      "driver\nCPU"]
            x = np.arange(len(vals))
            ax.bar(x, vals, color=["#9e9e9e", "#c5e1a5", "#ef6c00", "#64b5f6", "#90caf9"])
            for xi, v in zip(x, vals, strict=True):
                ax.text(xi, v, f"{v:.1f}", ha="center", va="bottom", fontsize=9)
            ax.axhline(10.0, color="red", ls="--", lw=1.2, label="target: overhead <= 10 ms")
            ax.set_xticks(x, labels, fontsize=8)
            ax.set_ylabel("milliseconds per trial (medians)")
            ax.set_ylim(0, max(vals) * 1.3)
            ax.set_title(f"(b) {r['trials']:,} tiny trials (dummy model, {r['rows']} rows)\n"
                         f"overhead {med['overhead_per_trial_ms']:.1f} ms/trial: "
                         f"{verdict(r['passed'])}", fontsize=10)
            ax.legend(fontsize=8, loc="upper right")
        else:
            bars(ax, r["systems"], ["seed_layout", "fleetlearn"])
            seed = r["systems"]["seed_layout"]["median_s"]
            ax.axhline(seed, color="red", ls="--", lw=1.2,
                       label=f"target: below the seed layout ({seed:.1f} s)")
            ax.set_title(f"(c) 3 models, {r['folds']}-fold CV, {r['rows']:,} rows\n"
                         f"fleetlearn / seed layout = "
                         f"{r['ratio_fleetlearn_vs_seed']['median']:.2f}: {verdict(r['passed'])}",
                         fontsize=10)
            ax.legend(fontsize=8, loc="upper right")
    m = results["machine"]
    fig.suptitle(f"fleetlearn training benchmark - {m['cores']} cores, ray "
                 f"{m['versions']['ray']}, scikit-learn {m['versions']['scikit-learn']}"
                 f"{' (quick)' if results['quick'] else ''}; bars: median, black tick: best",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for a smoke run (under a minute)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for training.json and training.png (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of each measurement (default: 2, --quick: 1)")
    parser.add_argument("--parts", default="abc", help="which parts to run, e.g. 'ac'")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="CPUs for Ray and joblib (default: all, %(default)s)")
    parser.add_argument("--profile", action="store_true",
                        help="also run part (b) once under cProfile and save the top functions")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each measurement, wait up to SECONDS for the machine to "
                        "go idle (for shared machines; default: do not wait)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (registries)")
    args = parser.parse_args(argv)
    sizes = quick_sizes(args.repeats) if args.quick else Sizes(repeats=args.repeats or 2)
    parts = [p for p in "abc" if p in args.parts]
    if not parts:
        parser.error("--parts must name at least one of a, b, c")

    WAIT_IDLE["seconds"] = args.wait_idle
    work = isolate_environment(args.keep)
    args.out.mkdir(parents=True, exist_ok=True)
    cores = args.cores
    started = time.perf_counter()
    results: dict[str, Any] = {
        "benchmark": "training", "quick": args.quick, "repeats": sizes.repeats,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(cores), "load_avg_start": os.getloadavg(),
        "notes": [
            "Every wall time includes loading the Parquet table; Ray start-up is not included "
            "(ray_start_s).",
            "Baselines run the same pipelines, folds and seeds as fleetlearn, one BLAS/OpenMP "
            "thread per fit (fleetlearn's tasks run under threadpool_limits(n_jobs=1)).",
            "Pass/fail is judged on the median of the repeats; best is reported too.",
        ],
        "parts": {},
    }
    import ray

    results["ray_start_s"] = round(start_ray(cores), 3)
    print(f"fleetlearn training benchmark: {cores} cores, temp {work}; Ray started in "
          f"{results['ray_start_s']:.1f} s (not in any timing)")
    try:
        warm_models = list(dict.fromkeys(
            m.split(":")[0] for m in [*sizes.models_a, *sizes.models_c, DUMMY]))
        results["warm_up_s"] = warm_up(warm_models, cores, work)
        print(f"warm-up (worker processes start, import the models; not timed): Ray "
              f"{results['warm_up_s']['fleetlearn_ray_workers_s']:.1f} s, joblib "
              f"{results['warm_up_s']['joblib_workers_s']:.1f} s")
        if "a" in parts:
            results["parts"]["a"] = part_a(sizes, cores, work)
        if "b" in parts:
            results["parts"]["b"] = part_b(sizes, cores, work, args.profile, args.out)
        if "c" in parts:
            results["parts"]["c"] = part_c(sizes, cores, work)
    finally:
        ray.shutdown()
    results["load_avg_end"] = os.getloadavg()
    results["waited_for_idle_s"] = round(WAIT_IDLE["waited"], 1)
    results["total_s"] = round(time.perf_counter() - started, 1)
    stem = "training_quick" if args.quick else "training"
    json_path, png_path = args.out / f"{stem}.json", args.out / f"{stem}.png"
    json_path.write_text(json.dumps(results, indent=1, default=float) + "\n")
    plot(results, png_path)
    print_table(results)
    print(f"\nwrote {json_path} and {png_path} in {results['total_s']:.0f} s")
    return 0


def print_table(results: dict[str, Any]) -> None:
    rows = []
    p = results["parts"]
    if "a" in p:
        a = p["a"]
        for k in ("sequential", "joblib", "fleetlearn"):
            rows.append((f"(a) {k} wall", f"{a['systems'][k]['best_s']:.2f} s",
                         f"{a['systems'][k]['median_s']:.2f} s", "", ""))
        for k, label, op in (("fleetlearn_vs_sequential", "(a) fleetlearn / sequential", "<="),
                             ("fleetlearn_vs_joblib", "(a) fleetlearn / joblib", "<="),
                             ("efficiency", "(a) parallel efficiency", ">=")):
            rows.append((label, f"{a['ratios'][k]['best']:.3f}", f"{a['ratios'][k]['median']:.3f}",
                         f"{op} {a['targets'][k]}", verdict(a["passed"][k])))
    if "b" in p:
        b = p["b"]
        for k, label in (("wall_per_trial_ms", "(b) wall per trial"),
                         ("overhead_per_trial_ms", "(b) overhead per trial"),
                         ("registry_per_trial_ms", "(b) registry time per trial")):
            rows.append((label, f"{b['per_trial_ms']['best'][k]:.2f} ms",
                         f"{b['per_trial_ms']['median'][k]:.2f} ms",
                         "<= 10 ms" if k == "overhead_per_trial_ms" else "",
                         verdict(b["passed"]) if k == "overhead_per_trial_ms" else ""))
    if "c" in p:
        c = p["c"]
        for k in ("seed_layout", "fleetlearn"):
            rows.append((f"(c) {k} wall", f"{c['systems'][k]['best_s']:.2f} s",
                         f"{c['systems'][k]['median_s']:.2f} s", "", ""))
        rows.append(("(c) fleetlearn / seed layout", f"{c['ratio_fleetlearn_vs_seed']['best']:.3f}",
                     f"{c['ratio_fleetlearn_vs_seed']['median']:.3f}", "< 1.0",
                     verdict(c["passed"])))
    head = ("measurement", "best", "median", "target", "result")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    print()
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
