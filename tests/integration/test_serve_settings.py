"""``fleetlearn serve`` as a real process: which source each setting came from.

One server, three sources at once, read back over HTTP from ``/v1/info``: an option
typed with the default's value (``--max-rows 10000``) beats ``FLEETLEARN_SERVE_MAX_ROWS``;
``FLEETLEARN_SERVE_MAX_MODELS`` and ``FLEETLEARN_SERVE_PORT`` (no option) beat their
defaults; ``max_cache_mb`` (neither) keeps its default. No Ray is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from model_fixtures import free_port

STARTUP_S = 90.0  # imports on a busy CI machine


def test_an_option_beats_the_environment_beats_the_default(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLEETLEARN_", "RAY_ADDRESS"))}
    env.update(FLEETLEARN_HOME=str(tmp_path / "home"), COLUMNS="200",
               FLEETLEARN_SERVE_MAX_ROWS="5", FLEETLEARN_SERVE_MAX_MODELS="7",
               FLEETLEARN_SERVE_PORT=str(port))
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetlearn", "serve", "--max-rows", "10000",
             "--log-level", "warning"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_S
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            while True:
                assert proc.poll() is None, f"server exited: {log.read_text()}"
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"server did not start: {log.read_text()}"
                time.sleep(0.1)
            info = http.get("/v1/info").json()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert info["max_rows"] == 10_000                   # option > environment
    assert info["cache"]["max_models"] == 7             # environment > default
    assert info["cache"]["max_bytes"] == 2048 * 2**20   # default
    assert f"127.0.0.1:{port}" in log.read_text()       # the port it says it listens on
