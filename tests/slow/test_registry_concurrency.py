"""The registry under real concurrent processes, on SQLite and on PostgreSQL.

PostgreSQL: ``$FLEETLEARN_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) must be reachable; each test
creates its own database and drops it afterwards. If it is not reachable the tests
fail, unless ``FLEETLEARN_SKIP_POSTGRES=1`` says to skip them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pg_fixtures import shared_postgres_databases

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

N_WORKERS = 4
N_CALLS = 25
MODEL = "shared-model"
# A worker that fails aborts the barrier, so the others fail too instead of waiting
# forever, and the parent reports the first error rather than a bare queue timeout.
BARRIER_TIMEOUT_S = 120
SPAWN = mp.get_context("spawn")  # fresh interpreters: no inherited connections or locks


@pytest.fixture
def new_postgres_url() -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty PostgreSQL databases, all dropped after the test."""
    with shared_postgres_databases() as create:
        yield create


@pytest.fixture
def postgres_url(new_postgres_url: Callable[[], str]) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return new_postgres_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def new_registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """A factory of URLs of fresh (never opened) registries on one backend."""
    if request.param == "postgresql":
        return request.getfixturevalue("new_postgres_url")
    return lambda: f"sqlite:///{tmp_path / uuid.uuid4().hex[:8]}.db"


@pytest.fixture
def registry_url(new_registry_url: Callable[[], str]) -> str:
    return new_registry_url()


# ------------------------------------------------------------ worker processes
# Top-level functions: spawned children import this module to find them.


def _open_worker(urls: list[str], artifact_dir: str, barrier, results) -> None:
    from fleetlearn.registry import Registry

    try:
        for url in urls:
            barrier.wait(BARRIER_TIMEOUT_S)  # every process opens it at the same moment
            with Registry(url, artifact_dir=artifact_dir) as reg:
                reg.create_run({"opened_by": os.getpid()}, seed=0)
        results.put(("ok", os.getpid()))
    except BaseException as exc:  # report, do not hang the parent nor the others
        barrier.abort()
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _register_worker(
    url: str, artifact_dir: str, worker: int, trial_id: int, artifacts, barrier, results
) -> None:
    from fleetlearn.registry import Registry

    try:
        with Registry(url, artifact_dir=artifact_dir) as reg:
            barrier.wait(BARRIER_TIMEOUT_S)
            versions = []
            for call in range(N_CALLS):
                reg.record_unit(trial_id, f"cv{call}", "ok", {"worker": worker, "call": call})
                mv = reg.register_model(
                    MODEL,
                    # Alternate a per-worker artifact and one shared by all workers:
                    # concurrent writes of the same content-addressed file must be safe.
                    artifact=artifacts[0] if call % 2 == 0 else artifacts[worker + 1],
                    trial_id=trial_id,
                    metrics={"call": call},
                    params={},
                    input_schema={},
                    tags={"worker": worker},
                    journal_unit={
                        "trial_id": trial_id,
                        "unit": f"final{call}",
                        "status": "ok",
                        "payload": {"version_seen": call},
                    },
                )
                versions.append(mv.version)
        results.put(("ok", versions))
    except BaseException as exc:
        barrier.abort()
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _run_processes(target, args_for) -> list:
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(*args_for(i), results)) for i in range(N_WORKERS)]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0, f"worker {p.pid} exited with {p.exitcode}"
    finally:
        # A worker still alive here would hang pytest's exit (multiprocessing joins
        # its children at exit): stop the ones this test started.
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
    errors = [detail for status, detail in outcomes if status != "ok"]
    assert not errors, errors
    return [detail for _, detail in outcomes]


# ---------------------------------------------------------------------- tests


def test_processes_opening_a_fresh_registry_at_once_all_succeed(
    new_registry_url: Callable[[], str], tmp_path: Path
) -> None:
    from fleetlearn.registry import Registry

    # Several fresh registries in turn: more chances to hit a race, for one spawn cost.
    urls = [new_registry_url() for _ in range(3)]
    barrier = SPAWN.Barrier(N_WORKERS)
    pids = _run_processes(_open_worker, lambda i: (urls, str(tmp_path / "artifacts"), barrier))
    assert len(set(pids)) == N_WORKERS
    for url in urls:
        with Registry(url, artifact_dir=tmp_path / "artifacts") as reg:
            assert len(reg.list_runs()) == N_WORKERS


def test_concurrent_registrations_never_lose_or_reuse_a_version(
    registry_url: str, tmp_path: Path
) -> None:
    from sklearn.dummy import DummyClassifier

    from fleetlearn.registry import Registry, dump_estimator

    artifact_dir = tmp_path / "artifacts"
    n_classes = N_WORKERS + 1
    X, y = [[float(i)] for i in range(n_classes)], list(range(n_classes))
    artifacts = [
        dump_estimator(DummyClassifier(strategy="constant", constant=i).fit(X, y))
        for i in range(n_classes)
    ]
    with Registry(registry_url, artifact_dir=artifact_dir) as reg:
        run = reg.create_run({}, seed=0)
        ds = reg.add_dataset(
            run.id,
            fingerprint="fp",
            name="toy",
            source=None,
            n_rows=2,
            n_features=1,
            task="classification",
            target="y",
            schema={},
        )
        trials = [reg.ensure_trial(run.id, ds.id, f"m{i}", {}).id for i in range(N_WORKERS)]

    barrier = SPAWN.Barrier(N_WORKERS)
    per_worker = _run_processes(
        _register_worker,
        lambda i: (registry_url, str(artifact_dir), i, trials[i], artifacts, barrier),
    )

    total = N_WORKERS * N_CALLS
    seen = sorted(v for versions in per_worker for v in versions)
    assert seen == list(range(1, total + 1))  # what each process was told
    for versions in per_worker:
        assert versions == sorted(versions)  # a process's own versions only increase

    with Registry(registry_url, artifact_dir=artifact_dir) as reg:
        stored = reg.list_models(name=MODEL)
        assert [mv.version for mv in stored] == list(range(1, total + 1))
        assert sorted(mv.id for mv in stored) == sorted({mv.id for mv in stored})
        by_worker = {w: sum(mv.tags["worker"] == w for mv in stored) for w in range(N_WORKERS)}
        assert by_worker == dict.fromkeys(range(N_WORKERS), N_CALLS)

        expected_units = {
            (ds.id, f"m{i}", f"{kind}{call}")
            for i in range(N_WORKERS)
            for call in range(N_CALLS)
            for kind in ("cv", "final")
        }
        assert reg.completed_units(run.id) == expected_units
        for mv in stored:  # every artifact is present and intact
            assert reg.artifacts.load_bytes(mv.artifact_digest)
        assert reg.load_model(MODEL).predict([[0]])[0] in range(N_WORKERS + 1)


def test_postgres_schema_matches_orm_and_api_works(postgres_url: str, tmp_path: Path) -> None:
    """The PostgreSQL code paths (JSONB, ON CONFLICT upserts, advisory locks)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from fleetlearn.errors import NotFoundError
    from fleetlearn.registry import Registry
    from fleetlearn.registry._schema import Base

    with Registry(postgres_url, artifact_dir=tmp_path / "a") as reg:
        with reg._engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        run = reg.create_run({"nested": {"a": [1, 2]}}, seed=1, name="pg")
        assert reg.get_run(run.id[:4]).config == {"nested": {"a": [1, 2]}}
        ds = reg.add_dataset(
            run.id,
            fingerprint="fp",
            name="iris",
            source="x.csv",
            n_rows=4,
            n_features=1,
            task="classification",
            target="y",
            schema={"y": "int"},
        )
        assert (
            reg.add_dataset(
                run.id,
                fingerprint="fp",
                name="renamed",
                source="x.csv",
                n_rows=4,
                n_features=1,
                task="classification",
                target="y",
                schema={"y": "int"},
            ).id
            == ds.id
        )
        assert [d.name for d in reg.run_datasets(run.id)] == ["renamed"]
        trial = reg.ensure_trial(run.id, ds.id, "logreg", {"C": 1})
        assert reg.ensure_trial(run.id, ds.id, "logreg", {}).id == trial.id
        reg.record_units(
            [
                {"trial_id": trial.id, "unit": "cv0", "status": "failed", "payload": {}},
                {"trial_id": trial.id, "unit": "cv0", "status": "ok", "payload": {"s": np.nan}},
                {"trial_id": trial.id, "unit": "cv1", "status": "ok", "payload": {}},
            ]
        )
        reg.record_unit(trial.id, "cv1", "ok", {"s": 0.5})
        (listed,) = reg.list_trials(run.id)
        assert listed.units["cv0"].payload == {"s": None}
        assert listed.units["cv1"].payload == {"s": 0.5}

        model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        stamp = reg.version_stamp()
        for _ in range(2):
            reg.register_model("pg-model", estimator=model, metrics={}, params={}, input_schema={})
        assert reg.version_stamp() != stamp
        reg.set_alias("pg-model", "champion", 1)
        reg.set_alias("pg-model", "champion", 2)
        assert reg.aliases("pg-model") == {"champion": 2}
        assert reg.load_model("pg-model", alias="champion").predict([[3.0]])[0] == 1
        with pytest.raises(NotFoundError, match="9999"):
            reg.register_model(
                "pg-model",
                estimator=model,
                metrics={},
                params={},
                input_schema={},
                journal_unit={"trial_id": 9999, "unit": "final", "status": "ok", "payload": {}},
            )
        reg.delete_model_version("pg-model", 2)
        assert reg.aliases("pg-model") == {}
        assert [mv.version for mv in reg.list_models(name="pg-model")] == [1]
        assert reg.get_model_version("pg-model").created_at.tzinfo is not None
