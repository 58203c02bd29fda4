"""Connecting to Ray: the embedded local instance by default, a cluster by address."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator

import ray

from fleetlearn.errors import ClusterError

__all__ = ["connect_ray", "check_address", "keep_sigterm_handler"]


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
