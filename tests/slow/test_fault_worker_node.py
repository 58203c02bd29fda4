"""Fault test 1: a worker node killed (SIGKILL, every process of it) in the middle of a run.

A real process cluster (head + 2 workers, one CPU each) and ``fleetlearn train
--address`` as a user starts it. Every fit waits at a gate (``fault_models``), so when
the test kills a worker node, a unit is running on it for sure, not "probably". Then:
Ray saw the node die, the unit that ran on it ran again on another node (the journal
says how often and where), nothing was lost or trained twice, and the leaderboard is
the undisturbed run's, to the last digit.

Figures (tests/fault_figures.py): seconds until Ray reported the node dead, seconds
until every unit lost with it had started again on a surviving node (the gate holds the
other nodes' units until the death is seen, so this includes waiting for a free CPU),
trials and models lost, units trained twice, both runs' wall times. No predict load:
this fault is in training and the test serves nothing; a serving process beside the run
would not use the cluster, so its requests could not show the fault
(test_fault_serving.py kills a node under predict load).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
from fault_figures import record
from fault_runs import board, finished, fold_scores, journal, registry, start_train, write_table
from gated_models import open_all, started, wait_until

FOLDS = 3


def models(gate: Path) -> list[str]:
    """Two seeded forests behind ``gate`` (their scores depend on each unit's seed)."""
    spec = f"fault_models.GatedForestClassifier:gate={gate}"
    return [f"{spec},n_estimators=40", f"{spec},n_estimators=20,max_features=log2"]


def test_a_worker_node_killed_mid_run_costs_nothing_but_time(
        process_cluster: Callable, tmp_path: Path) -> None:
    cluster = process_cluster(workers=2, cpus_per_node=1)
    home = tmp_path / "driver" / "home"
    table = write_table(tmp_path / "driver" / "data" / "table.csv")
    n_units = 2 * (FOLDS + 1)

    # The undisturbed run: same table, models, folds and seed, on the same cluster.
    calm_gate = tmp_path / "calm-gate"
    open_all(calm_gate)
    calm_start = time.monotonic()
    calm = finished(start_train(cluster.env, home, table, models(calm_gate), folds=FOLDS,
                                address=cluster.address, log=tmp_path / "calm.log"),
                    tmp_path / "calm.log")
    calm_wall_s = time.monotonic() - calm_start
    calm_units = journal(home, calm["run_id"])
    assert len(calm_units) == n_units
    assert max(u["attempts"] for u in calm_units.values()) == 1

    # The disturbed run: every fit waits at the gate, so every node holds a running unit.
    gate = tmp_path / "gate"
    log = tmp_path / "fault.log"
    fault_start = time.monotonic()
    driver = start_train(cluster.env, home, table, models(gate), folds=FOLDS,
                         address=cluster.address, log=log)
    tickets = wait_until(lambda: len(started(gate)) >= 3 and started(gate),
                         "a unit running on each of the 3 nodes", timeout_s=240)
    assert driver.poll() is None
    victim = next(t["node_ip"] for t in tickets.values() if t["node_ip"] in cluster.worker_ips)
    victim_node = cluster.node(victim)
    running_there = [t["pid"] for t in tickets.values() if t["node_ip"] == victim]
    lost_tasks = {t["task"] for t in tickets.values() if t["node_ip"] == victim}
    assert running_there
    assert all(psutil.pid_exists(p) for p in running_there)

    killed_at, killed_at_wall = time.monotonic(), time.time()
    assert cluster.kill_node(victim, signal.SIGKILL) > 0
    # The fault happened: the unit's worker process is gone with its node.
    wait_until(lambda: not any(psutil.pid_exists(p) for p in running_there),
               "the victim's worker processes to be gone", timeout_s=30)
    # Ray saw the node die (fast health checks on the head: about 1.5 s; margin for a
    # busy machine).
    view = cluster.wait_dead(victim, timeout=60)
    detected_s = time.monotonic() - killed_at
    print(f"Ray reported {victim} dead {detected_s:.1f} s after the kill")
    assert victim_node.node_id not in cluster.alive_node_ids()
    assert victim_node.node_id in {n.node_id for n in view.dead}
    open_all(gate)
    result = finished(driver, log)
    fault_wall_s = time.monotonic() - fault_start

    # Nothing lost: every trial, every unit once, every unit ok, the run finished.
    units = journal(home, result["run_id"])
    reg = registry(home)
    try:
        assert reg.get_run(result["run_id"]).status == "finished"
        trials = reg.list_trials(result["run_id"])
        versions = reg.list_models(run_id=result["run_id"])
    finally:
        reg.close()
    assert sorted(t.model_name for t in trials) == sorted({m for m, _ in calm_units})
    assert all(t.status == "ok" for t in trials)
    assert sorted(units) == sorted(calm_units)  # the same units, each journaled once
    assert {u["status"] for u in units.values()} == {"ok"}
    assert result["failed"] == []
    assert len(versions) == 2  # one model version per trial: no final fit registered twice

    # The unit that was running on the killed node ran again elsewhere, and says so.
    retried = {k: u for k, u in units.items() if u["attempts"] >= 2}
    assert retried, {k: (u["attempts"], u["node_ip"]) for k, u in units.items()}
    lost_there = {k: u for k, u in retried.items()
                  if any(a["node_ip"] == victim for a in u.get("failed_attempts", []))}
    assert len(lost_there) >= len(running_there), retried
    assert sorted((r["model"], r["unit"]) for r in result["retried"]) == sorted(retried)
    print("ran again:", {k: (u["attempts"], u["node_ip"], u["failed_attempts"])
                         for k, u in retried.items()})
    for key, unit in lost_there.items():
        assert unit["node_ip"] != victim, key
        assert unit["node_ip"] in {cluster.head_ip, *cluster.worker_ips}
        assert unit["node"] != victim_node.node_id
        lost = [a for a in unit["failed_attempts"] if a["node_ip"] == victim]
        assert lost[0]["node"] == victim_node.node_id
        assert lost[0]["error"], lost  # what Ray recorded (node or worker died)
    # Every fit waited at the gate until after the kill: none finished on the victim.
    assert all(u["node_ip"] != victim for u in units.values())

    # The leaderboard is the undisturbed run's: every score, every fold, exactly.
    assert board(home, result["run_id"]) == board(home, calm["run_id"])
    assert fold_scores(units) == fold_scores(calm_units)

    # When the lost units started again: their tickets' times (a fit takes its ticket as
    # it starts, whether or not the test polls just then). A unit trained twice would be
    # two fits of it off the victim (one there was killed before it could finish).
    again = {t["task"]: (gate / f"started-{n}").stat().st_mtime
             for n, t in sorted(started(gate).items(), reverse=True)
             if t["task"] in lost_tasks and t["node_ip"] != victim}
    assert set(again) == lost_tasks, (again, lost_tasks)
    fits_off_victim = Counter(t["task"] for t in started(gate).values()
                              if t["node_ip"] != victim)
    record(tmp_path, case="worker_node",
           fault="a worker node SIGKILLed (every process) with units running on it",
           seconds_to_detect=detected_s,
           seconds_until_ready=max(again.values()) - killed_at_wall,
           no_load="a training fault; the test serves nothing",
           trials_lost=len({m for m, _ in calm_units}) - sum(t.status == "ok" for t in trials),
           models_lost=2 - len(versions),
           units_trained_twice=sum(n > 1 for n in fits_off_victim.values()),
           units_lost_with_node=len(lost_tasks), units_rerun=len(retried),
           run_wall_s=round(fault_wall_s, 2), clean_run_wall_s=round(calm_wall_s, 2))
