"""tests/fault_figures.py writes what benchmarks/faults.py reads: one entry per test,
windows from the load, "n/a" where a figure does not apply; the benchmark makes one row
per entry with that test's own outcome."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from fault_figures import NA, load_figures, record
from fault_load import PredictLoad, Request

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "faults.py"


def _faults_benchmark():
    spec = importlib.util.spec_from_file_location("faults_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load() -> PredictLoad:
    """A load's record (never started): 4 answers before the fault at 10 ms, 2 failures
    and 1 slow answer during it, 3 answers after."""
    load = PredictLoad("http://127.0.0.1:9/never", {"records": []})
    load.requests += [Request(t, True, 0.010, 200) for t in (0.0, 1.0, 2.0, 3.0)]
    load.requests += [Request(10.0, False, 2.0, None, "ConnectError: refused"),
                      Request(11.0, False, 0.5, 503, "503 registry down"),
                      Request(12.0, True, 0.400, 200)]
    load.requests += [Request(t, True, 0.020, 200) for t in (20.0, 21.0, 22.0)]
    return load


def test_load_figures_split_the_requests_at_the_fault_and_at_ready() -> None:
    figures = load_figures(_load(), start=0.0, fault=5.0, ready=15.0, end=30.0)
    assert figures["requests"]["sent"] == 10
    assert figures["requests"]["failed"] == 2
    assert (figures["before"]["sent"], figures["before"]["failed"]) == (4, 0)
    assert figures["before"]["p50_ms"] == pytest.approx(10.0)
    assert (figures["during"]["sent"], figures["during"]["ok"]) == (3, 1)
    assert figures["during"]["p99_ms"] == pytest.approx(400.0)  # only the answer counts
    assert figures["during"]["errors"] == ["503 registry down", "ConnectError: refused"]
    assert (figures["after"]["sent"], figures["after"]["failed"]) == (3, 0)
    assert figures["after"]["p50_ms"] == pytest.approx(20.0)


def test_record_writes_tmp_path_without_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETLEARN_FAULT_FIGURES", raising=False)
    record(tmp_path, case="driver/manual", fault="killed", seconds_to_detect=1.234,
           seconds_until_ready=NA, trials_lost=0, models_lost=0, units_trained_twice=0,
           no_load="nothing served", extra_figure=7)
    (entry,) = json.loads((tmp_path / "fault_driver_manual.json").read_text())
    assert entry["case"] == "driver/manual"
    assert entry["test"].endswith("test_fault_figures.py::"
                                  "test_record_writes_tmp_path_without_the_variable")
    assert entry["seconds_to_detect"] == 1.23
    assert entry["seconds_until_ready"] == NA
    assert [entry[k] for k in ("requests", "before", "during", "after")] == [NA] * 4
    assert entry["no_load"] == "nothing served"
    assert entry["extra_figure"] == 7


def test_record_needs_a_load_or_a_reason(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="give load or no_load"):
        record(tmp_path, case="x", fault="x", seconds_to_detect=1, seconds_until_ready=1,
               trials_lost=0, models_lost=0, units_trained_twice=0)


def test_two_tests_append_and_the_benchmark_makes_a_row_each(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "figures.json"
    monkeypatch.setenv("FLEETLEARN_FAULT_FIGURES", str(out))
    common = {"fault": "restarted", "trials_lost": NA, "models_lost": 0,
              "units_trained_twice": NA}
    for case, function in (("pg/serving", "test_serving"), ("pg/training", "test_training")):
        monkeypatch.setenv("PYTEST_CURRENT_TEST", f"tests/slow/test_pg.py::{function} (call)")
        if case == "pg/serving":
            record(tmp_path, case=case, seconds_to_detect=0.3, seconds_until_ready=10.6,
                   load=load_figures(_load(), 0.0, 5.0, 15.0, 30.0), **common)
        else:
            record(tmp_path, case=case, seconds_to_detect=0.5, seconds_until_ready=4.3,
                   no_load="in-process training", **common)
    entries = json.loads(out.read_text())
    assert [e["case"] for e in entries] == ["pg/serving", "pg/training"]

    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.slow.test_pg" name="test_serving"/>'
        '<testcase classname="tests.slow.test_pg" name="test_training">'
        '<failure message="assert 1 == 0"/></testcase>'
        '<testcase classname="tests.slow.test_pg" name="test_crashed_early">'
        '<error message="fixture"/></testcase>'
        '</testsuite></testsuites>')
    faults = _faults_benchmark()
    records = faults.records_of("postgres", "tests/slow/test_pg.py", entries,
                                faults.test_outcomes(junit), "failed")
    assert [(r["case"], r["outcome"]) for r in records] == [
        ("pg/serving", "passed"), ("pg/training", "failed"),
        ("postgres (test_crashed_early)", "failed")]
    lines = faults.table(records).splitlines()
    serving = next(line for line in lines if line.startswith("pg/serving")).split()
    assert serving[:5] == ["pg/serving", "passed", "10", "8", "2"]
    assert serving[5:8] == ["10.0/10.0", "400.0/400.0", "20.0/20.0"]
    training = next(line for line in lines if line.startswith("pg/training")).split()
    assert training[2:8] == ["n/a"] * 6
    assert training[8:] == ["0.5", "4.3", "n/a", "0", "n/a"]
    faults.plot(records, tmp_path / "faults.png")
    assert (tmp_path / "faults.png").stat().st_size > 0
