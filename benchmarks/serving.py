"""Serving benchmark: fleetlearn's server against the ways people serve a model without it.

Not a test. One run, one load generator (wrk, with ``_servers/post.lua`` POSTing JSON),
loopback only, writes ``<out>/serving.json`` and ``<out>/serving.png``.

Models: a logistic regression and a 100-tree random forest trained on scikit-learn's
breast_cancer table (30 numeric features) by ``fleetlearn.train`` into a temporary
registry. Every system serves that same registered artifact (the fitted pipeline,
preprocessing included), so the differences measured are the servers' alone.

Systems (one at a time, each started, warmed, measured and stopped):

- ``inprocess``: ``pipeline.predict(frame)`` in this process - the floor;
- ``bare``: a hand-written FastAPI + uvicorn endpoint (``_servers/bare_fastapi.py``);
- ``mlflow``: ``mlflow models serve --env-manager local``, from its own venv under
  ``~/.cache/fleetlearn-bench/`` (created on first use);
- ``ray_serve``: a minimal Ray Serve deployment, one replica (``_servers/ray_serve_app.py``);
- ``fleetlearn``: ``fleetlearn serve`` (embedded, loopback, no keys);
- ``fleetlearn_keys``: the same with an API key required and sent;
- ``fleetlearn_cluster``: ``fleetlearn serve --ray --replicas N``.

The fleetlearn systems are recorded as "not available yet" when the command is missing.

Cells per system and model: single-row requests at concurrency 1 (p50, p99, req/s) and 16
(req/s, p99), 100-row requests at concurrency 1 and 16; server RSS after the load, and the
CPU core-seconds the server, wrk, other processes and the hypervisor (steal) used in
each cell.

Usage::

    python benchmarks/serving.py                     # full run, about 30 minutes
    python benchmarks/serving.py --quick             # 3 s cells, about 10 minutes
    python benchmarks/serving.py --systems bare,mlflow --duration 5 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
SERVERS = HERE / "_servers"
LUA = SERVERS / "post.lua"
#: Resolved before the benchmark points HOME at its temp folder.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fleetlearn-bench"

#: Benchmark key -> fleetlearn catalog spec (``name:param=value``, see fleetlearn/catalog).
MODELS = {"lr": "logistic_regression", "rf": "random_forest:n_estimators=100"}
MODEL_LABELS = {"lr": "logistic regression", "rf": "random forest (100 trees)"}
DATASET = "breast_cancer"
SYSTEMS = ["inprocess", "bare", "mlflow", "ray_serve", "fleetlearn", "fleetlearn_keys",
           "fleetlearn_cluster"]
SYSTEM_LABELS = {
    "inprocess": "in-process\npredict", "bare": "bare\nFastAPI", "mlflow": "MLflow",
    "ray_serve": "Ray Serve\n(minimal)", "fleetlearn": "fleetlearn", "fleetlearn_keys":
    "fleetlearn\n+key", "fleetlearn_cluster": "fleetlearn\n--ray",
}
COLORS = {"inprocess": "#bdbdbd", "bare": "#64b5f6", "mlflow": "#4db6ac", "ray_serve": "#9575cd",
          "fleetlearn": "#ef6c00", "fleetlearn_keys": "#f4a259", "fleetlearn_cluster": "#c62828"}


@dataclass(frozen=True)
class Cell:
    """One load pattern: wrk connections and threads, and rows per request."""

    name: str
    connections: int
    threads: int
    rows: int


CELLS = [Cell("c1_1row", 1, 1, 1), Cell("c16_1row", 16, 2, 1),
         Cell("c1_100row", 1, 1, 100), Cell("c16_100row", 16, 2, 100)]


@dataclass
class Settings:
    duration: float = 10.0
    warmup: float = 3.0
    repeats: int = 2
    quick: bool = False
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    models: list[str] = field(default_factory=lambda: list(MODELS))
    replicas: int = 1
    wait_idle: float = 0.0
    folds: int = 3


# ----------------------------------------------------------------------------- machine


def proc_stat() -> tuple[float, float]:
    """(busy, steal) core-seconds of the whole machine since boot."""
    try:
        with open("/proc/stat") as fh:
            parts = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return float("nan"), float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    steal = parts[7] if len(parts) > 7 else 0
    return (sum(parts) - parts[3] - parts[4]) / tick, steal / tick


def cpu_busy(seconds: float) -> float:
    """Cores kept busy by the whole machine over ``seconds``."""
    b0, _ = proc_stat()
    t0 = time.perf_counter()
    time.sleep(seconds)
    b1, _ = proc_stat()
    return (b1 - b0) / (time.perf_counter() - t0)


WAIT_IDLE = {"seconds": 0.0, "waited": 0.0}


def wait_for_idle(threshold: float = 0.3) -> float:
    """Wait up to ``--wait-idle`` s until fewer than ``threshold`` cores are busy."""
    start = time.perf_counter()
    busy = cpu_busy(0.5)
    while busy > threshold and time.perf_counter() - start < WAIT_IDLE["seconds"]:
        busy = cpu_busy(2.0)
    WAIT_IDLE["waited"] += time.perf_counter() - start
    return busy


def tree(pid: int) -> list[Any]:
    """psutil processes of ``pid`` and all its descendants (alive ones)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process tree (reaped children included)."""
    import psutil

    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_memory(pid: int) -> dict[str, Any]:
    """RSS and PSS (shared pages split between processes) of a tree, in MiB."""
    import psutil

    rss = pss = 0
    n = 0
    for p in tree(pid):
        with contextlib.suppress(psutil.Error):
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
            n += 1
    return {"rss_mib": round(rss / 2**20, 1), "pss_mib": round(pss / 2**20, 1), "processes": n}


def machine_info() -> dict[str, Any]:
    import pandas
    import sklearn
    import skops

    import fleetlearn

    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    versions = {"fleetlearn": fleetlearn.__version__, "scikit-learn": sklearn.__version__,
                "numpy": np.__version__, "pandas": pandas.__version__,
                "skops": skops.__version__}
    for mod in ("fastapi", "uvicorn", "uvloop", "httptools", "pydantic", "ray", "psutil"):
        try:
            versions[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            versions[mod] = None
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True)
        versions["wrk"] = (out.stdout + out.stderr).split("[")[0].replace("wrk", "").strip()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


# ----------------------------------------------------------------------------- tools


def ensure_wrk() -> str:
    """Path of wrk, installing Debian's package when missing (as root)."""
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False,
                       stdout=subprocess.DEVNULL)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], check=False)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False,
                           stdout=subprocess.DEVNULL)
        wrk = shutil.which("wrk")
        if wrk:
            return wrk
    sys.exit("serving.py needs the wrk load generator: install it with "
             "'sudo apt-get install -y wrk' (Debian/Ubuntu) and run again.")


def _pyproject_deps() -> list[str]:
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def ensure_mlflow_venv() -> dict[str, Any]:
    """A venv with MLflow and an editable fleetlearn, under ~/.cache/fleetlearn-bench/.

    MLflow pins versions that conflict with fleetlearn's dev environment, so it never goes
    into the project's venv. The model libraries (numpy, pandas, scikit-learn, scipy,
    skops) are pinned to this interpreter's versions so the served object behaves the
    same; if MLflow refuses a pin, they are installed unpinned and the JSON says so.
    """
    import pandas
    import scipy
    import sklearn
    import skops

    venv = CACHE / "mlflow-venv"
    python = venv / "bin" / "python"
    pins = [f"numpy=={np.__version__}", f"pandas=={pandas.__version__}",
            f"scikit-learn=={sklearn.__version__}", f"scipy=={scipy.__version__}",
            f"skops=={skops.__version__}"]
    # uvicorn[standard] gives MLflow's uvicorn the same uvloop/httptools as the others.
    wanted = ["mlflow>=3", "uvicorn[standard]", *_pyproject_deps()]
    marker = venv / ".fleetlearn-bench.json"
    spec = {"wanted": wanted, "pins": pins}
    if marker.is_file() and python.exists():
        saved = json.loads(marker.read_text())
        if saved.get("spec") == spec:
            return saved
        # fleetlearn's dependencies or this venv's versions changed: update in place.
        print(f"updating the MLflow venv in {venv} ...", flush=True)
    else:
        print(f"creating the MLflow venv in {venv} (once; about 2-4 minutes) ...", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    pinned = subprocess.run([*pip, *wanted, *pins], capture_output=True, text=True)
    if pinned.returncode != 0:
        print("  MLflow refused the pinned model libraries; installing them unpinned",
              flush=True)
        subprocess.run([*pip, *wanted], check=True)
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    probe = ("import json, mlflow, sklearn, numpy, pandas, skops, fleetlearn, uvicorn\n"
             "print(json.dumps({m.__name__: m.__version__ for m in "
             "(mlflow, sklearn, numpy, pandas, skops, fleetlearn, uvicorn)}))")
    versions = json.loads(subprocess.run([str(python), "-c", probe], check=True,
                                         capture_output=True, text=True).stdout)
    saved = {"spec": spec, "venv": str(venv), "pins_held": pinned.returncode == 0,
             "versions": versions}
    marker.write_text(json.dumps(saved, indent=1))
    return saved


def fleetlearn_cli() -> list[str]:
    exe = Path(sys.executable).with_name("fleetlearn")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "fleetlearn"]


def detect_fleetlearn() -> dict[str, Any]:
    """Which fleetlearn serving commands exist (``fleetlearn serve --help`` exit code)."""
    out = subprocess.run([*fleetlearn_cli(), "serve", "--help"], capture_output=True,
                         text=True, env={**os.environ, "COLUMNS": "200"})
    text = out.stdout + out.stderr
    keys = subprocess.run([*fleetlearn_cli(), "keys", "create", "--help"], capture_output=True,
                          text=True)
    return {"serve": out.returncode == 0, "ray": out.returncode == 0 and "--ray" in text,
            "replicas": "--replicas" in text, "auth_flag": "--auth" in text,
            "keys": keys.returncode == 0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def short_tmp(prefix: str) -> Path:
    """A short temp folder (Ray's unix socket paths must stay under ~100 characters)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


# ----------------------------------------------------------------------------- setup


@dataclass
class Model:
    key: str
    name: str
    pipeline: Any
    artifact: Path
    bodies: dict[tuple[str, int], Path] = field(default_factory=dict)  # (format, rows) -> file
    expected: dict[int, list[str]] = field(default_factory=dict)  # rows -> first body's labels
    mlflow_dir: Path | None = None


def isolate_environment(keep: bool) -> Path:
    """Point HOME, RAY_TMPDIR and FLEETLEARN_HOME at a fresh short temp folder."""
    work = short_tmp("flserve-")
    for var in ("HOME", "RAY_TMPDIR", "FLEETLEARN_HOME"):
        os.environ[var] = str(work)
    for var in ("RAY_ADDRESS", "FLEETLEARN_REGISTRY_URL", "FLEETLEARN_ARTIFACTS"):
        os.environ.pop(var, None)
    if not keep:
        import atexit

        atexit.register(shutil.rmtree, work, ignore_errors=True)
    return work


def train_models(work: Path, settings: Settings) -> tuple[str, dict[str, Model], Any]:
    """Train and register both models with fleetlearn; return the registry URL and them."""
    from sklearn.datasets import load_breast_cancer

    import fleetlearn

    frame = load_breast_cancer(as_frame=True).frame
    csv = work / f"{DATASET}.csv"
    frame.to_csv(csv, index=False)
    url = f"sqlite:///{work / 'registry.db'}"
    for attempt in (1, 2):
        try:
            result = fleetlearn.train(str(csv), target="target",
                                      models=[MODELS[k] for k in settings.models],
                                      folds=settings.folds, curves=False, registry=url)
            break
        except Exception as exc:  # Ray's start-up can time out on a loaded machine
            if attempt == 2 or "timed out" not in str(exc):
                raise
            print(f"  training failed ({exc}); retrying once", flush=True)
    registry = fleetlearn.Registry(url)
    models = {}
    for key in settings.models:
        base = MODELS[key].split(":")[0]
        mv = next(m for m in result.models if m.tags.get("model") == base)
        pipeline = registry.load_model(mv.name, version=mv.version)
        artifact = registry.artifacts.path_for(mv.artifact_digest)
        models[key] = Model(key, mv.name, pipeline, Path(artifact))
    registry.close()
    return url, models, frame.drop(columns="target")


def write_bodies(work: Path, models: dict[str, Model], X: Any) -> None:
    """Request bodies, one JSON per line: 64 different single rows, 8 different 100-row sets.

    ``records`` is fleetlearn's (and the bare server's) format; MLflow reads the same
    rows as ``dataframe_records``.
    """
    n = len(X)
    sets = {1: [X.iloc[[i * 7 % n]] for i in range(64)],
            100: [X.iloc[[(j * 100 + i) % n for i in range(100)]] for j in range(8)]}
    folder = work / "bodies"
    folder.mkdir(exist_ok=True)
    for rows, frames in sets.items():
        for fmt in ("records", "dataframe_records"):
            path = folder / f"{fmt}_{rows}.jsonl"
            with open(path, "w") as fh:
                for f in frames:
                    fh.write(json.dumps({fmt: f.to_dict(orient="records")}) + "\n")
            for m in models.values():
                m.bodies[(fmt, rows)] = path
        for m in models.values():
            m.expected[rows] = [str(v) for v in m.pipeline.predict(frames[0]).tolist()]


def save_mlflow_models(work: Path, models: dict[str, Model], X: Any, venv: Path) -> None:
    sample = work / "mlflow_sample.csv"
    X.iloc[:20].to_csv(sample, index=False)
    for m in models.values():
        m.mlflow_dir = work / f"mlflow-{m.key}"
        subprocess.run([str(venv / "bin" / "python"), str(SERVERS / "mlflow_model.py"),
                        "--artifact", str(m.artifact), "--sample", str(sample),
                        "--out", str(m.mlflow_dir)], check=True, capture_output=True)


# ----------------------------------------------------------------------------- servers


class ServerError(RuntimeError):
    pass


@dataclass
class Server:
    """One server process tree: started in its own session, stopped by PID and group."""

    system: str
    cmd: list[str]
    port: int
    path: str
    body_format: str = "records"
    env: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    grace_s: float = 10.0
    tmp: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self, logdir: Path) -> None:
        self.log = logdir / f"{self.system}-{self.port}.log"
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(self.cmd, stdout=fh, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.env},
                                         start_new_session=True, cwd=logdir)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, body: bytes, key: str | None = None,
             timeout: float = 30.0) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url() + self.path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, body: bytes, timeout: float) -> float:
        """Seconds until a real predict request answers 200."""
        assert self.proc is not None
        start = time.perf_counter()
        last = ""
        while time.perf_counter() - start < timeout:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.system} exited with {self.proc.returncode}:\n"
                                  f"{self.log_tail()}")
            try:
                status, text = self.post(body, self.key, timeout=10.0)
                if status == 200:
                    return time.perf_counter() - start
                last = f"HTTP {status}: {text[:300]!r}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise ServerError(f"{self.system} not ready after {timeout:.0f} s ({last}):\n"
                          f"{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the root (graceful), then the process group, then SIGKILL by PID."""
        if self.proc is None:
            return
        pids = [p.pid for p in tree(self.proc.pid)]
        pgid = self.proc.pid  # start_new_session: the root leads its own group
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(self.grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.time() + 5
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
        for pid in pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def create_key(url: str) -> str:
    """``fleetlearn keys create --role predict`` and the key it prints."""
    out = subprocess.run([*fleetlearn_cli(), "keys", "create", "--role", "predict",
                          "--registry", url], capture_output=True, text=True)
    if out.returncode != 0:
        raise ServerError(f"fleetlearn keys create failed: {out.stderr.strip()[-300:]}")
    found = re.findall(r"flk_[A-Za-z0-9_\-]{20,}", out.stdout) or out.stdout.split()[-1:]
    if not found:
        raise ServerError(f"no key in the output of fleetlearn keys create: {out.stdout!r}")
    return found[0]


def make_server(system: str, model: Model, url: str, features: dict[str, Any],
                mlflow: dict[str, Any] | None, replicas: int) -> Server:
    port = free_port()
    route = f"/v1/models/{model.name}/predict"
    py = sys.executable
    if system == "bare":
        return Server(system, [py, str(SERVERS / "bare_fastapi.py"), "--artifact",
                               str(model.artifact), "--name", model.name, "--port", str(port)],
                      port, route)
    if system == "mlflow":
        assert mlflow is not None
        assert model.mlflow_dir is not None
        exe = str(Path(mlflow["venv"]) / "bin" / "mlflow")
        venv_bin = str(Path(mlflow["venv"]) / "bin")
        return Server(system, [exe, "models", "serve", "-m", str(model.mlflow_dir),
                               "-h", "127.0.0.1", "-p", str(port), "--env-manager", "local",
                               "-w", "1"],
                      port, "/invocations", body_format="dataframe_records",
                      env={"PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")})
    if system == "ray_serve":
        tmp = short_tmp("flrs-")
        return Server(system, [py, str(SERVERS / "ray_serve_app.py"), "--artifact",
                               str(model.artifact), "--name", model.name, "--port", str(port)],
                      port, route, env={"HOME": str(tmp), "RAY_TMPDIR": str(tmp)},
                      grace_s=30.0, tmp=tmp)
    cli = [*fleetlearn_cli(), "serve", "--port", str(port), "--registry", url]
    if system == "fleetlearn":
        extra = ["--auth", "off"] if features["auth_flag"] else []
        return Server(system, cli + extra, port, route, env={"FLEETLEARN_SERVE_AUTH": "off"})
    if system == "fleetlearn_keys":
        extra = ["--auth", "on"] if features["auth_flag"] else []
        return Server(system, cli + extra, port, route, env={"FLEETLEARN_SERVE_AUTH": "on"},
                      key=features["key"])
    if system == "fleetlearn_cluster":
        tmp = short_tmp("flrc-")
        extra = ["--auth", "off"] if features["auth_flag"] else []
        return Server(system, [*cli, "--ray", "--replicas", str(replicas), *extra], port, route,
                      env={"HOME": str(tmp), "RAY_TMPDIR": str(tmp),
                           "FLEETLEARN_SERVE_AUTH": "off"},
                      grace_s=30.0, tmp=tmp)
    raise ValueError(system)


def extract_labels(payload: Any) -> list[str] | None:
    """Predicted labels from a response, whatever the server's response shape."""
    if isinstance(payload, dict):
        for key in ("predictions", "labels", "prediction", "results", "outputs"):
            if key in payload:
                return extract_labels(payload[key])
        return None
    if isinstance(payload, list):
        out = []
        for item in payload:
            if isinstance(item, dict):
                for key in ("label", "prediction", "class", "value"):
                    if key in item:
                        out.append(str(item[key]))
                        break
                else:
                    return None
            else:
                out.append(str(item))
        return out
    return None


def check_answers(server: Server, model: Model) -> dict[str, Any]:
    """Send the first body of each size once; compare labels with in-process predict."""
    out: dict[str, Any] = {}
    for rows in (1, 100):
        body = model.bodies[(server.body_format, rows)].read_text().splitlines()[0].encode()
        status, text = server.post(body, server.key)
        try:
            labels = extract_labels(json.loads(text))
        except ValueError:
            labels = None
        out[f"{rows}row"] = {
            "status": status,
            "matches_inprocess": None if labels is None else labels == model.expected[rows],
        }
        if labels is None or labels != model.expected[rows]:
            out[f"{rows}row"]["response_head"] = text[:300].decode(errors="replace")
    if server.key:
        body = model.bodies[(server.body_format, 1)].read_text().splitlines()[0].encode()
        status, _ = server.post(body, None)
        out["without_key_status"] = status
        out["auth_enforced"] = status in (401, 403)
    return out


# ----------------------------------------------------------------------------- measuring


def run_wrk(wrk: str, server: Server, bodies: Path, cell: Cell, seconds: float) -> dict[str, Any]:
    """One wrk run; returns its JSON summary and its own CPU seconds."""
    env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_PATH": server.path,
           "BENCH_AUTH": server.key or ""}
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([wrk, f"-t{cell.threads}", f"-c{cell.connections}",
                                 f"-d{max(int(round(seconds)), 1)}s", "--timeout", "10s",
                                 "-s", str(LUA), server.url()],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise ServerError(f"wrk failed ({proc.returncode}): {text[-500:]}")
    result = json.loads(line[len("WRKJSON "):])
    result["wrk_cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def measure_cell(wrk: str, server: Server, model: Model, cell: Cell,
                 settings: Settings) -> dict[str, Any]:
    bodies = model.bodies[(server.body_format, cell.rows)]
    if settings.warmup > 0:
        run_wrk(wrk, server, bodies, cell, settings.warmup)
    busy_before = wait_for_idle()
    assert server.proc is not None
    load = os.getloadavg()
    cpu0, (busy0, steal0), t0 = tree_cpu(server.proc.pid), proc_stat(), time.perf_counter()
    own0 = time.process_time()
    r = run_wrk(wrk, server, bodies, cell, settings.duration)
    own = time.process_time() - own0
    cpu1, (busy1, steal1), wall = tree_cpu(server.proc.pid), proc_stat(), \
        time.perf_counter() - t0
    seconds = r["duration_us"] / 1e6
    if r["requests"] == 0:
        raise ServerError(f"{server.system}: no request completed in {seconds:.1f} s "
                          f"({cell.name}); errors {r['errors']}")
    server_cpu = cpu1 - cpu0
    steal = steal1 - steal0
    other = max((busy1 - busy0) - steal - server_cpu - r["wrk_cpu_s"] - own, 0.0)
    lat = r["latency_us"]
    errors = sum(r["errors"].values())
    return {
        "requests": r["requests"],
        "seconds": round(seconds, 3),
        "rps": round(r["requests"] / seconds, 1),
        "rows_per_s": round(r["requests"] * cell.rows / seconds, 1),
        "p50_ms": lat["p50"] / 1e3, "p90_ms": lat["p90"] / 1e3, "p99_ms": lat["p99"] / 1e3,
        "p999_ms": lat["p999"] / 1e3, "mean_ms": round(lat["mean"] / 1e3, 3),
        "max_ms": lat["max"] / 1e3,
        "errors": r["errors"], "error_count": errors,
        "cpu_core_s": {"server": round(server_cpu, 3), "wrk": round(r["wrk_cpu_s"], 3),
                       "other_processes": round(other, 3), "steal": round(steal, 3),
                       "wall_s": round(wall, 3)},
        "server_cpu_ms_per_request": round(server_cpu / max(r["requests"], 1) * 1e3, 3),
        "busy_cores_before": round(busy_before, 2),
        "load_avg": [round(v, 2) for v in load],
    }


def run_inprocess(model: Model, X: Any, settings: Settings) -> dict[str, Any]:
    """Per-call latency of the pipeline in this process: the floor for every server.

    ``predict_frame`` times ``pipeline.predict(frame)`` on a prebuilt DataFrame;
    ``from_json`` adds what every server must also do: parse the JSON body and build the
    frame from records.
    """
    import pandas as pd

    out: dict[str, Any] = {}
    n = len(X)
    for rows in (1, 100):
        frames = [X.iloc[[(j * 37 + i) % n for i in range(rows)]] for j in range(16)]
        bodies = [json.dumps({"records": f.to_dict(orient="records")}) for f in frames]
        variants: dict[str, Callable[[int], Any]] = {
            "predict_frame": lambda j, fr=frames: model.pipeline.predict(fr[j % 16]),
            "from_json": lambda j, bo=bodies: model.pipeline.predict(
                pd.DataFrame(json.loads(bo[j % 16])["records"])),
        }
        for variant, fn in variants.items():
            for j in range(20):  # warm-up
                fn(j)
            wait_for_idle()
            times = []
            cpu0, (busy0, steal0) = time.process_time(), proc_stat()
            start = time.perf_counter()
            j = 0
            while time.perf_counter() - start < settings.duration / 2:
                t = time.perf_counter()
                fn(j)
                times.append(time.perf_counter() - t)
                j += 1
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu0
            busy1, steal1 = proc_stat()
            ms = np.array(times) * 1e3
            out[f"{variant}_{rows}row"] = {
                "calls": len(times), "calls_per_s": round(len(times) / wall, 1),
                "p50_ms": round(float(np.percentile(ms, 50)), 3),
                "p99_ms": round(float(np.percentile(ms, 99)), 3),
                "mean_ms": round(float(ms.mean()), 3),
                "cpu_core_s": {"driver": round(cpu, 3), "steal": round(steal1 - steal0, 3),
                               "other_processes": round(max(busy1 - busy0 - (steal1 - steal0)
                                                            - cpu, 0.0), 3),
                               "wall_s": round(wall, 3)},
            }
    return out


def run_server(system: str, model: Model, url: str, features: dict[str, Any],
               mlflow: dict[str, Any] | None, settings: Settings, wrk: str,
               logdir: Path) -> dict[str, Any]:
    server = make_server(system, model, url, features, mlflow, settings.replicas)
    first = model.bodies[(server.body_format, 1)].read_text().splitlines()[0].encode()
    out: dict[str, Any] = {"command": " ".join(server.cmd), "cells": {}}
    t0 = time.perf_counter()
    server.start(logdir)
    try:
        timeout = 180.0 if system in ("ray_serve", "fleetlearn_cluster") else 90.0
        out["ready_s"] = round(server.wait_ready(first, timeout), 2)
        out["start_to_ready_s"] = round(time.perf_counter() - t0, 2)
        assert server.proc is not None
        out["rss_idle"] = tree_memory(server.proc.pid)
        out["answers"] = check_answers(server, model)
        for cell in CELLS:
            res = measure_cell(wrk, server, model, cell, settings)
            out["cells"][cell.name] = res
            warn = ""
            if res["error_count"]:
                warn += f"  ERRORS {res['errors']}"
            other = res["cpu_core_s"]["other_processes"] / max(res["seconds"], 1e-9)
            steal = res["cpu_core_s"]["steal"] / max(res["seconds"], 1e-9)
            if other > 0.1:
                warn += f"  (other processes: {other:.2f} cores)"
            if steal > 0.05:
                warn += f"  (steal: {steal:.2f} cores)"
            print(f"    {cell.name:<11} {res['rps']:8.1f} req/s  p50 {res['p50_ms']:7.2f} ms  "
                  f"p99 {res['p99_ms']:7.2f} ms  server CPU "
                  f"{res['server_cpu_ms_per_request']:6.2f} ms/req{warn}", flush=True)
        out["rss_after_load"] = tree_memory(server.proc.pid)
    finally:
        server.stop()
    return out


# ----------------------------------------------------------------------------- summary


#: Cores used by other processes (or stolen by the hypervisor) above which a cell is
#: flagged ``disturbed``.
DISTURBED_OTHER, DISTURBED_STEAL = 0.25, 0.1
METRICS = ("rps", "p50_ms", "p99_ms", "p90_ms", "mean_ms", "server_cpu_ms_per_request")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians (and best throughput) over the repeats of one system and model."""
    ok = [r for r in runs if "cells" in r]
    if not ok:
        return {"status": runs[-1].get("status", "failed"), "error": runs[-1].get("error")}
    out: dict[str, Any] = {"status": "measured", "repeats": len(ok), "cells": {}}
    for cell in CELLS:
        vals = [r["cells"][cell.name] for r in ok if cell.name in r["cells"]]
        if not vals:
            continue
        c = {m: round(statistics.median(v[m] for v in vals), 3) for m in METRICS}
        c["rps_best"] = max(v["rps"] for v in vals)
        c["rps_all"] = [v["rps"] for v in vals]
        c["errors"] = sum(v["error_count"] for v in vals)
        c["server_core_s"] = round(statistics.median(v["cpu_core_s"]["server"] for v in vals), 3)
        c["server_cores"] = round(statistics.median(
            v["cpu_core_s"]["server"] / v["seconds"] for v in vals), 3)
        other = [v["cpu_core_s"]["other_processes"] / v["seconds"] for v in vals]
        steal = [v["cpu_core_s"]["steal"] / v["seconds"] for v in vals]
        c["other_cores"] = round(statistics.median(other), 3)
        c["steal_cores"] = round(statistics.median(steal), 3)
        # Other work took a quarter of a core or more (of 2) in some repeat of this cell.
        c["disturbed"] = any(o > DISTURBED_OTHER for o in other) or \
            any(st > DISTURBED_STEAL for st in steal)
        out["cells"][cell.name] = c
    out["rss_after_load_mib"] = statistics.median(r["rss_after_load"]["rss_mib"] for r in ok)
    out["pss_after_load_mib"] = statistics.median(r["rss_after_load"]["pss_mib"] for r in ok)
    out["processes"] = ok[-1]["rss_after_load"]["processes"]
    out["start_to_ready_s"] = statistics.median(r["start_to_ready_s"] for r in ok)
    out["answers"] = ok[-1]["answers"]
    return out


def summarise_inprocess(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r["calls"] for r in runs if "calls" in r]
    if not ok:
        return {"status": runs[-1].get("status", "failed"), "error": runs[-1].get("error")}
    out: dict[str, Any] = {"status": "measured", "repeats": len(ok), "calls": {}}
    for name in ok[0]:
        vals = [r[name] for r in ok]
        out["calls"][name] = {m: round(statistics.median(v[m] for v in vals), 3)
                              for m in ("calls_per_s", "p50_ms", "p99_ms", "mean_ms")}
    return out


def _cell(summary: dict[str, Any], system: str, model: str, cell: str, metric: str) -> Any:
    s = summary.get(system, {}).get(model, {})
    return s.get("cells", {}).get(cell, {}).get(metric) if s.get("status") == "measured" \
        else None


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, computed on medians; ``passed`` is None while pending."""
    def ratio(a: Any, b: Any) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    # "even with validation and auth on": judged on the keyed variant when it ran.
    fl = "fleetlearn_keys" if _cell(summary, "fleetlearn_keys", "lr", "c1_1row", "rps") \
        else "fleetlearn"
    # (name, description, op, target, metric, (system, model, cell) over (system, model, cell))
    rows = [
        ("lr_c1_p50_vs_bare", f"LR single row, concurrency 1: p50 {fl} / bare", "<=", 1.3,
         "p50_ms", (fl, "lr", "c1_1row"), ("bare", "lr", "c1_1row")),
        ("lr_c1_rps_vs_mlflow", f"LR single row, concurrency 1: req/s {fl} / MLflow", ">=", 2.0,
         "rps", (fl, "lr", "c1_1row"), ("mlflow", "lr", "c1_1row")),
        ("rf_c16_rps_vs_bare", "RF-100 single row, concurrency 16: req/s fleetlearn / bare",
         ">=", 3.0, "rps", ("fleetlearn", "rf", "c16_1row"), ("bare", "rf", "c16_1row")),
    ]
    for m in ("lr", "rf"):
        rows.append((f"{m}_cluster_c16_rps_vs_ray_serve",
                     f"{m.upper()} single row, concurrency 16: req/s fleetlearn --ray / minimal "
                     "Ray Serve", ">=", 2.0, "rps", ("fleetlearn_cluster", m, "c16_1row"),
                     ("ray_serve", m, "c16_1row")))
    out = []
    for key, what, op, target, metric, num, den in rows:
        value = ratio(_cell(summary, *num, metric), _cell(summary, *den, metric))
        passed = None if value is None else (value <= target if op == "<=" else value >= target)
        disturbed = any(_cell(summary, *c, "disturbed") for c in (num, den))
        out.append({"name": key, "what": what, "target": f"{op} {target}", "value": value,
                    "passed": passed, "status": "pending" if value is None else
                    ("pass" if passed else "fail"), "inputs_disturbed": disturbed})
    return out


# ----------------------------------------------------------------------------- plot


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    summary = results["summary"]
    models = results["models"]
    systems = [s for s in results["systems"]]
    fig, axes = plt.subplots(len(models), 3, figsize=(17, 4.6 * len(models)), squeeze=False)
    groups = [("req/s, single row", ["c1_1row", "c16_1row"], "rps", "requests / s", False),
              ("req/s, 100-row requests", ["c1_100row", "c16_100row"], "rps", "requests / s",
               False),
              ("latency, single row (p50 bar, p99 tick)", ["c1_1row", "c16_1row"], "p50_ms",
               "milliseconds (log)", True)]
    for row, model in enumerate(models):
        for col, (title, cells, metric, ylabel, log) in enumerate(groups):
            ax = axes[row][col]
            x = np.arange(len(systems))
            width = 0.38
            top = 0.0
            for k, cell in enumerate(cells):
                xs = x + (k - 0.5) * width
                vals, p99s = [], []
                for s in systems:
                    if s == "inprocess":
                        calls = summary.get(s, {}).get(model, {}).get("calls", {})
                        rows = "1row" if "1row" in cell and "100" not in cell else "100row"
                        c = calls.get(f"predict_frame_{rows}") if cell.startswith("c1_") else None
                        v = None if c is None else (c["calls_per_s"] if metric == "rps"
                                                    else c["p50_ms"])
                        p99 = None if c is None else c["p99_ms"]
                    else:
                        v = _cell(summary, s, model, cell, metric)
                        p99 = _cell(summary, s, model, cell, "p99_ms")
                    vals.append(v)
                    p99s.append(p99)
                heights = [v or 0 for v in vals]
                ax.bar(xs, heights, width, color=[COLORS[s] for s in systems],
                       alpha=1.0 if k == 0 else 0.55, edgecolor="black", lw=0.5,
                       hatch=None if k == 0 else "//")
                if log:
                    ax.scatter(xs, [p or np.nan for p in p99s], color="black", marker="_",
                               s=200, zorder=3)
                for xi, v, s in zip(xs, vals, systems, strict=True):
                    if v is None:
                        if s != "inprocess" or cell.startswith("c1_"):
                            ax.text(xi, 0, "n/a", ha="center", va="bottom", fontsize=7,
                                    rotation=90, color="#555")
                        continue
                    ax.text(xi, v, f"{v:.0f}" if v >= 10 else f"{v:.1f}", ha="center",
                            va="bottom", fontsize=7)
                    top = max(top, v)
            ax.set_xticks(x, [SYSTEM_LABELS[s] for s in systems], fontsize=8)
            ax.set_ylabel(ylabel)
            if log:
                ax.set_yscale("log")
            elif top:
                ax.set_ylim(0, top * 1.25)
            ax.set_title(f"{MODEL_LABELS[model]}: {title}", fontsize=10)
            handles = [Patch(facecolor="white", edgecolor="black", label="concurrency 1"),
                       Patch(facecolor="white", edgecolor="black", hatch="//",
                             label="concurrency 16")]
            if log:
                handles.append(Line2D([], [], color="black", marker="_", ls="", ms=12,
                                      label="p99"))
            ax.legend(handles=handles, fontsize=8, loc="upper left")
    m = results["machine"]
    done = [t for t in results["targets"] if t["status"] != "pending"]
    fig.suptitle(f"fleetlearn serving benchmark - {m['cores']} cores, wrk on loopback, "
                 f"{results['settings']['duration_s']:.0f} s cells, medians of "
                 f"{results['settings']['repeats']}{' (quick)' if results['quick'] else ''}; "
                 f"in-process bars: calls/s of predict(frame); targets judged: {len(done)} of "
                 f"{len(results['targets'])}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------ main


def print_table(results: dict[str, Any]) -> None:
    summary = results["summary"]
    head = ("model", "system", "c1 p50", "c1 p99", "c1 req/s", "c16 req/s", "c16 p99",
            "100r c1 p50", "100r c1 req/s", "100r c16 req/s", "RSS MiB", "CPU ms/req c1")
    rows = []
    for model in results["models"]:
        for s in results["systems"]:
            entry = summary.get(s, {}).get(model, {})
            if s == "inprocess" and entry.get("status") == "measured":
                c1, c100 = entry["calls"]["predict_frame_1row"], entry["calls"][
                    "predict_frame_100row"]
                rows.append((model, s, f"{c1['p50_ms']:.2f}", f"{c1['p99_ms']:.2f}",
                             f"{c1['calls_per_s']:.0f}", "", "", f"{c100['p50_ms']:.2f}",
                             f"{c100['calls_per_s']:.0f}", "", "", ""))
                continue
            if entry.get("status") != "measured":
                rows.append((model, s, entry.get("status", "-"), *[""] * 9))
                continue
            c = entry["cells"]

            def g(cell: str, metric: str, fmt: str = "{:.2f}", c: Any = c) -> str:
                return fmt.format(c[cell][metric]) if cell in c else ""

            rows.append((model, s, g("c1_1row", "p50_ms"), g("c1_1row", "p99_ms"),
                         g("c1_1row", "rps", "{:.0f}"), g("c16_1row", "rps", "{:.0f}"),
                         g("c16_1row", "p99_ms"), g("c1_100row", "p50_ms"),
                         g("c1_100row", "rps", "{:.0f}"), g("c16_100row", "rps", "{:.0f}"),
                         f"{entry['rss_after_load_mib']:.0f}",
                         g("c1_1row", "server_cpu_ms_per_request")))
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print()
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))
    print()
    for t in results["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        note = "  (other work on the machine during a cell it uses)" if t.get(
            "inputs_disturbed") else ""
        print(f"  {t['what']:<75} {value:>7}  target {t['target']:<7} "
              f"{t['status'].upper()}{note}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 s cells, 1 s warm-up, one repeat; writes serving_quick.*")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for serving.json and serving.png (default: %(default)s)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help="comma-separated subset of: " + ", ".join(SYSTEMS))
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated subset of: lr, rf")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of load per cell (default 10, --quick 3)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds of discarded load before each cell (default 3, --quick 1)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved repeats of every system (default 2, --quick 1)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="replicas for fleetlearn --ray (default 1, like the minimal Ray "
                        "Serve deployment)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each cell, wait up to SECONDS for the machine to go idle")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder and logs")
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [s for s in systems if s not in SYSTEMS] + [m for m in models if m not in MODELS]
    if bad or not systems or not models:
        parser.error(f"unknown or missing systems/models: {bad}; systems: {', '.join(SYSTEMS)};"
                     f" models: {', '.join(MODELS)}")
    settings = Settings(
        duration=args.duration or (3.0 if args.quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0),
        repeats=args.repeats or (1 if args.quick else 2), quick=args.quick,
        systems=[s for s in SYSTEMS if s in systems], models=[m for m in MODELS if m in models],
        replicas=args.replicas, wait_idle=args.wait_idle,
    )
    WAIT_IDLE["seconds"] = settings.wait_idle
    try:
        import psutil  # noqa: F401
    except ImportError:
        sys.exit("serving.py needs psutil, fastapi, uvicorn and ray[serve]: "
                 "pip install -e '.[bench]'")
    wrk = ensure_wrk()
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    work = isolate_environment(args.keep)
    logdir = work / "logs"
    logdir.mkdir()

    results: dict[str, Any] = {
        "benchmark": "serving", "quick": settings.quick,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(), "load_avg_start": os.getloadavg(),
        "settings": {"duration_s": settings.duration, "warmup_s": settings.warmup,
                     "repeats": settings.repeats, "cluster_replicas": settings.replicas,
                     "cells": [c.__dict__ for c in CELLS], "folds": settings.folds},
        "systems": settings.systems, "models": settings.models,
        "notes": [
            "Every server serves the artifact fleetlearn registered (the fitted pipeline, "
            "preprocessing included); answers are checked against in-process predict once "
            "per start (answers.*.matches_inprocess).",
            "wrk is a closed-loop generator: each connection sends its next request when the "
            "previous answer arrives, so latency under saturation is queueing time and req/s "
            "is the server's capacity on the cores wrk leaves it.",
            "wrk runs on the same 2 cores as the server: its own CPU is in "
            "cpu_core_s.wrk. Other work on the machine is in cpu_core_s.other_processes and "
            "hypervisor steal in cpu_core_s.steal; compare systems within one run.",
            "Repeats are interleaved (every system once, then again); values are medians.",
            "In-process: predict_frame_* times pipeline.predict(prebuilt frame); from_json_* "
            "adds json.loads and pd.DataFrame(records), which every server must also do.",
        ],
        "summary": {},
        "runs": [],
    }
    features = {"serve": False, "ray": False, "replicas": False, "auth_flag": False,
                "keys": False}
    if any(s.startswith("fleetlearn") for s in settings.systems):
        features = detect_fleetlearn()
    # The key itself stays out of the JSON: only whether one was created.
    results["fleetlearn_commands"] = {k: v for k, v in features.items() if k != "key"}
    mlflow: dict[str, Any] | None = None

    print(f"fleetlearn serving benchmark: temp {work}; training "
          f"{', '.join(MODELS[m] for m in settings.models)} on {DATASET} ...", flush=True)
    t = time.perf_counter()
    url, model_objs, X = train_models(work, settings)
    write_bodies(work, model_objs, X)
    results["train_s"] = round(time.perf_counter() - t, 1)
    results["registered"] = {k: m.name for k, m in model_objs.items()}
    if "mlflow" in settings.systems:
        try:
            mlflow = ensure_mlflow_venv()
            save_mlflow_models(work, model_objs, X, Path(mlflow["venv"]))
            results["mlflow_env"] = {k: v for k, v in mlflow.items() if k != "spec"}
        except (subprocess.CalledProcessError, OSError) as exc:
            err = getattr(exc, "stderr", None) or str(exc)
            mlflow = None
            results["mlflow_env"] = {"error": str(err)[-500:]}
            print(f"MLflow unavailable: {str(err)[-300:]}", flush=True)
    if features["keys"] and "fleetlearn_keys" in settings.systems:
        try:
            features["key"] = create_key(url)
            results["fleetlearn_commands"]["key_created"] = True
        except ServerError as exc:
            results["fleetlearn_commands"]["key_error"] = str(exc)
    if features["serve"] and not features["auth_flag"]:
        results["notes"].append(
            "fleetlearn serve has no --auth flag: keys were switched with "
            "FLEETLEARN_SERVE_AUTH=on/off; answers.auth_enforced tells whether a request "
            "without the key was refused.")

    def unavailable(system: str) -> str | None:
        if system in ("fleetlearn", "fleetlearn_keys") and not features["serve"]:
            return "not available yet: 'fleetlearn serve --help' failed"
        if system == "fleetlearn_keys" and not features.get("key"):
            return "not available yet: 'fleetlearn keys create' failed or is missing"
        if system == "fleetlearn_cluster" and not (features["serve"] and features["ray"]):
            return "not available yet: 'fleetlearn serve --ray' is missing"
        if system == "mlflow" and mlflow is None:
            return "failed: the MLflow venv could not be set up (see mlflow_env)"
        return None

    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        s: {m: [] for m in settings.models} for s in settings.systems}
    for rep in range(settings.repeats):
        print(f"\nrepeat {rep + 1}/{settings.repeats}", flush=True)
        for system in settings.systems:
            for key in settings.models:
                model = model_objs[key]
                why = unavailable(system)
                if why:
                    if rep == 0:
                        print(f"  {system:<19} {key}: {why}", flush=True)
                    runs[system][key].append({"status": why})
                    continue
                print(f"  {system:<19} {key}:", flush=True)
                try:
                    if system == "inprocess":
                        r = {"calls": run_inprocess(model, X, settings)}
                        for name, v in r["calls"].items():
                            print(f"    {name:<21} {v['calls_per_s']:8.1f} calls/s  p50 "
                                  f"{v['p50_ms']:7.3f} ms  p99 {v['p99_ms']:7.3f} ms",
                                  flush=True)
                    else:
                        r = run_server(system, model, url, features, mlflow, settings, wrk,
                                       logdir)
                except ServerError as exc:
                    print(f"    failed: {exc}", flush=True)
                    r = {"status": "failed", "error": str(exc)[-1500:]}
                r["repeat"] = rep
                runs[system][key].append(r)

    for system in settings.systems:
        results["summary"][system] = {}
        for key in settings.models:
            rs = runs[system][key]
            if system == "inprocess":
                results["summary"][system][key] = summarise_inprocess(rs)
            else:
                results["summary"][system][key] = summarise(rs)
    results["targets"] = targets(results["summary"])
    results["runs"] = runs
    results["load_avg_end"] = os.getloadavg()
    results["waited_for_idle_s"] = round(WAIT_IDLE["waited"], 1)
    results["total_s"] = round(time.perf_counter() - started, 1)
    stem = "serving_quick" if settings.quick else "serving"
    json_path, png_path = args.out / f"{stem}.json", args.out / f"{stem}.png"
    json_path.write_text(json.dumps(results, indent=1, default=float) + "\n")
    plot(results, png_path)
    print_table(results)
    print(f"\nwrote {json_path} and {png_path} in {results['total_s']:.0f} s")
    if args.keep:
        print(f"kept {work} (server logs in {logdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
