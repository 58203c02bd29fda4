"""Fault test 6: placement does not change results.

The same run (table, models, folds, seed) on embedded local Ray and on a 3-node process
cluster (head + 2 workers) gives the same fold scores, every fold and every metric,
exactly. The cluster's workers have their own HOME, no ``FLEETLEARN_*`` setting but the
head's address file, and no table: the driver reads it, and the test takes it away
(renames its folder) while every unit is still waiting at a gate, before any fit; so a
worker that read the table, or opened a registry through its own home, would fail or
leave a trace here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import psutil
from fault_runs import board, finished, fold_scores, journal, start_train, write_table
from gated_models import open_all, started, wait_until

FOLDS = 3


def models(gate: Path) -> list[str]:
    """Two seeded forests behind ``gate`` (their scores depend on each unit's seed)."""
    spec = f"fault_models.GatedForestClassifier:gate={gate}"
    return [f"{spec},n_estimators=30", f"{spec},n_estimators=15,max_features=log2"]


def test_a_run_scores_the_same_on_local_ray_and_on_a_cluster_without_the_table(
        process_cluster: Callable, isolated_env: dict[str, str], tmp_path: Path) -> None:
    cluster = process_cluster(workers=2, cpus_per_node=1, worker_home_isolated=True)
    driver_dir = tmp_path / "driver"
    home = driver_dir / "home"
    table = write_table(driver_dir / "data" / "table.csv")
    hidden = driver_dir / "data-away"
    gate = tmp_path / "gate"
    n_units = 2 * (FOLDS + 1)

    # On the cluster: every fit waits at the gate, so all of them run after the table
    # is gone (the driver read it before submitting anything).
    log = tmp_path / "cluster.log"
    driver = start_train(cluster.env, home, table, models(gate), folds=FOLDS,
                         address=cluster.address, log=log)
    tickets = wait_until(lambda: len(started(gate)) >= 3 and started(gate),
                         "a unit running on each of the 3 nodes", timeout_s=240)
    assert driver.poll() is None
    table.parent.rename(hidden)
    assert not table.exists()
    # The processes fitting on the workers: their own HOME, no fleetlearn setting, not
    # in the driver's folder.
    on_workers = [t for t in tickets.values() if t["node_ip"] in cluster.worker_ips]
    assert {t["node_ip"] for t in on_workers} == set(cluster.worker_ips)
    for ticket in on_workers:
        proc = psutil.Process(ticket["pid"])
        environ = proc.environ()
        assert environ.get("HOME") == cluster.node(ticket["node_ip"]).home
        # Only how to find the head (cluster discovery) and which of the node's ports
        # stay on loopback (its metrics): no home, registry or artifacts.
        settings = {k for k in environ if k.startswith("FLEETLEARN_")}
        assert settings <= {"FLEETLEARN_CLUSTER_ADDRESS", "FLEETLEARN_CLUSTER_ADDRESS_FILE",
                            "FLEETLEARN_LOOPBACK_PORTS"}
        assert not Path(proc.cwd()).is_relative_to(driver_dir)
        assert not [f.path for f in proc.open_files() if str(driver_dir) in f.path]
    open_all(gate)
    on_cluster = finished(driver, log)
    cluster_units = journal(home, on_cluster["run_id"])
    assert len(cluster_units) == n_units
    assert {u["status"] for u in cluster_units.values()} == {"ok"}, cluster_units
    # Units really ran on the workers (and the head), as Ray placed them.
    ips = {u["node_ip"] for u in cluster_units.values()}
    assert set(cluster.worker_ips) <= ips <= {cluster.head_ip, *cluster.worker_ips}
    # No worker opened a registry of its own (a fleetlearn home under its HOME).
    for node in cluster.nodes:
        if node.role == "worker":
            assert not (Path(node.home) / ".fleetlearn").exists(), node
            assert not list(Path(node.home).rglob("registry.db")), node

    # On embedded local Ray (the default: no address), the same run, the table back.
    hidden.rename(table.parent)
    log = tmp_path / "local.log"
    local = finished(start_train(isolated_env, home, table, models(gate), folds=FOLDS,
                                 log=log), log)
    local_units = journal(home, local["run_id"])
    assert len({u["node"] for u in local_units.values()}) == 1  # one node: this machine
    assert {u["node_ip"] for u in local_units.values()}.isdisjoint(cluster.worker_ips)

    # Identical: every fold, every metric, the test part, the leaderboard.
    assert sorted(local_units) == sorted(cluster_units)
    assert fold_scores(local_units) == fold_scores(cluster_units)
    assert board(home, local["run_id"]) == board(home, on_cluster["run_id"])
    assert os.path.exists(table)
