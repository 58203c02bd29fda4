"""A unit whose worker process dies is run again by Ray, and the journal says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fleetlearn
from fleetlearn.errors import RegistryUnavailableError
from fleetlearn.insights import run_detail
from fleetlearn.registry import Registry
from fleetlearn.training import _execute

pytestmark = pytest.mark.usefixtures("ray_session")


def _units(run_id: str) -> dict[tuple[str, str], dict]:
    return {(t.model_name, name): {"status": u.status, "error": u.error, **u.payload}
            for t in Registry().list_trials(run_id) for name, u in t.units.items()}


def test_a_unit_whose_worker_died_ran_again_and_says_so(
        iris: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLEARN_TRUSTED_TYPES", "fault_models.CrashOnceClassifier")
    marker = tmp_path / "crashed"
    models = [f"fault_models.CrashOnceClassifier:marker={marker}", "decision_tree"]
    result = fleetlearn.train(iris, target="target", models=models, folds=3, seed=3,
                              curves=False)
    # The fault happened: one fit ended its worker process (the marker holds its pid).
    crashed_pid = json.loads(marker.read_text())["pid"]
    units = _units(result.run_id)
    # Nothing lost: every unit journaled once, all ok, the run finished.
    assert len(units) == 2 * (3 + 1)
    assert {u["status"] for u in units.values()} == {"ok"}
    assert Registry().get_run(result.run_id).status == "finished"
    assert result.failed == []
    # The unit that lost its worker took two attempts and names the lost one.
    retried = {k: u for k, u in units.items() if u["attempts"] > 1}
    assert len(retried) == 1, {k: u["attempts"] for k, u in units.items()}
    (model, _unit), unit = next(iter(retried.items()))
    assert model == "CrashOnceClassifier"
    assert unit["attempts"] == 2
    assert int(unit["pid"]) != crashed_pid  # finished by another worker process
    [lost] = unit["failed_attempts"]
    assert lost["attempt"] == 1
    assert lost["node"] == unit["node"]  # one node here: the retry ran where it could
    assert lost["node_ip"] == unit["node_ip"]
    assert lost["error"].startswith("WORKER_DIED")
    assert all(u["attempts"] == 1 and "failed_attempts" not in u
               for k, u in units.items() if k not in retried)
    assert result.retried == [{"dataset": "iris", "model": model, "unit": _unit,
                               "attempts": 2, "node_ip": unit["node_ip"]}]
    # Where users look: the run's detail counts the unit that ran again.
    detail = run_detail(Registry(), result.run_id)
    assert [(r.model, r.attempts) for r in detail.progress.retried] == [(model, 2)]

    # Running again cost nothing but time: the same run without the crash scores the same.
    again = fleetlearn.train(iris, target="target", models=models, folds=3, seed=3,
                             curves=False)
    assert max(u["attempts"] for u in _units(again.run_id).values()) == 1
    scores = {k: u.get("scores") or u.get("test_scores") for k, u in units.items()}
    assert scores == {k: u.get("scores") or u.get("test_scores")
                      for k, u in _units(again.run_id).items()}


def test_a_unit_that_loses_every_attempt_fails_alone_with_each_attempt_named(
        iris: Path, home: Path) -> None:
    result = fleetlearn.train(iris, target="target", folds=2, seed=3, curves=False,
                              final_fit=False, max_retries=1,
                              models=["fault_models.CrashOnceClassifier:always=true",
                                      "decision_tree"])
    units = _units(result.run_id)
    assert Registry().get_run(result.run_id).status == "finished"
    assert {k: u["status"] for k, u in units.items()} == {
        ("CrashOnceClassifier", "cv0"): "failed", ("CrashOnceClassifier", "cv1"): "failed",
        ("decision_tree", "cv0"): "ok", ("decision_tree", "cv1"): "ok"}
    for (model, _), unit in units.items():
        if model != "CrashOnceClassifier":
            continue
        assert unit["error"].startswith("WorkerCrashedError"), unit["error"]
        assert unit["attempts"] == 2  # the first and max_retries=1 more
        assert [a["attempt"] for a in unit["failed_attempts"]] == [1, 2]
        assert all(a["node"] and a["error"].startswith("WORKER_DIED")
                   for a in unit["failed_attempts"]), unit["failed_attempts"]
    retried = run_detail(Registry(), result.run_id).progress.retried
    assert [(r.unit, r.status, r.attempts) for r in retried] == [("cv0", "failed", 2),
                                                                ("cv1", "failed", 2)]


def test_a_registration_whose_answer_was_lost_is_not_registered_twice(
        iris: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_execute, "JOURNAL_RETRY_S", (0.0, 0.0, 0.0))

    class LosesFirstAnswer(Registry):
        """Commits the first registration, then loses the answer (a dropped connection)."""

        lost: list[int] = []

        def register_model(self, name: str, **kwargs: Any) -> Any:
            version = super().register_model(name, **kwargs)
            if not self.lost:
                self.lost.append(version.id)
                raise RegistryUnavailableError("connection lost after the commit (test)")
            return version

    reg = LosesFirstAnswer(f"sqlite:///{tmp_path / 'r.db'}", artifact_dir=tmp_path / "a")
    result = fleetlearn.train(iris, target="target", registry=reg, folds=2, seed=1,
                              models=["decision_tree", "logistic_regression"], curves=False)
    assert len(reg.lost) == 1  # the fault happened: one answer was lost
    versions = reg.list_models(run_id=result.run_id)
    # Nothing registered twice: one version 1 per model, the lost one among them.
    assert sorted((v.name, v.version) for v in versions) == [
        ("iris-decision_tree", 1), ("iris-logistic_regression", 1)]
    assert reg.lost[0] in {v.id for v in versions}
    assert sorted(m.id for m in result.models) == sorted(v.id for v in versions)
    assert reg.get_run(result.run_id).status == "finished"
