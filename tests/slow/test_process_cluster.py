"""The process-cluster fixture itself: nodes as Ray sees them, a killed node seen dead,
SIGTERM honoured within Docker's 10 s grace, nothing left after down."""

from __future__ import annotations

import signal

import psutil


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

    assert cluster.kill_head(signal.SIGKILL) >= 2
    assert not cluster.cluster.processes(cluster.head_ip)
    cluster.restart_head()
    after = cluster.wait_alive(3)
    # The same worker nodes (same Ray ids, same processes) came back: they reconnected.
    assert workers <= {n.node_id for n in after.alive}
    assert all(psutil.pid_exists(p) for p in worker_pids)
