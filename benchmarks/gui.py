"""GUI benchmark: time to first render of the Runs and Models pages with a big registry.

Not a test. Builds a registry of ``--runs`` runs (default 1,000) of which ``--models``
(default 200) each registered a model (a fitted ridge pipeline, one artifact shared by
content), serves it with a real ``fleetlearn serve`` process on a loopback port, then
renders each GUI page in a fresh Streamlit session (``AppTest.from_file`` on the page
script: a new browser session's first run) ``--repeats`` times. Writes
``<out>/gui.json`` (default ``benchmarks/results/issue11/``).

What "first render" covers here: the page script from its first line to its last, the
HTTP calls to the server included (each page asks for one page of 50 rows, paged on the
server); not the browser's drawing of the elements, which a Playwright measurement
(a later step of issue 11) adds. Target (issue 11): under 2 s for Runs and Models.

``--soak SECONDS`` adds the memory part: ``fleetlearn ui`` (a process) with the
Monitoring page open in headless Chromium (Playwright, Debian's ``/usr/bin/chromium``),
refreshing every ``--refresh`` seconds (default 1: 720 refreshes in 12 minutes are an
hour at the default 5 s), while the resident memory of the GUI's process tree is
sampled every 5 s. Target (issue 11): after an hour of auto-refresh, at most 10 % above
the memory after the first minute. The soak's figures go to ``<out>/gui_soak.json``.

Each run also draws ``<out>/gui.png``: every page's render times against the 2 s
target and, with ``--soak``, the GUI's memory over time against the +10 % line.

Usage::

    python benchmarks/gui.py                    # 1,000 runs, 200 models, 5 repeats
    python benchmarks/gui.py --repeats 1 --soak 720     # + 720 refreshes of Monitoring
    python benchmarks/gui.py --repeats 1 --soak 3600 --refresh 5   # the issue's hour
    python benchmarks/gui.py --runs 200 --models 50 --repeats 2 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
PAGES = ("overview", "runs", "models", "predict", "monitoring")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_registry(home: Path, runs: int, models: int) -> dict[str, float]:
    """``runs`` runs, the first ``models`` of them with a registered model each."""
    from fleetlearn.catalog import resolve_model
    from fleetlearn.data import dataset_from_frame
    from fleetlearn.model import build_pipeline
    from fleetlearn.registry import Registry

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.uniform(0, 10, 200),
                          "shop": rng.choice(["north", "south"], 200)})
    frame["price"] = 3 * frame["a"] - 0.5 * frame["b"] + rng.normal(0, 0.1, 200)
    ds = dataset_from_frame(frame, "price", name="house")
    pipeline = build_pipeline(resolve_model("ridge", ds.task), ds.schema, 0).fit(ds.X, ds.y)
    reg = Registry(f"sqlite:///{home / 'registry.db'}", artifact_dir=home / "artifacts")
    start = time.perf_counter()
    for i in range(runs):
        run = reg.create_run({"models": ["ridge"]}, seed=i, name=f"bench-{i:04d}")
        d = reg.add_dataset(run.id, fingerprint=ds.fingerprint, name=ds.name,
                            source=ds.source, n_rows=ds.n_rows,
                            n_features=len(ds.schema.columns), task=ds.task,
                            target=ds.schema.target, schema=ds.schema.to_dict())
        if i < models:
            trial = reg.ensure_trial(run.id, d.id, "ridge", {})
            reg.register_model(f"house-{i:04d}-ridge", estimator=pipeline,
                               metrics={"test": {"r2": 0.9 - i * 1e-4},
                                        "primary_metric": "r2"},
                               params={}, input_schema=ds.schema.to_dict(),
                               tags={"dataset": "house", "task": ds.task},
                               run_id=run.id, trial_id=trial.id, dataset_id=d.id)
    reg.close()
    return {"build_s": time.perf_counter() - start}


def serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FLEETLEARN_HOME": str(home),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    proc = subprocess.Popen([sys.executable, "-m", "fleetlearn", "serve", "--port", str(port),
                             "--registry", f"sqlite:///{home / 'registry.db'}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("fleetlearn serve did not become ready within 120 s")


def render(page: str) -> dict[str, Any]:
    """One fresh session's first run of ``page``: seconds, and what it showed."""
    from streamlit.testing.v1 import AppTest

    from fleetlearn.ui import PAGES_DIR

    at = AppTest.from_file(str(PAGES_DIR / f"{page}.py"), default_timeout=120)
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    if at.exception or at.error:
        raise RuntimeError(f"{page}: {[e.value for e in [*at.exception, *at.error]]}")
    return {"seconds": seconds, "tables": [len(f.value) for f in at.dataframe]}


def soak(api_url: str, seconds: float, refresh: float, env_base: dict[str, str]
         ) -> dict[str, Any]:
    """Monitoring open in Chromium for ``seconds``; the GUI tree's RSS over time."""
    import psutil
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = {**env_base, "FLEETLEARN_UI_REFRESH_S": str(refresh)}
    ui = subprocess.Popen([sys.executable, "-m", "fleetlearn", "ui", "--api", api_url,
                           "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    import httpx

    def rss() -> int:
        procs = [psutil.Process(ui.pid), *psutil.Process(ui.pid).children(recursive=True)]
        return sum(p.memory_info().rss for p in procs)

    samples: list[tuple[float, int]] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("fleetlearn ui did not start within 120 s")
            time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/monitoring")
            page.get_by_role("heading", name="Serving").wait_for(timeout=60_000)
            start = time.monotonic()
            while (elapsed := time.monotonic() - start) < seconds:
                samples.append((elapsed, rss()))
                page.wait_for_timeout(5000)
            samples.append((time.monotonic() - start, rss()))
            browser.close()
    finally:
        ui.terminate()
        ui.wait(15)
    first_minute = [m for t, m in samples if t <= 60.0]
    at_minute = first_minute[-1]
    end = samples[-1][1]
    return {"seconds": seconds, "refresh_s": refresh,
            "refreshes": int(seconds / refresh), "rss_after_1_min_mib": at_minute / 2**20,
            "rss_end_mib": end / 2**20, "growth": end / at_minute - 1.0,
            "meets_target": end <= 1.10 * at_minute,
            "samples": [(round(t, 1), round(m / 2**20, 1)) for t, m in samples]}


def plot(pages: dict[str, Any], memory: dict[str, Any] | None, path: Path) -> None:
    """Render times per page (every repeat, median marked) and, with a soak, RSS over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if memory else 1, figsize=(13 if memory else 6.5, 4.4),
                             squeeze=False)
    ax = axes[0][0]
    names = list(pages)
    ax.bar(range(len(names)), [pages[n]["median_s"] for n in names], color="C0", alpha=0.6,
           label="median")
    for k, name in enumerate(names):
        times = pages[name]["all_s"]
        ax.scatter([k] * len(times), times, color="C0", s=14, zorder=3)
    ax.axhline(TARGET_S, color="C3", linestyle="--", label=f"target {TARGET_S:g} s")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("seconds to first render")
    ax.set_title("first render of each page (dots: every repeat)")
    ax.legend(fontsize=8)
    if memory:
        ax = axes[0][1]
        t = [s[0] / 60 for s in memory["samples"]]
        ax.plot(t, [s[1] for s in memory["samples"]], color="C2", label="GUI process tree RSS")
        limit = 1.10 * memory["rss_after_1_min_mib"]
        ax.axhline(limit, color="C3", linestyle="--", label="limit: +10 % of minute 1")
        ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_ylim(0, max(limit, *(s[1] for s in memory["samples"])) * 1.15)  # a breach shows
        ax.set_xlabel("minutes with Monitoring open")
        ax.set_ylabel("MiB")
        ax.set_title(f"memory: {memory['refreshes']} refreshes every {memory['refresh_s']:g} s, "
                     f"{100 * memory['growth']:+.1f} %")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--soak", type=float, default=0.0,
                        help="Seconds of Monitoring open in Chromium (0: skip)")
    parser.add_argument("--refresh", type=float, default=1.0,
                        help="Monitoring's refresh period during --soak")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "issue11")
    args = parser.parse_args(argv)
    if not 0 <= args.models <= args.runs:
        parser.error("--models must be between 0 and --runs")
    with tempfile.TemporaryDirectory(prefix="flgui-") as tmp:
        home = Path(tmp)
        built = build_registry(home, args.runs, args.models)
        print(f"registry: {args.runs} runs, {args.models} models in {built['build_s']:.1f} s",
              file=sys.stderr)
        port = _free_port()
        proc = serve(home, port)
        os.environ["FLEETLEARN_URL"] = f"http://127.0.0.1:{port}"
        os.environ.pop("FLEETLEARN_API_KEY", None)
        try:
            render("overview")  # warm-up: imports (Streamlit, plotly, the report builders)
            pages: dict[str, Any] = {}
            for page in PAGES:
                rounds = [render(page) for _ in range(args.repeats)]
                times = [r["seconds"] for r in rounds]
                pages[page] = {"median_s": statistics.median(times), "max_s": max(times),
                               "all_s": times, "table_rows": rounds[0]["tables"]}
                print(f"{page:>10}: median {pages[page]['median_s']:.3f} s, max "
                      f"{pages[page]['max_s']:.3f} s, tables {rounds[0]['tables']}",
                      file=sys.stderr)
            memory = None
            if args.soak > 0:
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                    p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
                memory = soak(os.environ["FLEETLEARN_URL"], args.soak, args.refresh, env)
                print(f"soak: {memory['refreshes']} refreshes, RSS "
                      f"{memory['rss_after_1_min_mib']:.0f} MiB after 1 min, "
                      f"{memory['rss_end_mib']:.0f} MiB at the end "
                      f"({100 * memory['growth']:+.1f} %)", file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(15)
    result = {"runs": args.runs, "models": args.models, "repeats": args.repeats,
              "target_s": TARGET_S, "pages": pages,
              "meets_target": all(pages[p]["max_s"] < TARGET_S for p in ("runs", "models")),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gui.json").write_text(json.dumps(result, indent=2))
    if memory:
        (args.out / "gui_soak.json").write_text(json.dumps(
            {"memory": memory, "runs": args.runs, "models": args.models,
             "machine": result["machine"]}, indent=2))
    plot(pages, memory, args.out / "gui.png")
    print(f"wrote {args.out / 'gui.json'}; Runs and Models under {TARGET_S:g} s: "
          f"{result['meets_target']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
