"""fleetlearn.cluster without a cluster: addresses, sizes, the state file, how a worker
finds the head, the status table, bad input to the CLI, and GET /v1/cluster when there
is no cluster or nobody answers. The real cluster is in tests/slow/test_cluster_cli.py
and tests/slow/test_process_cluster.py.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import psutil
import pytest
from api_fixtures import metrics_of, serve

from fleetlearn.cli import main
from fleetlearn.cluster import (
    ADDRESS_ENV,
    ADDRESS_FILE_ENV,
    ClusterState,
    ClusterView,
    LocalCluster,
    NodeOptions,
    NodeRecord,
    NodeView,
    discover_address,
    format_size,
    node_env,
    node_rows,
    parse_address,
    parse_redis_url,
    parse_size,
    read_state,
    resolve_address,
    status_record,
    wait_for_head,
    write_state,
)
from fleetlearn.errors import ClusterError, ConfigError
from fleetlearn.monitoring import ServingMetrics


def _node(ip: str, alive: bool = True, head: bool = False, cpus: float = 1.0,
          used: float = 0.0) -> NodeView:
    return NodeView(node_id=f"{ip.replace('.', '')}ff" * 4, ip=ip, alive=alive, is_head=head,
                    state="RUNNING" if alive else "DEAD",
                    resources={"cpus": {"total": cpus, "used": used},
                               "memory": {"total": 2 * 2**30, "used": 0.0},
                               "object_store": {"total": 100 * 2**20, "used": 0.0}})


def _record(name: str, ip: str, pid: int, role: str = "worker") -> NodeRecord:
    return NodeRecord(name=name, role=role, ip=ip, pid=pid, home="/h", temp_dir="/t",
                      log="/l", num_cpus=1, memory=2**31, object_store_memory=100 * 2**20,
                      started_at=0.0)


# ------------------------------------------------------------------ parsing
def test_addresses_sizes_and_redis_urls_parse_or_say_what_is_wrong() -> None:
    assert parse_address(" 127.0.1.1:6380\n") == ("127.0.1.1", 6380)
    for bad in ("127.0.1.1", "host:port", ":6380", "127.0.0.1:70000"):
        with pytest.raises(ClusterError, match="host:port"):
            parse_address(bad)
    with pytest.raises(ClusterError, match="Ray Client"):
        parse_address("ray://127.0.0.1:10001")
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("1.5G") == 1_500_000_000
    assert parse_size("1000") == 1000
    with pytest.raises(ConfigError, match="'memory_per_node' option must be a size"):
        parse_size("lots")
    assert format_size(3 * 2**30) == "3.0 GiB"
    assert format_size(100 * 2**20, short=True) == "100M"
    assert format_size(None) == ""
    assert parse_redis_url("redis://:pw@127.0.0.1:6390") == ("127.0.0.1:6390", "pw")
    assert parse_redis_url("127.0.0.1:6390") == ("127.0.0.1:6390", None)
    with pytest.raises(ConfigError, match="'--redis' option"):
        parse_redis_url("http://127.0.0.1")


def test_node_options_are_bounded() -> None:
    with pytest.raises(ConfigError, match=r"'cpus_per_node' option must be an int in the "
                                          r"range \[1, inf\). Got 0 instead"):
        NodeOptions(num_cpus=0)
    with pytest.raises(ConfigError, match="256 MiB"):
        NodeOptions(memory=2**20)
    with pytest.raises(ConfigError, match="80 MiB"):
        NodeOptions(object_store_memory=2**20)


def test_a_node_environment_is_its_own(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "RAY_ADDRESS": "10.0.0.1:1", "FLEETLEARN_HOME": "/srv/fl",
            "HOME": "/root", "PYTHONPATH": "/src"}
    env = node_env(base, tmp_path / "home", tmp_path / "tmp")
    assert env["HOME"] == str(tmp_path / "home")
    assert env["RAY_TMPDIR"] == str(tmp_path / "tmp")
    assert "RAY_ADDRESS" not in env
    assert "FLEETLEARN_HOME" not in env  # workers never touch the registry
    assert env["PYTHONPATH"] == "/src"
    shared = node_env(base, tmp_path / "home", tmp_path / "tmp", isolated=False)
    assert shared["FLEETLEARN_HOME"] == "/srv/fl"
    assert shared["HOME"] == "/root"


# ------------------------------------------------------------ the state file
def test_state_round_trips_and_absent_state_reads_as_none(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    state = ClusterState(dir=str(tmp_path), address="127.0.1.1:5000", port=5000,
                         redis_url=None, created_at=1.0,
                         nodes=[_record("head", "127.0.1.1", 11, "head"),
                                _record("worker-2", "127.0.0.2", 12)])
    write_state(state)
    assert (tmp_path / "address").read_text().strip() == "127.0.1.1:5000"
    again = read_state(tmp_path)
    assert again == state
    assert again.head.pid == 11
    assert [w.ip for w in again.workers] == ["127.0.0.2"]
    assert again.node("127.0.0.2").name == "worker-2"
    with pytest.raises(ClusterError, match="No node '127.0.0.9'.*worker-2 \\(127.0.0.2\\)"):
        again.node("127.0.0.9")
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(ClusterError, match="cannot be read"):
        read_state(tmp_path)


# ---------------------------------------------------- a worker finds the head
def test_the_address_comes_from_the_option_then_the_variable_then_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "address"
    monkeypatch.setenv(ADDRESS_FILE_ENV, str(file))
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    assert resolve_address() is None
    file.write_text("127.0.1.1:7000\n")
    assert resolve_address() == "127.0.1.1:7000"
    monkeypatch.setenv(ADDRESS_ENV, "127.0.1.1:7001")
    assert resolve_address() == "127.0.1.1:7001"
    assert resolve_address("127.0.1.1:7002") == "127.0.1.1:7002"
    file.write_text("garbage")
    monkeypatch.delenv(ADDRESS_ENV)
    with pytest.raises(ClusterError, match="host:port"):
        resolve_address()


def test_a_worker_waits_with_backoff_and_rereads_the_file(tmp_path: Path) -> None:
    file = tmp_path / "address"
    waits: list[float] = []
    tries: list[str] = []

    def probe(address: str) -> bool:
        tries.append(address)
        return address.endswith(":7100")

    def on_wait(address: str, delay: float) -> None:
        waits.append(delay)
        if len(waits) == 2:
            file.write_text("127.0.1.1:7099")  # a head that does not answer yet
        if len(waits) == 4:
            file.write_text("127.0.1.1:7100")  # ... restarted on another port

    found = wait_for_head(address_file=file, timeout=60, on_wait=on_wait, probe=probe)
    assert found == "127.0.1.1:7100"
    assert waits == sorted(waits)
    assert waits[0] < waits[-1]  # backoff grows
    assert tries[0] == "127.0.1.1:7099"


def test_no_head_in_time_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="No cluster address after"):
        wait_for_head(address_file=tmp_path / "none", timeout=0.3)
    with pytest.raises(ClusterError, match="No Ray head answers at 127.0.1.1:1"):
        wait_for_head("127.0.1.1:1", timeout=0.3, probe=lambda a: False)


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert discover_address(None) == (None, None)
    assert discover_address("local") == (None, None)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.1.1:7200")
    assert discover_address(None) == ("127.0.1.1:7200", "RAY_ADDRESS")
    assert discover_address("127.0.1.1:7300") == ("127.0.1.1:7300", "settings")


# ------------------------------------------------------------------- status
def test_status_joins_rays_view_with_the_recorded_processes() -> None:
    view = ClusterView(address="127.0.1.1:5000", pending_tasks=4, nodes=[
        _node("127.0.1.1", head=True, used=1.0), _node("127.0.0.2", used=1.0),
        _node("127.0.0.3", alive=False)])
    state = ClusterState(dir="/c", address="127.0.1.1:5000", port=5000, redis_url=None,
                         created_at=0.0, nodes=[_record("head", "127.0.1.1", 11, "head"),
                                                _record("worker-2", "127.0.0.2", 12),
                                                _record("worker-3", "127.0.0.3", 13)])
    record = status_record(view, state)
    assert record["mode"] == "cluster"
    assert (record["nodes_alive"], record["nodes_dead"]) == (2, 1)
    assert record["resources"]["cpus"] == {"total": 2.0, "used": 2.0}  # alive nodes only
    assert record["pending_tasks"] == 4
    by_ip = {n["ip"]: n for n in record["nodes"]}
    assert by_ip["127.0.0.2"]["pid"] == 12
    assert by_ip["127.0.0.3"]["pid"] is None  # dead: no process to name
    rows = node_rows(record)
    assert [r["state"] for r in rows] == ["alive", "alive", "dead"]
    assert rows[0]["role"] == "head"
    assert rows[1]["cpus"] == "1/1"
    assert rows[1]["memory"] == "0/2.0G"
    json.dumps(record)  # what --json prints


def test_cluster_gauges_follow_the_answer() -> None:
    metrics = ServingMetrics()
    metrics.set_cluster({"mode": "local"})
    assert "fleetlearn_cluster_up{" not in metrics.render().decode()
    metrics.set_cluster({"mode": "cluster", "address": "h:1", "nodes_alive": 3,
                         "nodes_dead": 1, "pending_tasks": 2,
                         "resources": {"cpus": {"total": 3, "used": 2},
                                       "memory": {"total": 6e9, "used": 0},
                                       "object_store": {"total": 3e8, "used": 1e6}}})
    text = metrics.render().decode()
    assert 'fleetlearn_cluster_nodes{address="h:1",state="alive"} 3.0' in text
    assert 'fleetlearn_cluster_nodes{address="h:1",state="dead"} 1.0' in text
    assert 'fleetlearn_cluster_cpus{address="h:1",kind="used"} 2.0' in text
    assert 'fleetlearn_cluster_pending_tasks{address="h:1"} 2.0' in text
    assert 'fleetlearn_cluster_up{address="h:1"} 1.0' in text
    metrics.set_cluster({"mode": "cluster", "address": "h:2", "reachable": False,
                         "error": "refused"})
    text = metrics.render().decode()
    assert 'fleetlearn_cluster_up{address="h:2"} 0.0' in text
    assert 'address="h:1"' not in text  # one cluster at a time
    assert "fleetlearn_cluster_nodes{" not in text
    metrics.set_cluster({"mode": "local"})
    assert "fleetlearn_cluster_up{" not in metrics.render().decode()


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(("argv", "message"), [
    (["cluster", "status"], "No cluster is recorded in"),
    (["cluster", "down"], "No cluster is recorded in"),
    (["cluster", "up", "--workers", "-1"], "'workers' option must be an int in the range"),
    (["cluster", "up", "--port", "6379"], "6379 is Redis's"),
    (["cluster", "up", "--cpus-per-node", "0"], "'cpus_per_node' option"),
    (["cluster", "up", "--memory-per-node", "much"], "'memory_per_node' option"),
    (["cluster", "up", "--redis", "http://x"], "'--redis' option"),
    (["cluster", "status", "--address", "127.0.1.1:1"], "No Ray head answers at 127.0.1.1:1"),
])
def test_cluster_cli_bad_input_is_one_line_and_exit_2(
        argv: list[str], message: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--dir", str(tmp_path / "c")] if argv[1] != "status" or "--address"
                not in argv else argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: "), err
    assert "\n" not in err, err
    assert message in err, err


def test_up_refuses_a_busy_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.1.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["cluster", "up", "--workers", "0", "--port", str(port),
                     "--dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"Port {port} is already in use" in err
    assert "\n" not in err


def test_up_refuses_when_a_cluster_already_runs(tmp_path: Path) -> None:
    me = psutil.Process(os.getpid())
    record = _record("head", "127.0.1.1", me.pid, "head")
    record.started_at = me.create_time()  # "running": this very process
    write_state(ClusterState(dir=str(tmp_path), address="127.0.1.1:5000", port=5000,
                             redis_url=None, created_at=0.0, nodes=[record]))
    with pytest.raises(ClusterError, match="A cluster already runs from .*cluster down"):
        LocalCluster(tmp_path).up(1)


# ------------------------------------------------------------- GET /v1/cluster
def test_a_server_without_a_cluster_answers_local(home: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with serve(home) as client:
        r = client.get("/v1/cluster")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["mode"] == "local"
        assert body["address"] is None
        assert body["nodes"] == []
        assert not any(k[0].startswith("fleetlearn_cluster_") for k in metrics_of(client))


def test_a_head_that_does_not_answer_is_reported_and_metrics_still_scrape(
        home: Path) -> None:
    with serve(home, ray_address="127.0.1.1:1") as client:
        r = client.get("/v1/cluster")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["mode"] == "cluster"
        assert body["reachable"] is False
        assert body["address"] == "127.0.1.1:1"
        assert body["source"] == "settings"
        assert "No Ray head answers at 127.0.1.1:1" in body["error"]
        assert body["nodes"] == []
        m = metrics_of(client)
        assert m[("fleetlearn_cluster_up", ("address", "127.0.1.1:1"))] == 0.0

