"""Fault 5: the PostgreSQL registry restarted while fleetlearn serves and trains.

Each test runs its own PostgreSQL (``tests/pg_fixtures.py``; the shared one on 5432 is
never touched), stops it for real and checks that the fault happened (the port refuses
connections) and that nothing was lost:

* serving: a real ``fleetlearn serve`` process under steady predict requests keeps
  answering for the models it has in memory (0 failures), writes (alias, key, run)
  answer 503 ``RegistryUnavailableError`` naming the registry and saying to retry,
  and succeed once it is back; the statistics flushes that failed meanwhile are
  retried and count every request that was answered;
* training: a run whose journal writes hit the outage retries them and finishes with
  every unit journaled, each unit fitted exactly once, each model registered once.

Both write their figures through tests/fault_figures.py (``postgres/serving`` with the
predict load before, during and after the outage; ``postgres/training`` without one:
that run is ``fleetlearn.train`` in the test's process and nothing is served).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_figures import AFTER_S, DOWN_S, INTERVAL_S, NA, load_figures, record
from fault_load import PredictLoad
from gated_models import open_all, open_ticket, started, wait_until
from model_fixtures import fit, free_port, mixed_frame, records_of, register
from pg_fixtures import OwnPostgres, pg_binaries

from fleetlearn.data import dataset_from_frame
from fleetlearn.registry import Registry

pytestmark = pytest.mark.skipif(pg_binaries() is not None, reason=str(pg_binaries()))

#: Long enough to outlast the server's key cache (5 s), its registry check
#: (refresh_s below) and several statistics flushes (stats_flush_s below); longer when
#: benchmarks/faults.py asks (--down-s).
OUTAGE_S = max(8.0, DOWN_S)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres.create()
    try:
        yield pg
    finally:
        pg.destroy()


# ------------------------------------------------------------------------ serving


def _serve(tmp_path: Path, pg: OwnPostgres, artifacts: Path) -> tuple[subprocess.Popen[bytes],
                                                                        str, Path]:
    port = free_port()
    log = tmp_path / "serve.log"
    data = tmp_path / "data"
    data.mkdir()
    mixed_frame().to_csv(data / "toy.csv", index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FLEETLEARN_"))}
    env.update(FLEETLEARN_HOME=str(tmp_path / "home"),
               FLEETLEARN_SERVE_ARTIFACT_DIR=str(artifacts),
               FLEETLEARN_SERVE_DATA_DIR=str(data),
               FLEETLEARN_SERVE_STATS_FLUSH_S="1", FLEETLEARN_SERVE_STATS_WINDOW_S="2",
               FLEETLEARN_SERVE_REFRESH_S="0.5", PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetlearn", "serve", "--port", str(port), "--registry",
             pg.url, "--auth", "on"], stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, f"fleetlearn serve exited:\n{log.read_text()}"
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, "fleetlearn serve to be ready", 90)
    return proc, url, log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _unavailable(r: httpx.Response, pg: OwnPostgres) -> None:
    """A write refused because the registry is down: 503, ErrorBody, says what to do,
    and not where the database is (its host and port are for the server's log)."""
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "RegistryUnavailableError", body
    assert "registry is unavailable" in body["detail"], body
    assert str(pg.port) not in body["detail"], body
    assert "retry" in body["detail"].lower(), body
    assert r.headers.get("Retry-After"), r.headers


def test_postgres_restart_during_serving_loses_no_prediction_and_no_statistics(
        tmp_path: Path, own_postgres: OwnPostgres) -> None:
    pg = own_postgres
    artifacts = tmp_path / "artifacts"
    reg = Registry(pg.url, artifact_dir=artifacts)
    toy = dataset_from_frame(mixed_frame(), "label", name="toy")
    register(reg, "toy-logreg", fit(toy, "logistic_regression"), toy)
    register(reg, "toy-tree", fit(toy, "decision_tree"), toy)
    _, predict_key = reg.create_api_key("load", "predict")
    _, admin_key = reg.create_api_key("ops", "admin")
    rows = records_of(mixed_frame(3, seed=7), drop=("label",))
    proc, url, log = _serve(tmp_path, pg, artifacts)
    admin = httpx.Client(base_url=url, timeout=30,
                         headers={"Authorization": f"Bearer {admin_key}"})
    try:
        # Both keys and the model are used once before the outage: that is what the
        # server has in memory ("cached models"); toy-tree never is.
        assert admin.get("/v1/models").status_code == 200
        t_load = time.monotonic()
        with PredictLoad(f"{url}/v1/models/toy-logreg/predict", {"records": rows},
                         interval_s=INTERVAL_S,
                         headers={"Authorization": f"Bearer {predict_key}"}) as load:
            wait_until(lambda: load.ok >= 20, "predictions before the outage", 60)
            t_stop = time.monotonic()
            pg.stop("fast")
            outage_start = time.monotonic()
            assert pg.refuses(), "PostgreSQL still accepts connections after pg_ctl stop"
            ok_at_stop = load.ok

            _unavailable(admin.put("/v1/models/toy-logreg/aliases/champion",
                                   json={"version": 1}), pg)
            t_detected = time.monotonic()  # a write refused: 503, the registry named
            _unavailable(admin.post("/v1/keys", json={"name": "new", "role": "read"}), pg)
            _unavailable(admin.post("/v1/runs", json={
                "datasets": ["toy.csv"], "target": "label", "models": ["logistic_regression"],
                "folds": 2}), pg)
            # A model the server never loaded needs the registry: 503 too, never a 500.
            r = admin.post("/v1/models/toy-tree/predict", json={"records": rows})
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "RegistryUnavailableError"

            time.sleep(max(OUTAGE_S - (time.monotonic() - outage_start), 0))
            assert pg.refuses()
            during = load.ok - ok_at_stop
            pg.start()

            # Writes go through again once the registry is back (the pool's pre-ping
            # replaces the connections the restart cut).
            def alias_set() -> bool:
                return admin.put("/v1/models/toy-logreg/aliases/champion",
                                 json={"version": 1}).status_code == 200

            wait_until(alias_set, "the alias write to succeed after the restart", 60)
            t_ready = time.monotonic()
            r = admin.post("/v1/keys", json={"name": "new", "role": "read"})
            assert r.status_code == 201, r.text
            wait_until(lambda: load.ok >= ok_at_stop + during + 20,
                       "predictions after the outage", 60)
            time.sleep(max(0.0, AFTER_S - (time.monotonic() - t_ready)))
        predictions = load_figures(load, t_load, t_stop, t_ready, time.monotonic())
        record(tmp_path, case="postgres/serving",
               fault="the PostgreSQL registry stopped (pg_ctl stop -m fast) and restarted "
                     "while fleetlearn serve answers predictions",
               seconds_to_detect=t_detected - t_stop, seconds_until_ready=t_ready - t_stop,
               load=predictions, trials_lost=NA,
               models_lost=2 - len({m.name for m in reg.list_models()}),
               units_trained_twice=NA, down_s=round(OUTAGE_S, 2))
        assert load.failures == [], load.failures[:5]
        assert during > 0, "no prediction was answered while PostgreSQL was down"

        # Every answered prediction is in the stored statistics, those of the outage
        # included: the failed flushes kept their windows and wrote them afterwards.
        def stored() -> int:
            return sum(w["requests"] for w in reg.inference_stats(model="toy-logreg"))

        wait_until(lambda: stored() == load.sent,
                   f"stored statistics to count all {load.sent} predictions", 60)
    finally:
        admin.close()
        _stop(proc)
        reg.close()
    server_log = log.read_text()
    assert "could not write inference statistics" in server_log, (
        "no statistics flush failed: the outage did not reach the flush")
    assert " 500 " not in server_log


# ----------------------------------------------------------------------- training


def test_postgres_restart_during_training_journals_every_unit_once(
        tmp_path: Path, own_postgres: OwnPostgres, ray_session: None,
        caplog: pytest.LogCaptureFixture) -> None:
    import fleetlearn

    pg = own_postgres
    gate = tmp_path / "gate"
    data = tmp_path / "toy.csv"
    mixed_frame().to_csv(data, index=False)
    spec = f"gated_models.GatedClassifier:gate={gate}"
    models, folds = 3, 2
    fits = models * (folds + 1)  # the folds and the final fit of each model
    reg = Registry(pg.url, artifact_dir=tmp_path / "artifacts")
    outcome: dict[str, Any] = {}

    def train() -> None:
        try:
            outcome["result"] = fleetlearn.train(data, target="label", models=[spec] * models,
                                                 folds=folds, curves=False, registry=reg)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            outcome["error"] = exc

    caplog.set_level(logging.WARNING, logger="fleetlearn.training._execute")
    driver = threading.Thread(target=train, daemon=True)
    driver.start()
    try:
        wait_until(lambda: len(started(gate)) >= 2, "two fits to start", 120)
        open_ticket(gate, 0)

        def journaled() -> int:
            return sum(len(t.units) for r in reg.list_runs() for t in reg.list_trials(r.id))

        wait_until(lambda: journaled() >= 1, "a first unit to be journaled", 60)
        t_stop = time.monotonic()
        pg.stop("fast")
        assert pg.refuses(), "PostgreSQL still accepts connections after pg_ctl stop"
        open_all(gate)  # the other fits finish while the registry is down

        def retried() -> bool:
            return any("registry unavailable, retrying" in r.getMessage()
                       for r in caplog.records)

        wait_until(retried, "the driver to retry a journal write", 120)
        t_detected = time.monotonic()
        wait_until(lambda: len(started(gate)) >= fits, "every fit to start", 120)
        time.sleep(2)  # results land in the driver while the registry is still down
        assert pg.refuses()
        pg.start()
        t_ready = time.monotonic()
        driver.join(240)
        t_finished = time.monotonic()
        assert not driver.is_alive(), "the run did not finish after the registry came back"
    finally:
        open_all(gate)
        if pg.refuses():
            pg.start()
    assert "error" not in outcome, repr(outcome.get("error"))
    result = outcome["result"]
    run = reg.get_run(result.run_id)
    assert run.status == "finished"
    trials = reg.list_trials(run.id)
    units = [(t.model_name, name, u.status) for t in trials for name, u in t.units.items()]
    assert len(units) == fits, units
    assert all(status == "ok" for _, _, status in units), units
    # Exactly once: every fit took one ticket, so no unit was trained twice ...
    assert len(started(gate)) == fits
    # ... and every model was registered once, though its registration may have hit the
    # outage and been retried.
    versions = {m.name: m.version for m in reg.list_models(run_id=run.id)}
    record(tmp_path, case="postgres/training",
           fault="the PostgreSQL registry stopped and restarted while a run journals units",
           seconds_to_detect=t_detected - t_stop, seconds_until_ready=t_ready - t_stop,
           no_load="fleetlearn.train in the test's process; nothing is served",
           trials_lost=models - sum(t.status == "ok" for t in trials),
           models_lost=models - len(versions), units_trained_twice=len(started(gate)) - fits,
           seconds_until_run_finished=round(t_finished - t_stop, 2))
    assert sorted(versions) == sorted(f"toy-{t.model_name}" for t in trials)
    assert set(versions.values()) == {1}
    reg.close()
