"""Connecting to Ray: the embedded local instance by default, a cluster by address."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import ray

from fleetlearn.cluster import recorded_security_env
from fleetlearn.errors import ClusterError
from fleetlearn.logs import route_ray_logs
from fleetlearn.security import preflight_ray, use_ray_security

__all__ = ["connect_ray", "check_address", "earlier_attempts", "keep_sigterm_handler"]


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at a ``host:port`` Ray address.

    ``ray.init`` on a dead address retries for minutes; a TCP connect tells in
    seconds. Client addresses (``ray://``) are left to Ray.
    """
    if address.startswith("ray://") or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        port_no = int(port)
    except ValueError as exc:
        raise ClusterError(
            f"Bad Ray address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:6380."
        ) from exc
    try:
        with socket.create_connection((host, port_no), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(
            f"Cannot reach the Ray cluster at {address} ({exc.strerror or exc}). Start it with "
            "'ray start --head --port PORT', check --address / RAY_ADDRESS, or leave the "
            "address out to use embedded local Ray."
        ) from exc


def connect_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Make sure this process is connected to Ray; return True if this call started it.

    ``address=None`` uses ``$RAY_ADDRESS`` when set, else starts an embedded local
    instance. An embedded instance is always started with ``address="local"``:
    a bare ``ray.init()`` would join whatever cluster was last recorded on this
    machine, and hang if that one is dead.
    """
    if ray.is_initialized():
        _check_same_cluster(address)
        return False
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    if address in ("local", "auto"):
        if address == "auto":
            raise ClusterError(
                "Ray address 'auto' is ambiguous here: pass the head's HOST:PORT, or leave the "
                "address out for embedded local Ray."
            )
        with _quiet_ray_logs(), keep_sigterm_handler():
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        return True
    check_address(address)
    if not address.startswith("ray://"):
        use_cluster_security(address)
        # ray.init hangs for a minute or more on a refused certificate: a bounded
        # handshake and token check first turn that into one clear error.
        preflight_ray(address)
    try:
        with _quiet_ray_logs(), keep_sigterm_handler():
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ... by version
        text = " ".join(str(exc).split())
        hint = ""
        if any(w in text.lower() for w in ("auth", "token", "unauthenticated")):
            hint = (" The cluster uses Ray token authentication: give this machine the head's "
                    "token (RAY_AUTH_MODE=token with RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH; "
                    "'ray get-auth-token' on the head prints it).")
        raise ClusterError(f"Cannot join the Ray cluster at {address}: {text[:500]}.{hint}") \
            from exc
    return True


def use_cluster_security(address: str) -> None:
    """A driver on the cluster's machine finds its certificates and token by itself:
    when this process sets neither RAY_USE_TLS nor RAY_AUTH_MODE and the cluster
    recorded by ``fleetlearn cluster up`` (same FLEETLEARN_HOME) is at ``address``,
    take that cluster's variables."""
    if any(os.environ.get(k) for k in ("RAY_USE_TLS", "RAY_AUTH_MODE")):
        return
    found = recorded_security_env(address)
    if found:
        use_ray_security(found)


def _check_same_cluster(address: str | None) -> None:
    """An explicit address must name the cluster this process is already connected to."""
    if not address or address in ("local", "auto") or address.startswith("ray://"):
        return
    current = ray.get_runtime_context().gcs_address
    if _same_address(current, address):
        return
    check_address(address)  # a dead address gets the usual "cannot reach" message
    raise ClusterError(
        f"This process is already connected to the Ray cluster at {current}, not {address}: "
        "call ray.shutdown() first, or leave the address out to use the connected cluster."
    )


def _same_address(a: str, b: str) -> bool:
    def norm(x: str) -> tuple[str, str]:
        host, _, port = x.rpartition(":")
        host = {"localhost": "127.0.0.1"}.get(host, host)
        return host, port

    return norm(a) == norm(b)


@contextlib.contextmanager
def keep_sigterm_handler() -> Iterator[None]:
    """Give SIGTERM back the handler it had before ``ray.init`` (main thread only).

    ``ray.init`` sets a Python handler (``sys.exit(15)``) and its core worker then
    installs a C++ failure handler over it that logs "SIGTERM received" and aborts the
    process (exit 134: measured on Ray 2.60): nothing journaled, no ``ray.shutdown``,
    an embedded Ray's processes orphaned. With the previous handler back, SIGTERM
    stops a driver the way the command chose (:class:`~fleetlearn.errors.Terminated`,
    like Ctrl-C); with none chosen, Python's default (the process ends at once).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _quiet_ray_logs() -> Iterator[None]:
    """Keep Ray's start-up chatter (INFO lines, the token-auth notice) off the terminal.

    fleetlearn shows its own progress; Ray's messages stay in its session logs.
    """
    logger = logging.getLogger("ray")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
        # --log-format json: Ray's records through fleetlearn's handler, as JSON too
        # (ray.init may have set up its own handler again).
        route_ray_logs()


#: How long the driver waits, once, for Ray to report a failed attempt it does not know
#: yet: workers and the driver send task events every second
#: (``RAY_task_events_report_interval_ms``, default 1000).
_TASK_EVENTS_LAG_S = 1.5


def earlier_attempts(attempts: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """The attempts before the last one of tasks that Ray retried: node and error of each.

    Parameters
    ----------
    attempts : dict of str to int
        Task id (hex) -> how many attempts it took (the last one included; one more
        for a task lost on every attempt, to get them all).

    Returns
    -------
    dict of str to list of dict
        Task id -> ``[{"attempt", "node", "node_ip", "error"}, ...]`` for attempts
        ``1 .. n-1`` in order; an attempt Ray has no record of has ``node`` None. Empty
        when Ray's task events cannot be read (they are a diagnosis, never a reason to
        fail a run).

    Called only for units that ran more than once (after a lost worker or node), so a
    run without faults never pays for it. Ray's public state API
    (``ray.util.state.list_tasks``) serves these records only through the dashboard,
    which fleetlearn does not start; the GCS holds them either way and
    ``ray._private.state`` (what ``ray.timeline`` reads) reads them from there.
    """
    wanted = {t: n for t, n in attempts.items() if n > 1}
    if not wanted:
        return {}
    try:
        found = _failed_attempts(wanted)
        if not _complete(found, wanted):
            time.sleep(_TASK_EVENTS_LAG_S)  # the failure may not be reported yet
            found = _failed_attempts(wanted)
        ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
    except Exception:  # noqa: BLE001 - a diagnosis must not fail the run
        return {}
    out = {}
    for task_id, n in wanted.items():
        known = found.get(task_id, {})
        out[task_id] = [
            {"attempt": a + 1, "node": known.get(a, {}).get("node"),
             "node_ip": ips.get(known.get(a, {}).get("node") or ""),
             "error": known.get(a, {}).get("error")}
            for a in range(n - 1)]
    return out


def _complete(found: dict[str, dict[int, dict[str, Any]]], wanted: dict[str, int]) -> bool:
    """Every wanted attempt is known with its node and its failure."""
    return all(found.get(t, {}).get(a, {}).get("failed") and found[t][a].get("node")
               for t, n in wanted.items() for a in range(n - 1))


def _failed_attempts(wanted: dict[str, int]) -> dict[str, dict[int, dict[str, Any]]]:
    """Task id -> attempt number (0-based) -> node, error and whether Ray recorded the
    attempt's failure, read from the GCS."""
    # Here, not at the top: Ray's private state module is needed only after a fault.
    from ray._private.state import state
    from ray.core.generated import common_pb2

    ids = {bytes.fromhex(t): t for t in wanted}
    failed = common_pb2.TaskStatus.Value("FAILED")
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for event in state._get_all_task_events():
        task_id = ids.get(event.task_id)
        if task_id is None or event.attempt_number >= wanted[task_id] - 1:
            continue
        updates = event.state_updates
        error = None
        if updates.HasField("error_info"):
            info = updates.error_info
            error = common_pb2.ErrorType.Name(info.error_type)
            if info.error_message:
                error += f": {info.error_message.strip().splitlines()[0][:300]}"
        node = updates.node_id.hex() if updates.node_id else None
        seen = out.setdefault(task_id, {}).setdefault(event.attempt_number, {})
        # One attempt can come as several events (the driver's, the worker's): merge.
        seen["node"] = node or seen.get("node")
        seen["error"] = error or seen.get("error")
        seen["failed"] = seen.get("failed") or failed in updates.state_ts_ns
    return out
