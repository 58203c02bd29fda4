"""``--log-format json`` on real processes: every stderr line a JSON object.

- ``fleetlearn train`` on a small generated table (its own embedded Ray): every line
  parses, carries the run's id; progress comes as log records; stdout keeps the table.
- ``fleetlearn serve --access-log`` over real HTTP: concurrent predictions to three
  models, each with its own ``X-Request-ID``; the access line of each carries the id
  the response returned, its status and its model (nothing mixed up); stdout is empty.
- A driver the API's launcher starts inherits the format: its log is JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from model_fixtures import free_port, serving_registry
from process_helpers import fleetlearn_env, stop_tree

from fleetlearn.registry import Registry
from fleetlearn.training import Launcher, RunOptions, dataset_configs

STARTUP_S = 90.0  # imports on a busy CI machine


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("FLEETLEARN_", "RAY_ADDRESS"))}
    return fleetlearn_env({**base, "FLEETLEARN_HOME": str(tmp_path / "home"),
                           "COLUMNS": "200", **extra})


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object (fails on the first that is not)."""
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"stderr line {n} is not JSON: {line!r}")
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= set(record), line
        records.append(record)
    return records


def test_train_in_json_writes_only_json_lines_that_carry_the_run_id(tmp_path: Path) -> None:
    table = tmp_path / "tiny.csv"
    pd.DataFrame({"x1": [float(i % 7) for i in range(60)],
                  "x2": [float((i * 3) % 5) for i in range(60)],
                  "y": [i % 2 for i in range(60)]}).to_csv(table, index=False)
    ray_tmp = tempfile.mkdtemp(prefix="flr-", dir="/tmp")  # Ray's sockets: a short path
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fleetlearn", "train", str(table), "-t", "y",
             "-m", "logistic_regression", "-m", "decision_tree", "--folds", "2",
             "--log-format", "json"],
            env=_env(tmp_path, RAY_TMPDIR=ray_tmp), capture_output=True, text=True,
            timeout=600, cwd=tmp_path)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = Registry(f"sqlite:///{tmp_path / 'home' / 'registry.db'}").list_runs()
    assert len(runs) == 1
    run = runs[0]
    assert run.status == "finished"
    records = _json_lines(done.stderr)
    assert records
    assert all(r.get("run_id") == run.id for r in records), [
        r for r in records if r.get("run_id") != run.id]
    progress = [r for r in records if r["logger"] == "fleetlearn.training.progress"]
    assert [r["event"] for r in progress[:1]] == ["start"]
    assert progress[-1]["event"] == "finish"
    units = [r for r in progress if r["event"] == "unit"]
    assert len(units) == progress[0]["total"] == progress[-1]["done"]
    assert {r["estimator"] for r in units} == {"logistic_regression", "decision_tree"}
    assert all(r["status"] == "ok" for r in units)
    assert sorted(r["done"] for r in units) == list(range(1, len(units) + 1))
    # The command's output stays on stdout, as in text mode.
    assert f"run {run.id} finished" in done.stdout
    assert "logistic_regression" in done.stdout


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (dates as ISO strings, as a client sends them)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _start_serve(tmp_path: Path, folder: Path, port: int) -> tuple[subprocess.Popen, Path,
                                                                   Path]:
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    env = _env(tmp_path, FLEETLEARN_REGISTRY_URL=f"sqlite:///{folder / 'registry.db'}",
               FLEETLEARN_ARTIFACTS=str(folder / "artifacts"))
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetlearn", "serve", "--port", str(port),
             "--log-format", "json", "--access-log"],
            env=env, stdout=stdout, stderr=stderr, cwd=tmp_path)
    deadline = time.monotonic() + STARTUP_S
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        while True:
            assert proc.poll() is None, f"server exited: {err.read_text()}"
            try:
                if http.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"server did not start: {err.read_text()}"
            time.sleep(0.1)
    return proc, out, err


def test_serve_in_json_logs_each_request_with_its_id_status_and_model(tmp_path: Path) -> None:
    folder = tmp_path / "reg"
    folder.mkdir()
    _, models = serving_registry(folder)
    toy = _records(models.datasets["toy"].X.head(3))
    house = _records(models.datasets["house"].X.head(2))
    bodies = {"toy-logreg": toy, "toy-forest": toy, "house-ridge": house}
    port = free_port()
    proc, out, err = _start_serve(tmp_path, folder, port)

    async def requests() -> list[tuple[str, str | None, httpx.Response]]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     timeout=60) as http:
            async def predict(model: str, n: int) -> tuple[str, str | None, httpx.Response]:
                sent = f"req-{model}-{n}"
                answer = await http.post(f"/v1/models/{model}/predict",
                                         json={"records": bodies[model]},
                                         headers={"X-Request-ID": sent})
                return model, sent, answer

            calls = [predict(model, n) for n in range(6) for model in bodies]
            answers = list(await asyncio.gather(*calls))
            # No id sent: the server makes one. A client's text that is no id: replaced.
            plain = await http.post("/v1/models/toy-logreg/predict",
                                    json={"records": toy})
            odd = await http.post("/v1/models/toy-logreg/predict", json={"records": toy},
                                  headers={"X-Request-ID": "not an id\t{}"})
            missing = await http.post("/v1/models/no-such-model/predict",
                                      json={"records": toy},
                                      headers={"X-Request-ID": "req-missing"})
            bad = await http.post("/v1/models/toy-logreg/predict",
                                  json={"records": [{"nope": 1}]},
                                  headers={"X-Request-ID": "req-bad"})
            return [*answers, ("toy-logreg", None, plain), ("toy-logreg", None, odd),
                    ("no-such-model", "req-missing", missing), ("toy-logreg", "req-bad", bad)]

    try:
        answers = asyncio.run(requests())
    finally:
        stop_tree(proc.pid)
    records = _json_lines(err.read_text())
    assert out.read_text() == ""  # a collector reads stdout too: nothing but JSON anywhere
    lines = [r for r in records if r["logger"] == "uvicorn.access"]
    assert {r["path"] for r in lines if r["method"] == "GET"} == {"/healthz"}  # start-up
    access = {r["request_id"]: r for r in lines if r["method"] == "POST"}
    assert len(access) == len(answers)  # one line per request, each with its own id
    for model, sent, answer in answers:
        returned = answer.headers["X-Request-ID"]
        if sent is not None:
            assert returned == sent
        else:
            assert len(returned) == 32  # made by the server (uuid4 hex)
        line = access[returned]
        assert (line["method"], line["status"]) == ("POST", answer.status_code)
        assert line["path"] == f"/v1/models/{model}/predict"
        assert line["duration_ms"] >= 0
        if answer.status_code == 200:
            body = answer.json()
            assert body["model"] == model
            assert len(body["predictions"]) == len(bodies[model])
            assert (line["model"], line["version"]) == (model, body["version"])
    statuses = {sent: a.status_code for _, sent, a in answers if sent}
    assert statuses["req-missing"] == 404
    assert statuses["req-bad"] == 422
    assert sum(a.status_code == 200 for _, _, a in answers) == len(answers) - 2
    # The model cache's own line names the model and the request that loaded it.
    loaded = [r for r in records if r["message"].startswith("loaded ")]
    assert {r["model"] for r in loaded} == set(bodies)
    assert all(r["request_id"] in access for r in loaded)
    assert any(r["logger"] == "uvicorn.error" for r in records)  # uvicorn's own, as JSON


def test_a_launched_driver_inherits_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    """The launcher passes its format on; a driver that fails its data check writes one
    JSON error line, which the launch reports as its error."""
    monkeypatch.setenv("FLEETLEARN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLEETLEARN_REGISTRY_URL", raising=False)
    monkeypatch.delenv("FLEETLEARN_LOG_FORMAT", raising=False)
    table = tmp_path / "t.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 5, "y": [0, 1] * 10}).to_csv(table, index=False)
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}",
                        artifact_dir=tmp_path / "artifacts")
    launcher = Launcher(registry, tmp_path / "runs", log_format="json", retries=0)
    config = RunOptions(datasets=dataset_configs([str(table)], "label", None))
    child = launcher.start(config)
    assert child.proc.wait(timeout=300) == 2
    child.done.wait(30)
    assert "--log-format json" in " ".join(child.proc.args)
    assert (tmp_path / "runs" / f"{child.run_id}.out").exists()  # stdout kept apart
    records = _json_lines(child.log.read_text())
    assert all(r["run_id"] == child.run_id for r in records if "run_id" in r)
    errors = [r for r in records if r["level"] == "ERROR"]
    assert len(errors) == 1
    assert "'label'" in errors[0]["message"]
    pending = launcher.pending(child.run_id)
    assert pending is not None
    assert pending["status"] == "failed"
    assert pending["error"] == errors[0]["message"]
