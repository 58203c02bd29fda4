"""A registry that is down for now: the error, its HTTP answer, the driver's retries.

The real outage (a PostgreSQL server stopped under load) is
``tests/slow/test_fault_postgres.py``; these are the pieces it relies on, quick.
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from fleetlearn.api.errors import retry_after_of, status_of
from fleetlearn.errors import RegistryError, RegistryUnavailableError
from fleetlearn.registry import Registry
from fleetlearn.registry._engine import connect_error, is_transient
from fleetlearn.training import _execute


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_postgres_that_refuses_connections_is_unavailable_and_says_retry() -> None:
    pytest.importorskip("psycopg")
    port = _closed_port()
    with pytest.raises(RegistryUnavailableError) as info:
        Registry(f"postgresql+psycopg://fl@127.0.0.1:{port}/fl")
    text = str(info.value)
    assert f"127.0.0.1:{port}" in text
    assert "retry" in text.lower()
    assert isinstance(info.value, RegistryError)  # every RegistryError handler still applies


def test_sqlite_lock_is_transient_but_a_broken_file_is_not(tmp_path: Path) -> None:
    locked = sqlite3.OperationalError("database is locked")
    broken = sqlite3.OperationalError("unable to open database file")
    assert is_transient(locked, "sqlite:///x.db")
    assert not is_transient(broken, "sqlite:///x.db")
    assert isinstance(connect_error("sqlite:///x.db", locked), RegistryUnavailableError)
    assert type(connect_error("sqlite:///x.db", broken)) is RegistryError


def test_unavailable_registry_is_a_503_with_retry_after() -> None:
    exc = RegistryUnavailableError("Cannot use registry postgresql://db/fl: down. Retry.")
    assert status_of(exc) == 503
    assert retry_after_of(exc) == {"Retry-After": "5"}
    assert retry_after_of(RegistryError("bad URL")) is None


def test_driver_retries_a_journal_write_until_the_registry_is_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_execute, "JOURNAL_RETRY_S", (0.0, 0.0, 0.0))
    calls: list[list[int]] = []

    def record(batch: list[int]) -> str:
        calls.append(batch)
        if len(calls) < 3:
            raise RegistryUnavailableError("down")
        return "written"

    assert _execute._retrying(record, [1, 2]) == "written"
    assert calls == [[1, 2]] * 3  # the same batch each time: nothing lost, nothing added


def test_driver_gives_up_after_its_bounded_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_execute, "JOURNAL_RETRY_S", (0.0, 0.0))
    calls = []

    def record() -> None:
        calls.append(1)
        raise RegistryUnavailableError("down")

    with pytest.raises(RegistryUnavailableError):
        _execute._retrying(record)
    assert len(calls) == 3  # one attempt per pause, and a last one


def test_other_registry_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_execute, "JOURNAL_RETRY_S", (0.0, 0.0))
    calls = []

    def record() -> None:
        calls.append(1)
        raise RegistryError("refused the change")

    with pytest.raises(RegistryError):
        _execute._retrying(record)
    assert len(calls) == 1


def test_trials_open_and_close_in_batches(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}", artifact_dir=tmp_path / "a")
    run = reg.create_run({}, seed=0)
    ds = reg.add_dataset(run.id, fingerprint="f", name="d", source="s", n_rows=1,
                         n_features=1, task="classification", target="y", schema={})
    first = reg.ensure_trials(run.id, ds.id, [("b", {"x": 1}), ("a", {"x": 2})])
    assert [t.model_name for t in first] == ["b", "a"]
    again = reg.ensure_trials(run.id, ds.id, [("a", {"x": 9}), ("c", {})])
    assert again[0].id == first[1].id
    assert again[0].spec == {"x": 2}  # kept, not replaced
    reg.set_trial_statuses({first[0].id: ("ok", None), first[1].id: ("failed", "boom")})
    got = {t.model_name: (t.status, t.error) for t in reg.list_trials(run.id)}
    assert got == {"b": ("ok", None), "a": ("failed", "boom"), "c": ("pending", None)}
    with pytest.raises(RegistryError, match="No trial with id 999"):
        reg.set_trial_statuses({999: ("ok", None)})
    reg.close()
