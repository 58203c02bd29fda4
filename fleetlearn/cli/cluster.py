"""``fleetlearn cluster up|status|down|join``: a Ray cluster of processes on this machine.

``up`` starts a head and N workers in the background (Ray TLS and token
authentication on unless ``--insecure``) (separate ``ray start --block``
processes with their own loopback IPs, HOMEs and temp folders) and waits until Ray
reports every node alive; ``status`` reads Ray's own view; ``down`` stops exactly
what ``up`` started, by PID. ``join`` is how a worker finds the head (also alone, in
a container): address from ``--address``, ``$FLEETLEARN_CLUSTER_ADDRESS`` or the
address file, retried with backoff.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import psutil
import typer

from fleetlearn.cli._common import (
    JsonOpt,
    LogFormatOpt,
    console,
    note,
    print_json,
    rows_table,
    setup_logs,
)
from fleetlearn.cluster import (
    STOP_GRACE_S,
    LocalCluster,
    NodeOptions,
    cluster_view,
    default_cluster_dir,
    join,
    node_rows,
    parse_size,
    read_state,
    status_record,
)
from fleetlearn.errors import ClusterError, ConfigError

app = typer.Typer(help="A Ray cluster of processes on this machine: up, status, env, down, "
                       "join.",
                  no_args_is_help=True)

DirOpt = Annotated[Path | None, typer.Option(
    "--dir", help="The cluster's folder (state, address file, logs); "
                  "<FLEETLEARN_HOME>/cluster by default.")]


def _print_status(record: dict, title: str) -> None:
    console.print(rows_table(node_rows(record), title=title))
    res = record["resources"]
    console.print(f"{record['nodes_alive']} alive, {record['nodes_dead']} dead; "
                  f"CPUs {res['cpus']['used']:g}/{res['cpus']['total']:g} in use; "
                  f"pending tasks {record['pending_tasks']}", highlight=False)


@app.command("up")
def up_command(
    workers: Annotated[int, typer.Option(help="Worker nodes besides the head.")] = 2,
    cpus_per_node: Annotated[int, typer.Option(help="CPUs each node advertises.")] = 1,
    memory_per_node: Annotated[str, typer.Option(
        help="Memory cap each node advertises (e.g. 2GiB).")] = "2GiB",
    object_store_per_node: Annotated[str, typer.Option(
        help="Object store of each node (at least 80MiB).")] = "100MiB",
    redis: Annotated[str | None, typer.Option(
        help="GCS fault tolerance: keep the head's state in this Redis "
             "(redis://host:port), so a restarted head takes the cluster back.")] = None,
    port: Annotated[int | None, typer.Option(help="The head's GCS port (default: a free "
                                             "one; never 6379).")] = None,
    head_ip: Annotated[str, typer.Option(help="The head's loopback IP (not 127.0.0.1: Ray "
                                         "replaces it with the machine's address).")
                       ] = "127.0.1.1",
    ip_prefix: Annotated[str, typer.Option(help="Workers get <prefix>.2, <prefix>.3 ...")
                         ] = "127.0.0",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every node.")] = 180.0,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="No Ray TLS and no token: anyone who reaches the nodes' ports "
                           "can run code on them.")] = False,
    folder: DirOpt = None,
    json_out: JsonOpt = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Start a head and N workers in the background; wait until all are alive (Ray TLS
    and token authentication on, unless --insecure)."""
    setup_logs(log_format)
    if workers < 0:
        raise ConfigError(f"The 'workers' option must be an int in the range [0, inf). "
                          f"Got {workers} instead.")
    if port == 6379:
        raise ConfigError("Port 6379 is Redis's; leave --port out for a free one.")
    options = NodeOptions(num_cpus=cpus_per_node,
                          memory=parse_size(memory_per_node, "memory_per_node"),
                          object_store_memory=parse_size(object_store_per_node,
                                                         "object_store_per_node"))
    cluster = LocalCluster(folder, options=options, redis_url=redis, head_ip=head_ip,
                           ip_prefix=ip_prefix, port=port, secure=not insecure)
    cluster.preflight()
    if insecure:
        note("warning: --insecure: no Ray TLS and no token authentication; any process "
             "that reaches the GCS, node manager and object manager ports of these nodes "
             "can join the cluster and run code on it", level="warning",
             logger="fleetlearn.cluster")
    progress = None if json_out else (lambda text: note(f"  {text}",
                                                        logger="fleetlearn.cluster"))
    if not json_out:
        note(f"starting a head and {workers} worker(s) in {cluster.folder} ...",
             logger="fleetlearn.cluster")
    state = cluster.up(workers, timeout=timeout, on_progress=progress)
    record = status_record(cluster.view(), state)
    if json_out:
        print_json(record)
        return
    _print_status(record, f"cluster at {state.address}")
    _print_security(record)
    console.print(f"pass --address {state.address} (e.g. fleetlearn train data.csv -t y "
                  f"--address {state.address}), or:\n  export RAY_ADDRESS={state.address}\n"
                  "a driver with another FLEETLEARN_HOME or on another machine: "
                  "eval \"$(fleetlearn cluster env)\"\n"
                  "stop it with: fleetlearn cluster down", highlight=False)


@app.command("status")
def status_command(
    folder: DirOpt = None,
    address: Annotated[str | None, typer.Option(
        help="Ask this head (host:port) instead of the recorded cluster's.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Every node as Ray sees it: id, IP, alive/dead, PID, resources; pending tasks."""
    state = read_state(folder or default_cluster_dir())
    if address is None:
        if state is None:
            raise ClusterError(f"No cluster is recorded in {folder or default_cluster_dir()}; "
                               "start one with 'fleetlearn cluster up' or pass --address.")
        address = state.address
    # The recorded cluster's certificates and token (another --address: this process's).
    env = state.security_env if state is not None and state.address == address else None
    record = status_record(cluster_view(address, env=env), state)
    if json_out:
        print_json(record)
        return
    _print_status(record, f"cluster at {address}")
    _print_security(record)
    console.print(f"address: {address}  (export RAY_ADDRESS={address})", highlight=False)


def _print_security(record: dict) -> None:
    security = record.get("security")
    if security is None:
        return
    if security["tls"] or security["token"]:
        console.print(f"Ray TLS {'on' if security['tls'] else 'OFF'} (certificates in "
                      f"{security['certs_dir']}), token authentication "
                      f"{'on' if security['token'] else 'OFF'} (token in "
                      f"{security['token_file']})", highlight=False)
    else:
        console.print("warning: Ray TLS and token authentication are OFF (--insecure)",
                      highlight=False)
    for warning in security["warnings"]:
        console.print(f"warning: {warning}", highlight=False)


@app.command("env")
def env_command(
    folder: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print the variables a driver needs for the recorded cluster (address, TLS
    certificates, token file) as export lines: eval "$(fleetlearn cluster env)"."""
    path = folder or default_cluster_dir()
    state = read_state(path)
    if state is None:
        raise ClusterError(f"No cluster is recorded in {path}; start one with "
                           "'fleetlearn cluster up'.")
    if json_out:
        print_json(state.env)
        return
    for key, value in state.env.items():
        print(f"export {key}={shlex.quote(value)}")


@app.command("down")
def down_command(
    folder: DirOpt = None,
    grace: Annotated[float, typer.Option(
        help="Seconds between SIGTERM and SIGKILL for each node.")] = STOP_GRACE_S,
    json_out: JsonOpt = False,
) -> None:
    """Stop exactly the processes 'up' started (SIGTERM, then SIGKILL after the grace)."""
    cluster = LocalCluster.attach(folder)
    stopped = cluster.stop(grace=grace)
    state = cluster.state
    assert state is not None
    left = [n for n in state.nodes if _alive(n.pid, n.started_at)]
    if left:
        raise ClusterError("Still running after down: " + ", ".join(
            f"{n.name} (pid {n.pid})" for n in left))
    cluster.forget()
    if json_out:
        print_json([s.__dict__ for s in stopped])
        return
    console.print(rows_table([{"node": s.name, "ip": s.ip, "pid": str(s.pid), "stopped by": s.how,
                               "processes": str(s.processes), "seconds": f"{s.seconds:.1f}"}
                              for s in stopped], title=f"stopped the cluster at {state.address}"))


def _alive(pid: int, started_at: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return (abs(proc.create_time() - started_at) <= 1.0
                and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@app.command("join", context_settings={"allow_extra_args": True,
                                       "ignore_unknown_options": True})
def join_command(
    ctx: typer.Context,
    address: Annotated[str | None, typer.Option(
        help="The head's host:port; else $FLEETLEARN_CLUSTER_ADDRESS, else the address "
             "file.")] = None,
    address_file: Annotated[Path | None, typer.Option(
        help="File holding host:port; else $FLEETLEARN_CLUSTER_ADDRESS_FILE, else "
             "<FLEETLEARN_HOME>/cluster/address.")] = None,
    node_ip_address: Annotated[str | None, typer.Option(
        help="This node's IP as the cluster sees it.")] = None,
    timeout: Annotated[float, typer.Option(
        help="Seconds to wait for the head (retried with backoff).")] = 300.0,
    log_format: LogFormatOpt = None,
) -> None:
    """Wait for the head, then run 'ray start --address ... --block' (extra arguments
    after -- go to ray start)."""
    fmt = setup_logs(log_format)

    def waiting(addr: str, delay: float) -> None:
        note(f"waiting for the head at {addr} (retry in {delay:.2g} s)",
             logger="fleetlearn.cluster", address=addr, retry_in_s=delay)

    code = join(address, address_file=address_file, node_ip=node_ip_address,
                ray_args=list(ctx.args), timeout=timeout, on_wait=waiting,
                relay_logs=fmt == "json")
    if code:
        raise typer.Exit(code)
