"""A worker finds the head by itself: ``fleetlearn cluster join``.

The head's ``host:port`` comes from ``--address``, else ``$FLEETLEARN_CLUSTER_ADDRESS``,
else the address file (``--address-file``, ``$FLEETLEARN_CLUSTER_ADDRESS_FILE``, or
``<FLEETLEARN_HOME>/cluster/address``). Until the head's GCS answers, the worker waits
with exponential backoff (0.25 s doubling up to 5 s), re-reading the file each time
(a restarted head may have written a new one), then *becomes* ``ray start --address
... --block`` by ``exec``: the same PID, so a SIGTERM sent to it (``docker stop``,
``fleetlearn cluster down``) reaches Ray's own shutdown directly. Nothing here needs
shared state with the head beyond the address, which is what a container needs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetlearn.cluster._state import (
    ADDRESS_ENV,
    ADDRESS_FILE,
    ADDRESS_FILE_ENV,
    default_cluster_dir,
)
from fleetlearn.errors import ClusterError
from fleetlearn.security import check_tls, ray_client_env

__all__ = ["resolve_address", "wait_for_head", "head_answers", "ray_executable", "join",
           "parse_address"]


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` → ``(host, port)``, or a ClusterError naming what is wrong.

    Examples
    --------
    >>> parse_address("127.0.1.1:6380")
    ('127.0.1.1', 6380)
    """
    text = address.strip()
    if text.startswith("ray://"):
        raise ClusterError(f"The cluster address {address!r} is a Ray Client address; "
                           "give the head's GCS address host:port instead.")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"The cluster address must be host:port (e.g. 127.0.1.1:6380). "
                           f"Got {address!r} instead.")
    return host, int(port)


def _address_file(address_file: Path | str | None) -> Path:
    if address_file:
        return Path(address_file)
    if os.environ.get(ADDRESS_FILE_ENV):
        return Path(os.environ[ADDRESS_FILE_ENV])
    return default_cluster_dir() / ADDRESS_FILE


def resolve_address(address: str | None = None,
                    address_file: Path | str | None = None) -> str | None:
    """The head address to join: the argument, else ``$FLEETLEARN_CLUSTER_ADDRESS``,
    else the address file's first line; None when none is there (yet)."""
    for candidate in (address, os.environ.get(ADDRESS_ENV)):
        if candidate and candidate.strip():
            parse_address(candidate)
            return candidate.strip()
    try:
        text = _address_file(address_file).read_text().strip()
    except OSError:
        return None
    if not text:
        return None
    parse_address(text)
    return text


def head_answers(address: str, timeout: float = 2.0,
                 env: dict[str, str] | None = None) -> bool:
    """True when the GCS at ``address`` answers a health check (TCP first: cheap).

    ``env``: the TLS and token variables to ask with (default: this process's).

    Raises
    ------
    ClusterError
        The head answers but its TLS and this process's disagree (another CA, no
        certificate): waiting longer would not help.
    """
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    try:
        # Ray's client hangs on a TLS mismatch: a handshake tells at once.
        check_tls(address, env, timeout=timeout, who="this node")
    except ClusterError as exc:
        if str(exc).startswith("Cannot reach"):
            return False
        raise
    from ray._raylet import GcsClient  # only here: the TCP check above needs no Ray

    try:
        with ray_client_env(env):
            GcsClient(address=address).check_alive([], timeout=timeout)
    except Exception:  # RpcError and friends: not up yet
        return False
    return True


def wait_for_head(address: str | None = None, address_file: Path | str | None = None,
                  timeout: float = 120.0, *, on_wait: Callable[[str, float], None] | None = None,
                  probe: Callable[[str], bool] = head_answers) -> str:
    """Block until a head answers; return its address.

    The address is resolved again on every try (``resolve_address``), so a worker
    started before the head, or a head restarted on a new port, is found.

    Raises
    ------
    ClusterError
        No address after ``timeout`` seconds, or nothing answers at it.
    """
    deadline = time.monotonic() + timeout
    delay = 0.25
    last: str | None = None
    while True:
        last = resolve_address(address, address_file) or last
        if last is not None and probe(last):
            return last
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if on_wait is not None:
            on_wait(last or "(no address yet)", delay)
        time.sleep(min(delay, left))
        delay = min(delay * 2, 5.0)
    if last is None:
        raise ClusterError(
            f"No cluster address after {timeout:g} s: pass --address, set {ADDRESS_ENV}, or "
            f"write host:port to {_address_file(address_file)}.")
    raise ClusterError(f"No Ray head answers at {last} after {timeout:g} s; "
                       "start it with 'fleetlearn cluster up' or check the address.")


def ray_executable() -> str:
    """The ``ray`` script next to this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else "ray"


def join(address: str | None = None, *, address_file: Path | str | None = None,
         node_ip: str | None = None, ray_args: list[str] | None = None,
         timeout: float = 120.0, on_wait: Callable[[str, float], None] | None = None,
         relay_logs: bool = False) -> int:
    """Wait for the head, then replace this process with ``ray start --address A --block``.

    Never returns (``os.execv``); raises ClusterError when no head answers in time.
    ``relay_logs=True`` (``--log-format json``): ``ray start`` runs as a child instead,
    each line it prints becomes a log record (logger ``ray.start``), SIGTERM and SIGINT
    are passed on to it, and its exit code is returned.
    """
    found = wait_for_head(address, address_file, timeout, on_wait=on_wait)
    argv = [ray_executable(), "start", "--address", found, "--block", "--disable-usage-stats"]
    if node_ip:
        argv += ["--node-ip-address", node_ip]
    argv += list(ray_args or [])
    if relay_logs:
        return _relayed(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv) if os.path.isabs(argv[0]) else os.execvp(argv[0], argv)
    return 0  # not reached: execv does not return


def _relayed(argv: list[str]) -> int:
    """Run ``argv`` with its output turned into log records; pass signals on to it.

    ``ray start`` prints for people and has no JSON output; a log collector reading
    this process must get log records only.
    """
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    logger = logging.getLogger("ray.start")

    def pump(stream: Any, name: str) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if line.strip():
                logger.info(_ANSI_RE.sub("", line), extra={"stream": name})

    pumps = [threading.Thread(target=pump, args=(proc.stdout, "stdout"), daemon=True),
             threading.Thread(target=pump, args=(proc.stderr, "stderr"), daemon=True)]
    for thread in pumps:
        thread.start()
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for thread in pumps:
        thread.join(5)
    logger.info("ray start exited with code %d", code, extra={"exit_code": code})
    return code if code >= 0 else 128 - code


_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
