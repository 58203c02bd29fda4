"""Runs in their own processes: start, follow, cancel and resume ``fleetlearn train``.

A run started through the API never trains inside the server: the launcher writes the
checked :class:`RunConfig` to ``<folder>/<id>.yaml`` and starts ``python -m fleetlearn
train --config ... --run-id ID`` in a new process group (its output in
``<folder>/<id>.log``). Once the child has recorded the run, the launcher stores the
process in the registry (``runs.launcher``)::

    {"pid": 4242, "host": "node-1", "log": ".../3f2a9c01b7de.log", "status": "running",
     "started_at": "2026-12-01T20:00:00+00:00", "exit_code": null, "cancelled": false}

so any API process that reaches the registry reports on it, and any API process on the
same host cancels it. A run still ``running`` whose recorded process is gone from this
host (the server and its child killed, the machine rebooted) is marked ``interrupted``
("driver died") when it is read, and :meth:`Launcher.resume` starts ``fleetlearn train
--resume ID`` for it.

Between the start and the child's first write (it checks its data and joins Ray first)
the run exists only in the process that started it: :meth:`Launcher.starting`.
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
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import yaml

from fleetlearn.errors import ConflictError, FleetlearnError, NotFoundError

if TYPE_CHECKING:
    from fleetlearn.registry import Registry, Run
    from fleetlearn.training._config import RunConfig

__all__ = ["CANCEL_GRACE_S", "LaunchedRun", "Launcher", "this_host"]

log = logging.getLogger("fleetlearn.training")

#: How long a cancelled run may take to stop by itself (SIGINT: journal, mark
#: interrupted, shut its Ray down) before its process group is terminated.
CANCEL_GRACE_S = 20.0
#: How often the watcher looks for the run the child records.
_POLL_S = 0.2
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: The driver-died mark, also what a reader finds in ``Run.error``.
DRIVER_DIED = "driver died: its process {pid} on {host} is gone; resume it"


def this_host() -> str:
    """The name launcher records carry, compared to decide who may signal a process."""
    return socket.gethostname()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def last_error(log_path: Path) -> str | None:
    """The line of a training log that says why it stopped (``error: ...`` first)."""
    try:
        with log_path.open("rb") as fh:
            fh.seek(max(0, log_path.stat().st_size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [_ANSI_RE.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:"):].strip()[:1000]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception|Interrupt)\b", line):
            return line[:1000]
    return lines[-1][:1000] if lines else None


def _alive(pid: int, run_id: str) -> bool:
    """Whether ``pid`` on this host is still the training process of ``run_id``.

    PIDs get reused: the command line must name the run too.
    """
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and run_id in " ".join(proc.cmdline())
    except (psutil.Error, OSError):
        return False


@dataclass
class LaunchedRun:
    """A training process this launcher started (and watches until it exits)."""

    run_id: str
    proc: subprocess.Popen[bytes]
    log: Path
    started_at: str
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False
    recorded: bool = False  # the launcher record is in the registry

    def record(self, status: str = "running", exit_code: int | None = None,
               error: str | None = None) -> dict[str, Any]:
        """The launcher record of this process, as stored in ``runs.launcher``."""
        return {"pid": self.proc.pid, "host": this_host(), "log": str(self.log),
                "status": status, "started_at": self.started_at, "exit_code": exit_code,
                "cancelled": self.cancelled, "error": error}


class Launcher:
    """Starts ``fleetlearn train`` processes and supervises them through the registry.

    Parameters
    ----------
    registry : Registry
        Where runs and their launcher records are.
    folder : Path
        Run files and logs (``<home>/runs`` for the server).
    ray_address : str, optional
        Passed to the child as ``--address``; its own embedded Ray otherwise.
    registry_url : str, optional
        The registry the child opens (through the environment, not argv, so a
        PostgreSQL password stays out of ``ps``); ``registry.url`` by default.
    """

    def __init__(self, registry: Registry, folder: Path, *, ray_address: str | None = None,
                 registry_url: str | None = None) -> None:
        self.registry = registry
        self.folder = Path(folder)
        self.ray_address = ray_address
        self.registry_url = registry_url or (registry.url if "***" not in registry.url
                                             else None)
        self.children: dict[str, LaunchedRun] = {}
        self.lock = threading.Lock()

    # ------------------------------------------------------------ starting

    def start(self, config: RunConfig) -> LaunchedRun:
        """Start a new run of ``config`` (already checked) under a fresh id."""
        self.folder.mkdir(parents=True, exist_ok=True)
        run_id = uuid.uuid4().hex[:12]
        run_file = self.folder / f"{run_id}.yaml"
        run_file.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return self._spawn(run_id, ["--config", str(run_file), "--run-id", run_id])

    def resume(self, run_id: str) -> LaunchedRun:
        """Resume a stopped run (``interrupted`` or ``failed``) in a new process.

        Raises
        ------
        NotFoundError
            No such run.
        ConflictError
            The run is running or finished: nothing to resume.
        """
        run = self.check(self.registry.get_run(run_id))
        if run.status not in ("interrupted", "failed"):
            raise ConflictError(f"Run {run.id} is {run.status}: only an interrupted or failed "
                                "run can be resumed.")
        self.folder.mkdir(parents=True, exist_ok=True)
        child = self._spawn(run.id, ["--resume", run.id])
        # The run is already recorded: its launcher record can be written at once.
        self.registry.set_run_launcher(run.id, child.record())
        child.recorded = True
        return child

    def _spawn(self, run_id: str, args: list[str]) -> LaunchedRun:
        log_path = self.folder / f"{run_id}.log"
        cmd = [sys.executable, "-m", "fleetlearn", "train", *args, "--quiet"]
        if self.ray_address:
            cmd += ["--address", self.ray_address]
        env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="120",
                   FLEETLEARN_ARTIFACTS=str(self.registry.artifacts.root))
        if self.registry_url:
            env["FLEETLEARN_REGISTRY_URL"] = self.registry_url
        with log_path.open("ab") as out:
            out.write(f"$ {' '.join(cmd)}\n".encode())
            out.flush()
            # A new session: Ctrl-C on the server does not reach it, and cancel can stop
            # the whole group (the driver and an embedded Ray it started).
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=self.folder, env=env,
                                    start_new_session=True)
        child = LaunchedRun(run_id, proc, log_path, _now())
        with self.lock:
            self.children[run_id] = child
        threading.Thread(target=self._watch, args=(child,), daemon=True,
                         name=f"fleetlearn-run-{run_id}").start()
        return child

    def _watch(self, child: LaunchedRun) -> None:
        """Record the process in the registry once the run exists; settle it at exit."""
        while child.proc.poll() is None and not child.recorded:
            try:
                self.registry.set_run_launcher(child.run_id, child.record())
                child.recorded = True
            except NotFoundError:
                time.sleep(_POLL_S)  # the child is still checking its data
            except FleetlearnError as exc:  # a registry hiccup: try again
                log.warning("run %s: could not record its process yet: %s", child.run_id, exc)
                time.sleep(_POLL_S)
        code = child.proc.wait()
        try:
            error = last_error(child.log) if code != 0 else None
            self._settle(child.run_id, code, error, child.cancelled)
            with contextlib.suppress(NotFoundError):
                status = "cancelled" if child.cancelled else "exited"
                self.registry.set_run_launcher(child.run_id, child.record(status, code, error))
        except Exception as exc:  # noqa: BLE001 - a registry hiccup must not kill the thread
            log.warning("run %s: could not record how its process ended: %s", child.run_id, exc)
        finally:
            child.done.set()

    def _settle(self, run_id: str, code: int | None, error: str | None,
                cancelled: bool) -> None:
        """A run whose process is gone but still says 'running': record how it ended."""
        try:
            run = self.registry.get_run(run_id)
        except NotFoundError:
            return
        if run.status != "running":
            return
        if cancelled:
            self.registry.set_run_status(run_id, "interrupted",
                                         error="cancelled through the API")
        else:
            self.registry.set_run_status(
                run_id, "failed", error=f"the training process exited with code {code}"
                + (f": {error}" if error else "") + "; resume with 'fleetlearn train --resume "
                f"{run_id}'")

    # ------------------------------------------------------------ reading

    def child(self, run_id: str) -> LaunchedRun | None:
        """The process of ``run_id`` if this launcher started it."""
        with self.lock:
            return self.children.get(run_id)

    def starting(self) -> list[str]:
        """Runs this launcher started whose process runs but has not recorded them yet."""
        with self.lock:
            return [rid for rid, c in self.children.items()
                    if c.proc.poll() is None and not c.recorded]

    def check(self, run: Run) -> Run:
        """``run``, marked ``interrupted`` ("driver died") if its process is gone.

        Only for a run whose recorded process was on this host and that no thread of
        this launcher watches (that thread records the exit itself).
        """
        info = run.launcher
        if (run.status != "running" or not info or info.get("host") != this_host()
                or self.child(run.id) is not None or info.get("status") != "running"):
            return run
        pid = int(info.get("pid") or 0)
        if _alive(pid, run.id):
            return run
        error = DRIVER_DIED.format(pid=pid, host=info.get("host"))
        self.registry.set_run_launcher(run.id, {**info, "status": "died"})
        log.warning("run %s: %s", run.id, error)
        return self.registry.set_run_status(run.id, "interrupted", error=error)

    def process(self, run_id: str, run: Run | None = None) -> dict[str, Any] | None:
        """The training process of a run (pid, host, running, exit code, log), or None."""
        child = self.child(run_id)
        if child is not None:
            code = child.proc.poll()
            return {"pid": child.proc.pid, "host": this_host(), "running": code is None,
                    "exit_code": code, "log": str(child.log), "started_at": child.started_at,
                    "cancelled": child.cancelled,
                    "error": last_error(child.log) if code not in (None, 0) else None}
        info = run.launcher if run is not None else None
        if not info:
            return None
        running = info.get("status") == "running"
        if running and info.get("host") == this_host():
            running = _alive(int(info.get("pid") or 0), run_id)
        return {"pid": int(info.get("pid") or 0), "host": info.get("host"), "running": running,
                "exit_code": info.get("exit_code"), "log": info.get("log", ""),
                "started_at": info.get("started_at"),
                "cancelled": bool(info.get("cancelled")), "error": info.get("error")}

    # ------------------------------------------------------------ stopping

    def cancel(self, run_id: str) -> bool:
        """Stop a run's process (SIGINT, then its group); False when none is running.

        Raises
        ------
        ConflictError
            The process runs on another host: only a server there can signal it.
        """
        child = self.child(run_id)
        if child is not None:
            if child.proc.poll() is not None:
                return False
            child.cancelled = True
            pid = child.proc.pid

            def exited() -> bool:
                return child.proc.poll() is not None
        else:
            try:
                run = self.registry.get_run(run_id)
            except NotFoundError:
                return False
            info = run.launcher
            if not info or info.get("status") != "running" or run.status != "running":
                return False
            if info.get("host") != this_host():
                raise ConflictError(
                    f"Run {run_id} runs on host '{info.get('host')}' (pid {info.get('pid')}), "
                    f"not on this server's host '{this_host()}': cancel it through a server "
                    "on that host.")
            pid = int(info.get("pid") or 0)
            if not _alive(pid, run_id):
                return False
            self.registry.set_run_launcher(run_id, {**info, "cancelled": True})

            def exited() -> bool:
                return not _alive(pid, run_id)

        # SIGINT first: the driver journals what finished, marks the run interrupted and
        # shuts down the Ray it started. Only then force the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        for sig, wait_s in ((None, CANCEL_GRACE_S), (signal.SIGTERM, 5.0),
                            (signal.SIGKILL, 5.0)):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)
            deadline = time.monotonic() + wait_s
            while not exited() and time.monotonic() < deadline:
                time.sleep(0.1)
            if exited():
                break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)  # leftovers of an embedded Ray, if any
        if child is not None:
            child.done.wait(10)
        else:
            self._settle(run_id, None, None, cancelled=True)
            with contextlib.suppress(NotFoundError):
                info = self.registry.get_run(run_id).launcher or {}
                self.registry.set_run_launcher(run_id, {**info, "status": "cancelled"})
        return True
