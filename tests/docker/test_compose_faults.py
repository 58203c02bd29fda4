"""The compose stack of deploy/ built and brought up for real, and the faults again in
containers (the local versions: tests/slow/test_fault_worker_node.py, test_fault_serving.py,
test_fault_head.py).

One stack for the module (``stack`` in conftest.py: Redis, PostgreSQL, a Ray head with no
CPUs, 2 workers, the API with its launcher, Ray Serve replicas on the workers). Each test
leaves the stack as it found it (a killed container is started again), and the most
disruptive one, the head's outage, runs last. Faults are injected with ``docker kill``
(SIGKILL to every process of the container: a crashed machine). Figures are printed and
written as JSON (``$FLEETLEARN_FAULT_FIGURES``): benchmarks/faults.py --compose reads them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from docker_stack import REPO, WORKER_CPUS, ComposeStack, compose_command, wait_for, write_figures
from fault_load import PredictLoad, RetryingLoad, answering_replicas, summary
from fault_runs import BOARD_COLUMNS, board, finished, fold_scores, start_train, write_table
from fault_runs import journal as local_journal
from gated_models import open_all, open_ticket, started

from fleetlearn.client import Client
from fleetlearn.training import run_leaderboard

pytestmark = [pytest.mark.docker,
              pytest.mark.filterwarnings("ignore:Using extra keyword arguments on `Field`")]

FOLDS = 3
REPLICA_TITLE = "ServeReplica:fleetlearn"
#: Fault 3: how long the head stays down, load kept after recovery, pause between requests.
DOWN_S = float(os.environ.get("FLEETLEARN_FAULT_DOWN_S", "10"))
AFTER_S = float(os.environ.get("FLEETLEARN_FAULT_AFTER_S", "15"))
INTERVAL_S = float(os.environ.get("FLEETLEARN_FAULT_INTERVAL_MS", "100")) / 1000


def gated_models(gate: str) -> list[str]:
    """Two seeded forests waiting at ``gate`` (as fault test 1's local version)."""
    spec = f"fault_models.GatedForestClassifier:gate={gate}"
    return [f"{spec},n_estimators=40", f"{spec},n_estimators=20,max_features=log2"]


def api(stack: ComposeStack) -> Client:
    return Client(stack.api_url, api_key=stack.api_key, timeout=120)


def worker_ips(stack: ComposeStack) -> dict[str, str]:
    """{worker container: its IP}."""
    return {c: stack.ip(c) for c in stack.containers("ray-worker")}


def journal(stack: ComposeStack, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    reg = stack.registry()
    try:
        return {(t.model_name, name): {"status": u.status, "error": u.error, **u.payload}
                for t in reg.list_trials(run_id) for name, u in t.units.items()}
    finally:
        reg.close()


def stack_board(stack: ComposeStack, run_id: str) -> list[dict[str, Any]]:
    reg = stack.registry()
    try:
        return run_leaderboard(reg, run_id)[BOARD_COLUMNS].to_dict(orient="records")
    finally:
        reg.close()


def restore_worker(stack: ComposeStack, container: str) -> None:
    """Start a killed worker container again and wait until its node is alive."""
    stack.start(container)
    wait_for(lambda: stack.ip(container) in {n.ip for n in stack.cluster_view().alive},
             f"{container} alive again", 300, poll_s=2)


def test_a_missing_secret_stops_compose_with_a_message_naming_it(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose here")
    env_file = tmp_path / "bad.env"
    env_file.write_text("REDIS_PASSWORD=set\n")  # POSTGRES_PASSWORD missing
    done = subprocess.run([*command, "-f", str(REPO / "deploy" / "docker-compose.yml"),
                           "--env-file", str(env_file), "config"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD in deploy/.env" in done.stderr, done.stderr


def test_the_stack_answers_and_a_worker_started_later_joins_and_gets_tasks(
        stack: ComposeStack) -> None:
    client = api(stack)
    # The API and the GUI are published on 127.0.0.1 only; nothing else of the stack is.
    published = {c: stack.inspect(c)["NetworkSettings"]["Ports"] for s in
                 ("ray-head", "ray-worker", "api", "ui", "serve", "redis", "postgres")
                 for c in stack.containers(s, running_only=False)}
    bound = {c: [(b["HostIp"], b["HostPort"]) for ports in p.values() if ports for b in ports]
             for c, p in published.items()}
    assert {c: b for c, b in bound.items() if b} == {
        stack.containers("api")[0]: [("127.0.0.1", str(stack.api_port))],
        stack.containers("ui", running_only=False)[0]: [("127.0.0.1", str(stack.ui_port))],
    }, bound
    info = client.cluster()
    assert info["reachable"] is True, info
    assert info["mode"] == "cluster"

    # One more worker, no configuration changed: it finds the head by itself...
    before = set(stack.containers("ray-worker"))
    started_at = time.monotonic()
    stack.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "ray-worker=3",
                  "ray-worker")
    (late,) = set(stack.containers("ray-worker")) - before
    late_ip = stack.ip(late)
    wait_for(lambda: late_ip in {n.ip for n in stack.cluster_view().alive},
             "the late worker alive in the GCS", 300, poll_s=2)
    joined_s = time.monotonic() - started_at
    assert stack.inspect(late)["Config"]["Env"] == stack.inspect(min(before))["Config"]["Env"]

    # ... and gets tasks: a gated run with more units than free CPUs holds every free
    # CPU slot, so the late worker's too.
    gate = stack.gate / "late"
    gate.mkdir(mode=0o777)
    gate.chmod(0o777)
    dataset = client.upload_dataset(write_table(stack.folder / "late" / "table.csv"),
                                    name="late.csv")["name"]
    run = client.start_run(dataset, "label", models=gated_models("/gate/late"), folds=5,
                           curves=False, seed=11)
    try:
        tickets = wait_for(lambda: [t for t in started(gate).values()
                                    if t["node_ip"] == late_ip],
                           lambda: f"a unit on the late worker (tickets: {started(gate)})",
                           300, poll_s=1)
        assert tickets
    finally:
        open_all(gate)
    done = client.wait_for_run(run["id"], timeout=900, poll_s=2)
    assert done["status"] == "finished", done
    units = journal(stack, run["id"])
    assert len(units) == 2 * (5 + 1)
    assert {u["status"] for u in units.values()} == {"ok"}
    assert late_ip in {u["node_ip"] for u in units.values()}
    # Back to two workers for the faults that follow.
    subprocess.run(["docker", "rm", "-f", late], check=True, capture_output=True)
    write_figures(stack, "compose_stack", {**stack.timings,
                                           "late_worker_joined_s": round(joined_s, 1)})


#: A tiny table the intruder would train on (written inside its container).
INTRUDER_TABLE = "x,y\\n" + "".join(f"{(i * 7) % 5}.5,{i % 2}\\n" for i in range(20))


def intruder_run(name: str, *argv: str, env: dict[str, str] | None = None,
                 timeout: float = 60) -> tuple[int, str, float]:
    """``docker exec`` in the intruder container: exit code, stderr+stdout, seconds."""
    extra = [f"--env={k}={v}" for k, v in (env or {}).items()]
    started_at = time.monotonic()
    done = subprocess.run(["docker", "exec", *extra, name, *argv], capture_output=True,
                          text=True, timeout=timeout)
    return done.returncode, done.stderr + done.stdout, time.monotonic() - started_at


def the_error(code: int, out: str, seconds: float) -> str:
    """The one ``error:`` line of a refused command (Ray may log a warning of its own
    before it), after checking it was refused (exit code 2) within 30 s."""
    assert code == 2, (code, out)
    assert seconds < 30, (seconds, out)
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out
    return errors[0]


def nodes_seen_by_the_api(stack: ComposeStack) -> dict[str, tuple[str, bool]]:
    """{node id: (IP, alive)} as the API container reads the head (with the stack's
    secrets), dead nodes included."""
    out = stack.exec(stack.containers("api")[0], "fleetlearn", "cluster", "status",
                     "--address", "ray-head:6380", "--json")
    return {n["node_id"]: (n["ip"], n["alive"]) for n in json.loads(out)["nodes"]}


def test_an_intruder_on_the_stacks_network_is_refused_by_ray_tls_and_the_token(
        stack: ComposeStack) -> None:
    # A container of the same image on the stack's network, without the ray-secrets
    # volume: it reaches the head's port, and holds no certificate and no token.
    image = os.environ.get("FLEETLEARN_IMAGE", "fleetlearn:dev")
    name = f"{stack.project}-intruder"
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", stack.network(),
                    image, "sleep", "900"], check=True, capture_output=True, timeout=600)
    try:
        intruder_ip = stack.ip(name)
        head = stack.containers("ray-head")[0]
        # (A dead node may hold its IP: Docker hands a removed container's IP out again.)
        nodes_before = nodes_seen_by_the_api(stack)
        # The network path is open: the head's GCS port accepts its TCP connections.
        code, out, _ = intruder_run(name, "bash", "-c", "exec 3<>/dev/tcp/ray-head/6380")
        assert code == 0, out

        # 1. No certificate: `cluster join` (what a worker runs) and `train` both stop
        # at once, saying TLS is required.
        code, out, seconds = intruder_run(name, "fleetlearn", "cluster", "join",
                                          "--address", "ray-head:6380", "--timeout", "60")
        error = the_error(code, out, seconds)
        assert "The cluster at ray-head:6380 requires TLS and this node has no certificate" \
            in error, out
        code, out, seconds = intruder_run(
            name, "bash", "-c", f"printf '{INTRUDER_TABLE}' > /tmp/t.csv && exec fleetlearn "
            "train /tmp/t.csv -t y -m logistic_regression --folds 2 --no-curves -q "
            "--registry sqlite:////tmp/r.db --address ray-head:6380")
        error = the_error(code, out, seconds)
        assert "The cluster at ray-head:6380 requires TLS and this driver has no " \
            "certificate" in error, out

        # 2. The stack's certificate (stolen) but not its token: TLS passes, Ray's token
        # check refuses the driver.
        for file in ("ca.crt", "node.crt", "node.key"):
            subprocess.run(["docker", "exec", "-i", name, "bash", "-c",
                            f"mkdir -p /tmp/stolen && cat > /tmp/stolen/{file}"],
                           input=(stack.folder / "ray-secrets" / file).read_bytes(),
                           check=True, capture_output=True)
        stolen = {"RAY_USE_TLS": "1", "RAY_TLS_CA_CERT": "/tmp/stolen/ca.crt",
                  "RAY_TLS_SERVER_CERT": "/tmp/stolen/node.crt",
                  "RAY_TLS_SERVER_KEY": "/tmp/stolen/node.key", "RAY_AUTH_MODE": "token",
                  "RAY_AUTH_TOKEN": "0" * 64}
        code, out, seconds = intruder_run(
            name, "bash", "-c", "exec fleetlearn train /tmp/t.csv -t y -m "
            "logistic_regression --folds 2 --no-curves -q --registry sqlite:////tmp/r.db "
            "--address ray-head:6380", env=stolen)
        error = the_error(code, out, seconds)
        assert "The cluster at ray-head:6380 refused this driver: it has a token the " \
            "cluster does not accept" in error, out

        # The control: the same container with the stack's token reads the cluster, so
        # what refused it above was the certificate and the token, nothing else.
        token = (stack.folder / "ray-secrets" / "token").read_text().strip()
        code, out, _ = intruder_run(name, "fleetlearn", "cluster", "status", "--address",
                                    "ray-head:6380", "--json",
                                    env={**stolen, "RAY_AUTH_TOKEN": token})
        assert code == 0, out
        assert stack.ip(head) in {n["ip"] for n in json.loads(out)["nodes"]}

        # The head counted no new node meanwhile (the intruder's or any), none alive has
        # the intruder's IP, and the stack's own nodes are there, alive.
        nodes = nodes_seen_by_the_api(stack)
        assert nodes.keys() == nodes_before.keys(), (nodes_before, nodes)
        alive = {ip for ip, up in nodes.values() if up}
        assert intruder_ip not in alive, nodes
        assert {stack.ip(head), *worker_ips(stack).values()} <= alive, nodes
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_fault1_a_worker_container_killed_mid_run_costs_nothing_but_time(
        stack: ComposeStack, tmp_path: Path) -> None:
    client = api(stack)
    table = write_table(stack.folder / "fault1" / "table.csv")
    n_units = 2 * (FOLDS + 1)

    # The undisturbed run, on this machine's embedded Ray: same table, models, seed.
    calm_gate = tmp_path / "calm-gate"
    open_all(calm_gate)
    home = tmp_path / "local-home"
    ray_tmp = tempfile.mkdtemp(prefix="flrd-", dir="/tmp")  # short: Ray's sockets live there
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FLEETLEARN_"))}
    env.update(HOME=ray_tmp, RAY_TMPDIR=ray_tmp)
    try:
        calm = finished(start_train(env, home, table, gated_models(str(calm_gate)),
                                    folds=FOLDS, log=tmp_path / "calm.log"),
                        tmp_path / "calm.log")
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)

    gate = stack.gate / "fault1"
    gate.mkdir(mode=0o777)
    gate.chmod(0o777)
    dataset = client.upload_dataset(table)["name"]
    run_id = client.start_run(dataset, "label", models=gated_models("/gate/fault1"),
                              folds=FOLDS, curves=False, seed=7)["id"]
    workers = worker_ips(stack)
    try:
        tickets = wait_for(lambda: {t["node_ip"] for t in started(gate).values()}
                           >= set(workers.values()) and started(gate),
                           lambda: f"a unit running on each worker ({started(gate)})", 300)
        victim = min(workers)
        victim_ip = workers[victim]
        victim_node = next(n.node_id for n in stack.cluster_view().alive if n.ip == victim_ip)
        running_there = [t for t in tickets.values() if t["node_ip"] == victim_ip]
        assert running_there

        killed_at = time.monotonic()
        stack.kill(victim)
        assert not stack.running(victim)
        view = wait_for(lambda: (v := stack.cluster_view()) and victim_node in
                        {n.node_id for n in v.dead} and v, "Ray to see the node dead", 120,
                        poll_s=0.5)
        seen_dead_s = time.monotonic() - killed_at
        assert victim_node not in {n.node_id for n in view.alive}
    finally:
        open_all(gate)
    done = client.wait_for_run(run_id, timeout=900, poll_s=2)
    finished_s = time.monotonic() - killed_at
    restore_worker(stack, victim)

    assert done["status"] == "finished", done
    units = journal(stack, run_id)
    calm_units = local_journal(home, calm["run_id"])
    assert len(units) == n_units
    assert sorted(units) == sorted(calm_units)  # the same units, each journaled once
    assert {u["status"] for u in units.values()} == {"ok"}
    reg = stack.registry()
    try:
        trials = reg.list_trials(run_id)
        versions = reg.list_models(run_id=run_id)
    finally:
        reg.close()
    assert all(t.status == "ok" for t in trials)
    assert len(versions) == 2  # no final fit registered twice
    # The units that ran on the killed container ran again elsewhere, and say so.
    lost_there = {k: u for k, u in units.items()
                  if any(a["node_ip"] == victim_ip for a in u.get("failed_attempts", []))}
    assert len(lost_there) >= len(running_there), {k: u.get("failed_attempts")
                                                   for k, u in units.items()}
    for key, unit in lost_there.items():
        assert unit["attempts"] >= 2, key
        assert unit["node_ip"] != victim_ip, key
        assert unit["node"] != victim_node, key
    assert all(u["node_ip"] != victim_ip for u in units.values())
    # The leaderboard is the local run's: every score, every fold, exactly.
    assert stack_board(stack, run_id) == board(home, calm["run_id"])
    assert fold_scores(units) == fold_scores(calm_units)
    write_figures(stack, "compose_fault_worker", {
        "fault": "a worker container killed (docker kill) mid-run",
        "units": len(units), "units_lost_on_victim": len(lost_there),
        "ray_saw_node_dead_s": round(seen_dead_s, 2),
        "run_finished_after_kill_s": round(finished_s, 1),
        "retried": {f"{m}/{u}": units[(m, u)]["attempts"] for m, u in lost_there}})


def replicas_by_container(stack: ComposeStack) -> dict[str, int]:
    """Serve replica processes in each running worker container."""
    out: dict[str, int] = {}
    for container in stack.containers("ray-worker"):
        n = sum(REPLICA_TITLE in line for line in stack.processes(container))
        if n:
            out[container] = n
    return out


def test_fault4_a_replicas_container_killed_under_load_loses_no_request(
        stack: ComposeStack) -> None:
    url = f"http://{stack.head_ip}:8001"  # the head's proxy routes to every replica
    placed = wait_for(lambda: (p := replicas_by_container(stack)) and sum(p.values()) == 2
                      and p, "2 replicas on the workers", 300)
    victim = min(placed)
    victim_ip = stack.ip(victim)
    victim_node = next(n.node_id for n in stack.cluster_view().alive if n.ip == victim_ip)
    before_ids = answering_replicas(url, 2, headers=stack.headers)
    assert len(before_ids) == 2, before_ids

    load = RetryingLoad(url, stack.model["name"], stack.model["records"],
                        stack.model["expected"], headers=stack.headers)
    threads = [threading.Thread(target=load.run, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: load.answered >= 20, "steady traffic first", 120, poll_s=0.2)
        steady = load.answered
        killed_at = time.monotonic()
        stack.kill(victim)
        wait_for(lambda: victim_node in {n.node_id for n in stack.cluster_view().dead},
                 "Ray to see the node dead", 120, poll_s=0.5)
        after_ids: set[str] = set()

        def replaced() -> bool:
            now = replicas_by_container(stack)
            if sum(now.values()) == 2 and victim not in now:
                after_ids.update(answering_replicas(url, 2, headers=stack.headers, tries=10))
            return bool(after_ids - before_ids)
        wait_for(replaced, lambda: f"a new replica answering ({replicas_by_container(stack)})",
                 300, poll_s=1)
        replaced_s = time.monotonic() - killed_at
        steady_after = load.answered
        time.sleep(3.0)  # traffic after the replacement too
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=60)
    restore_worker(stack, victim)

    figures = {"fault": "a serving replica's worker container killed under load",
               "sent": load.sent, "answered": load.answered, "retries": load.retries,
               "lost": load.lost, "wrong": load.wrong, "replaced_after_s": round(replaced_s, 1),
               "replicas_before": sorted(before_ids), "replicas_after": sorted(after_ids),
               "last_errors": load.errors[-5:]}
    write_figures(stack, "compose_fault_serving", figures)
    assert load.lost == 0, figures
    assert load.wrong == 0, figures
    assert load.answered == load.sent, figures
    assert load.answered > steady, figures
    assert load.retries <= max(10, load.sent // 20), figures  # bounded: at most 5 %
    assert load.answered > steady_after, figures
    assert after_ids - before_ids, figures


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return True
    return False


def test_fault3_the_head_container_killed_and_restarted_loses_no_prediction_or_run(
        stack: ComposeStack) -> None:
    client = api(stack)
    workers = worker_ips(stack)
    before = stack.cluster_view()
    worker_ids = {n.node_id for n in before.alive if n.ip in workers.values()}
    (old_head,) = [n.node_id for n in before.alive if n.is_head]
    assert len(worker_ids) == len(workers) == 2
    (head,) = stack.containers("ray-head")

    # Predictions through the proxy of a worker holding a replica (the head's proxy dies
    # with it; Serve runs proxies where replicas are); no client retry.
    holder = min(wait_for(lambda: replicas_by_container(stack), "a replica on a worker", 300))
    proxy = f"http://{workers[holder]}:8001"
    predict_url = f"{proxy}/v1/models/{stack.model['name']}/predict"
    body = {"records": stack.model["records"][:3]}
    wait_for(lambda: httpx.post(predict_url, json=body, headers=stack.headers,
                                timeout=10).status_code == 200, "the worker's proxy", 120)
    load = PredictLoad(predict_url, body, interval_s=INTERVAL_S, headers=stack.headers).start()
    t_load = time.monotonic()
    time.sleep(5)  # a baseline

    # A run in flight through the API, for sure: its fits wait at a gate. Two are let
    # through and journaled before the kill; the rest are let go during the outage, so
    # training goes on while the head is down.
    gate = stack.gate / "fault3"
    gate.mkdir(mode=0o777)
    gate.chmod(0o777)
    dataset = client.upload_dataset(write_table(stack.folder / "fault3" / "table.csv"),
                                    name="fault3.csv")["name"]
    run_id = client.start_run(dataset, "label", models=gated_models("/gate/fault3"),
                              folds=4, curves=False, seed=3)["id"]
    units_total = 2 * (4 + 1)
    try:
        wait_for(lambda: len(started(gate)) >= 2, "fits waiting at the gate", 300)
        open_ticket(gate, 0)
        open_ticket(gate, 1)
        wait_for(lambda: len(journal(stack, run_id)) >= 2, "units journaled before the kill",
                 300)
        journaled_before = journal(stack, run_id)
        assert len(journaled_before) < units_total

        t_kill = time.monotonic()
        stack.kill(head)
        assert not stack.running(head)
        assert _refused(stack.head_ip, 6380)
        outage = httpx.get(f"{stack.api_url}/v1/cluster", headers=stack.headers, timeout=60)
        assert outage.status_code == 200, outage.text
        assert outage.json()["reachable"] is False, outage.text
    finally:
        open_all(gate)
    time.sleep(max(0.0, DOWN_S - (time.monotonic() - t_kill)))
    stack.start(head)  # a kill does not trigger the restart policy

    def ready() -> bool:
        alive = {n.node_id: n for n in stack.cluster_view(timeout=2.0).alive}
        heads = [i for i, n in alive.items() if n.is_head]
        return worker_ids <= set(alive) and old_head not in alive and len(heads) == 1
    wait_for(ready, "the same workers reconnected to the restarted head", 300, poll_s=1)
    t_ready = time.monotonic()

    seen: list[str] = []

    def run_finished() -> bool:
        status = client.run(run_id)["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status == "finished"
    wait_for(run_finished, lambda: f"the run in flight finished (statuses: {seen})", 900,
             poll_s=2)
    left = AFTER_S - (time.monotonic() - t_ready)
    if left > 0:
        time.sleep(left)
    requests = load.stop()
    t_end = time.monotonic()

    windows = {"before": load.between(t_load, t_kill), "during": load.between(t_kill, t_ready),
               "after": load.between(t_ready, t_end)}
    final = client.run(run_id)
    journaled = journal(stack, run_id)
    figures: dict[str, Any] = {
        "fault": "head container killed (docker kill) and started again, GCS state in Redis",
        "down_s": DOWN_S, "seconds_until_ready": round(t_ready - t_kill, 2),
        "requests": summary(requests), **{w: summary(r) for w, r in windows.items()},
        "run_units": len(journaled), "units_before_kill": len(journaled_before),
        "run_statuses_seen": seen,
        "launcher_attempts": int((final.get("launcher") or {}).get("attempt") or 0)}
    write_figures(stack, "compose_fault_head", figures)
    assert windows["before"], figures
    assert windows["after"], figures
    assert len(windows["during"]) >= 20, figures  # the load ran through the outage
    assert figures["before"]["failed"] == 0, figures
    assert figures["after"]["failed"] == 0, figures
    assert figures["during"]["failed"] <= 0.01 * len(windows["during"]), figures
    assert "failed" not in seen, seen
    assert "interrupted" not in seen, seen
    assert len(journaled) == units_total
    assert {k: journaled[k] for k in journaled_before} == journaled_before
    assert {u["status"] for u in journaled.values()} == {"ok"}
    after = stack.cluster_view()
    assert worker_ids <= {n.node_id for n in after.alive}  # the very same workers
    assert old_head in {n.node_id for n in after.dead}
    assert json.loads(json.dumps(client.cluster()))["reachable"] is True
    assert WORKER_CPUS * 2 <= sum(n.total("cpus") for n in after.alive)
