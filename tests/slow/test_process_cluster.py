"""The process-cluster fixture itself: nodes as Ray sees them, a killed node seen dead,
SIGTERM honoured within Docker's 10 s grace, nothing left after down."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psutil
from cluster_fixtures import next_ip_block

from fleetlearn.cluster import LocalCluster, NodeOptions


def test_three_nodes_a_killed_worker_is_dead_and_sigterm_stops_a_node(process_cluster) -> None:
    cluster = process_cluster(workers=2, cpus_per_node=1)
    view = cluster.wait_alive(3)
    assert sorted(n.ip for n in view.alive) == sorted([cluster.head_ip, *cluster.worker_ips])
    assert all(n.total("cpus") == 1 for n in view.alive)
    assert cluster.alive_node_ids() == {n.node_id for n in cluster.nodes}
    pids = {n.pid for n in cluster.nodes}

    victim, other = cluster.worker_ips
    victim_id = cluster.node(victim).node_id
    tree = [p.pid for p in psutil.Process(cluster.node(victim).pid).children(recursive=True)]
    assert cluster.kill_node(victim, signal.SIGKILL) >= 2  # ray start + raylet at least
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                   for p in tree)
    view = cluster.wait_dead(victim)
    assert victim_id in {n.node_id for n in view.dead}
    assert victim_id not in cluster.alive_node_ids()

    seconds = cluster.terminate_node(other)
    assert seconds <= 10.0, f"a node took {seconds:.1f} s to stop after SIGTERM"

    cluster.down()
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", pid


def test_a_killed_head_restarted_with_redis_takes_its_workers_back(process_cluster,
                                                                  redis_server) -> None:
    cluster = process_cluster(workers=2, redis_url=redis_server.url)
    before = cluster.wait_alive(3)
    workers = {n.node_id for n in before.alive if not n.is_head}
    worker_pids = {n.pid for n in cluster.nodes if n.role == "worker"}
    old_head = cluster.node(cluster.head_ip).node_id

    assert cluster.kill_head(signal.SIGKILL) >= 2
    assert not cluster.cluster.processes(cluster.head_ip)
    new_head = cluster.restart_head().node_id
    assert new_head
    assert new_head != old_head
    after = cluster.wait_alive(3)
    assert new_head in cluster.alive_node_ids()
    # The same worker nodes (same Ray ids, same processes) came back: they reconnected.
    assert workers <= {n.node_id for n in after.alive}
    assert all(psutil.pid_exists(p) for p in worker_pids)


def test_join_alone_waits_for_the_head_named_in_the_environment(process_cluster,
                                                                tmp_path) -> None:
    """What a container runs: only FLEETLEARN_CLUSTER_ADDRESS, nothing shared."""
    cluster = process_cluster(workers=0)
    home = tmp_path / "joiner"
    home.mkdir()
    temp = tempfile.mkdtemp(prefix="flj-", dir="/tmp")
    ip = cluster.head_ip.rsplit(".", 1)[0] + ".9"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FLEETLEARN_"))}
    env.update(HOME=str(home), RAY_TMPDIR=temp, **cluster.security_env,
               FLEETLEARN_CLUSTER_ADDRESS=cluster.address,
               FLEETLEARN_CLUSTER_ADDRESS_FILE=str(tmp_path / "no-such-file"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetlearn", "cluster", "join", "--node-ip-address", ip,
         "--", "--num-cpus", "1", "--memory", str(2**30), "--object-store-memory",
         str(100 * 2**20)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        view = cluster.wait_alive(2)
        assert ip in {n.ip for n in view.alive}
        assert psutil.Process(proc.pid).cmdline()[2] == "start"  # it became `ray start`
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert not alive
        assert time.monotonic() - start <= 10.0
        cluster.wait_dead(ip)
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
        proc.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_head_that_dies_while_its_workers_start_brings_the_cluster_up_again(
        tmp_path) -> None:
    """Ray's raylet aborts now and then on a loaded machine after its head registered
    (its agents report late): ``up`` starts the cluster again instead of failing. The
    fault here is real: the head's raylet is SIGKILLed once the first worker starts."""
    block = next_ip_block()
    cluster = LocalCluster(tmp_path / "c", options=NodeOptions(num_cpus=1, memory=2**31,
                                                               object_store_memory=100 * 2**20),
                           head_ip=f"{block}.1", ip_prefix=block)
    said: list[str] = []
    killed: dict[str, int] = {}

    def on_progress(message: str) -> None:
        said.append(message)
        if message.startswith("worker ") and not killed:
            assert cluster.state is not None
            head = cluster.state.head
            raylet = next(p for p in psutil.Process(head.pid).children(recursive=True)
                          if p.name() == "raylet")
            raylet.kill()
            killed.update(head=head.pid, raylet=raylet.pid)

    try:
        state = cluster.up(1, timeout=180.0, on_progress=on_progress)
        assert killed, "the fault was never injected"
        # The fault happened: that head's ray start and raylet are gone ...
        assert not psutil.pid_exists(killed["raylet"])
        assert not psutil.pid_exists(killed["head"]) or \
            psutil.Process(killed["head"]).status() == psutil.STATUS_ZOMBIE
        assert any("the head exited while the cluster was starting" in m and
                   "raylet (exit code -9) exited" in m for m in said), said
        # ... and the cluster came up again: a new head and its worker, both alive.
        assert state.head.pid != killed["head"]
        view = cluster.view()
        assert sorted(n.ip for n in view.alive) == [f"{block}.1", f"{block}.2"]
        assert {n.node_id for n in state.nodes} == {n.node_id for n in view.alive}
    finally:
        cluster.stop()
        cluster.cleanup()
