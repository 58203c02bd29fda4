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

Usage::

    python benchmarks/gui.py                    # 1,000 runs, 200 models, 5 repeats
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
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
    print(f"wrote {args.out / 'gui.json'}; Runs and Models under {TARGET_S:g} s: "
          f"{result['meets_target']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
