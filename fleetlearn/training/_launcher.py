"""Runs in their own processes: start, follow, cancel and resume ``fleetlearn train``.

A run started through the API never trains inside the server: the launcher writes the
checked :class:`RunConfig` to ``<folder>/<id>.yaml`` and starts ``python -m fleetlearn
train --config ... --run-id ID`` in a new process group (its output in
``<folder>/<id>.log``).

The starting window: the child checks its data and joins Ray before it records the
run, so for a few seconds there is no run row. The launcher writes a *launch* to the
registry as soon as the process is spawned (``launches``: run id, pid, host, log,
status ``starting``), so every API process sharing the registry reports the run as
``starting``; the launch becomes ``recorded`` once the run exists, ``failed`` (with
the child's error) or ``cancelled`` if it ended before, and a ``starting`` launch
whose process is gone from its host is reported ``failed``. A run that fails its
checks in the child never gets a run row, as before.

Once the child has recorded the run, the launcher stores the process in the registry
(``runs.launcher``)::

    {"pid": 4242, "host": "node-1", "log": ".../3f2a9c01b7de.log", "status": "running",
     "started_at": "2026-12-01T20:00:00+00:00", "exit_code": null, "cancelled": false,
     "attempt": 0, "last_error": null}

so any API process that reaches the registry reports on it, and any API process on the
same host cancels it. A run still ``running`` whose recorded process is gone from this
host (the server and its child killed, the machine rebooted) is marked ``interrupted``
("driver died") when it is read, and :meth:`Launcher.resume` starts ``fleetlearn train
--resume ID`` for it.

Auto-resume: when a child this launcher watches ends after recording its run, neither
finished nor stopped on purpose (killed by a signal, a crash, its Ray cluster lost or
unreachable), the launcher resumes it by itself, up to ``retries`` times with a pause
that doubles (:data:`RETRY_BACKOFF_S`, at most :data:`RETRY_BACKOFF_MAX_S`); each
attempt and its cause are in ``runs.launcher`` (``attempt``, ``last_error``). Never
after a cancel, Ctrl-C or SIGTERM (exit 130/143), a clean exit, or a fleetlearn error
other than an unreachable cluster (exit 2: bad input fails before the run exists
anyway). A resumed run trains only the units its journal lacks.
"""

from __future__ import annotations

import contextlib
import json
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import psutil
import yaml

from fleetlearn.errors import ConflictError, FleetlearnError, NotFoundError
from fleetlearn.logs import active_log_format, log_context

if TYPE_CHECKING:
    from fleetlearn.registry import Launch, Registry, Run
    from fleetlearn.training._config import RunConfig

__all__ = ["CANCEL_GRACE_S", "LaunchedRun", "Launcher", "RETRY_BACKOFF_S", "this_host"]

log = logging.getLogger("fleetlearn.training")

#: How long a cancelled run may take to stop by itself (SIGINT: journal, mark
#: interrupted, shut its Ray down) before its process group is terminated.
CANCEL_GRACE_S = 20.0
#: How often the watcher looks for the run the child records.
_POLL_S = 0.2
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: The driver-died mark, also what a reader finds in ``Run.error``.
DRIVER_DIED = "driver died: its process {pid} on {host} is gone; resume it"
#: A launch whose process vanished before it recorded its run.
LAUNCH_DIED = ("the training process {pid} on {host} died before it recorded the run")
#: Set on a child the launcher resumes by itself if it fails: how many automatic
#: resumes are left (the driver then leaves its run 'running' with the error).
RETRIES_LEFT_ENV = "FLEETLEARN_LAUNCHER_RETRIES_LEFT"
#: The first pause before an automatic resume; it doubles with each attempt.
RETRY_BACKOFF_S = 2.0
RETRY_BACKOFF_MAX_S = 30.0
#: Exit codes of a driver stopped on purpose (Ctrl-C, SIGTERM): never resumed by itself.
_STOPPED_CODES = (130, 143)
#: A fleetlearn error (exit 2) is bad input, except an unreachable cluster: these are
#: the first words of connect_ray's messages for that.
_CLUSTER_LOST = ("Cannot reach the Ray cluster", "Cannot join the Ray cluster")


def this_host() -> str:
    """The name launcher records carry, compared to decide who may signal a process."""
    return socket.gethostname()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _plain_lines(line: str) -> list[str]:
    """A log line as text: a JSON record (``--log-format json``) becomes its message,
    ``error: ...`` when the CLI's final error, then its traceback's lines."""
    if not line.startswith("{"):
        return [line]
    try:
        record = json.loads(line)
    except ValueError:
        return [line]
    if not isinstance(record, dict) or "message" not in record:
        return [line]
    message = str(record["message"])
    if record.get("logger") == "fleetlearn.cli" and record.get("level") == "ERROR":
        message = f"error: {message}"
    trace = [t.strip() for t in str(record.get("exc_info") or "").splitlines() if t.strip()]
    return [message, *trace]


def last_error(log_path: Path) -> str | None:
    """The line of a training log that says why it stopped (``error: ...`` first)."""
    try:
        with log_path.open("rb") as fh:
            fh.seek(max(0, log_path.stat().st_size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [_ANSI_RE.sub("", line).strip() for line in text.splitlines()]
    lines = [part for line in lines if line for part in _plain_lines(line)]
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


#: How long past its ``retry_at`` a retrying run may stay without a new process before
#: other API processes take its server for dead (and the run's driver with it).
_RETRY_GRACE_S = 60.0


def _retry_overdue(info: dict[str, Any]) -> bool:
    try:
        retry_at = datetime.fromisoformat(str(info.get("retry_at")))
    except ValueError:
        return True
    return datetime.now(UTC) > retry_at + timedelta(seconds=_RETRY_GRACE_S)


def _stop_group(pgid: int, grace_s: float = 3.0) -> None:
    """SIGTERM what is left in process group ``pgid``, SIGKILL it after ``grace_s``.

    The group of a launched child is its own (``start_new_session``); a PID cannot be
    reused while it names a live group, so this never reaches anyone else.
    """
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 1.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return  # the group is empty
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.1)


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
    new_run: bool = False  # started by start() (a launch row), not a resume
    attempt: int = 0  # automatic resumes before this process
    retry_pending: bool = False  # ended; an automatic resume waits for its backoff
    last_error: str | None = None  # why the previous process of the run ended

    def record(self, status: str = "running", exit_code: int | None = None,
               error: str | None = None) -> dict[str, Any]:
        """The launcher record of this process, as stored in ``runs.launcher``."""
        return {"pid": self.proc.pid, "host": this_host(), "log": str(self.log),
                "status": status, "started_at": self.started_at, "exit_code": exit_code,
                "cancelled": self.cancelled, "error": error, "attempt": self.attempt,
                "last_error": self.last_error}


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
    retries : int
        Automatic resumes of a run whose process died or lost its cluster (see the
        module docstring); 0 turns them off.
    backoff_s : float
        The pause before the first automatic resume; it doubles for each next one.
    log_format : {"text", "json"}, optional
        The child's ``--log-format``; this process's own (``fleetlearn serve
        --log-format``) by default. In json mode ``<id>.log`` holds JSON lines only
        (the child's stderr) and the command's output, its leaderboard, goes to
        ``<id>.out``.
    """

    def __init__(self, registry: Registry, folder: Path, *, ray_address: str | None = None,
                 registry_url: str | None = None, retries: int = 2,
                 backoff_s: float = RETRY_BACKOFF_S, log_format: str | None = None) -> None:
        self.registry = registry
        self.folder = Path(folder)
        self.ray_address = ray_address
        self.registry_url = registry_url or (registry.url if "***" not in registry.url
                                             else None)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.log_format = log_format
        self.children: dict[str, LaunchedRun] = {}
        self.lock = threading.Lock()
        self.closing = threading.Event()  # set by close(): no more automatic resumes

    # ------------------------------------------------------------ starting

    def start(self, config: RunConfig) -> LaunchedRun:
        """Start a new run of ``config`` (already checked) under a fresh id."""
        self.folder.mkdir(parents=True, exist_ok=True)
        run_id = uuid.uuid4().hex[:12]
        run_file = self.folder / f"{run_id}.yaml"
        run_file.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return self._spawn(run_id, ["--config", str(run_file), "--run-id", run_id],
                           new_run=True)

    def resume(self, run_id: str, *, attempt: int = 0,
               last_error: str | None = None) -> LaunchedRun:
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
        # Running from now on, before the child has even started: a reader never sees
        # the old "interrupted" and takes the resumed run for stopped (the child sets it
        # again; if it fails before, the watcher records why).
        self.registry.set_run_status(run.id, "running")
        try:
            return self._spawn(run.id, ["--resume", run.id], attempt=attempt,
                               last_error=last_error)
        except BaseException:
            self.registry.set_run_status(run.id, run.status, error=run.error)
            raise

    def _spawn(self, run_id: str, args: list[str], *, new_run: bool = False,
               attempt: int = 0, last_error: str | None = None) -> LaunchedRun:
        log_path = self.folder / f"{run_id}.log"
        log_format = self.log_format or active_log_format()
        cmd = [sys.executable, "-m", "fleetlearn", "train", *args, "--quiet",
               "--log-format", log_format]
        if self.ray_address:
            cmd += ["--address", self.ray_address]
        env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="120",
                   FLEETLEARN_ARTIFACTS=str(self.registry.artifacts.root))
        if self.registry_url:
            env["FLEETLEARN_REGISTRY_URL"] = self.registry_url
        # The driver leaves its run 'running' on an error while a resume is to come.
        env[RETRIES_LEFT_ENV] = str(max(0, self.retries - attempt))
        with contextlib.ExitStack() as files:
            out = files.enter_context(log_path.open("ab"))
            if log_format == "json":
                # JSON lines only in the log (a collector may tail it); the table the
                # command prints goes beside it.
                out.write(orjson.dumps({
                    "time": _now(), "level": "INFO", "logger": "fleetlearn.training",
                    "message": f"$ {' '.join(cmd)}", "run_id": run_id}) + b"\n")
                stdout = files.enter_context((self.folder / f"{run_id}.out").open("ab"))
            else:
                out.write(f"$ {' '.join(cmd)}\n".encode())
                stdout = out
            out.flush()
            # A new session: Ctrl-C on the server does not reach it, and cancel can stop
            # the whole group (the driver and an embedded Ray it started).
            proc = subprocess.Popen(cmd, stdout=stdout,
                                    stderr=subprocess.STDOUT if stdout is out else out,
                                    stdin=subprocess.DEVNULL, cwd=self.folder, env=env,
                                    start_new_session=True)
        child = LaunchedRun(run_id, proc, log_path, _now(), new_run=new_run,
                            attempt=attempt, last_error=last_error)
        with self.lock:
            self.children[run_id] = child
        if new_run:
            # The starting window, visible to every API process (see the module docstring).
            try:
                self.registry.add_launch(run_id, proc.pid, this_host(), str(log_path))
            except FleetlearnError as exc:
                log.warning("run %s: could not record its launch: %s", run_id, exc)
        else:
            # The run is already recorded: its launcher record can be written at once.
            try:
                self.registry.set_run_launcher(run_id, child.record())
                child.recorded = True
            except FleetlearnError as exc:  # the watcher tries again
                log.warning("run %s: could not record its process yet: %s", run_id, exc)
        threading.Thread(target=self._watch, args=(child,), daemon=True,
                         name=f"fleetlearn-run-{run_id}").start()
        return child

    def _watch(self, child: LaunchedRun) -> None:
        """Record the process in the registry once the run exists; settle it at exit;
        resume it by itself when it died (see the module docstring)."""
        with log_context(run_id=child.run_id):  # this thread's log lines name the run
            self._follow(child)

    def _follow(self, child: LaunchedRun) -> None:
        while child.proc.poll() is None and not child.recorded:
            try:
                self.registry.set_run_launcher(child.run_id, child.record())
                child.recorded = True
                if child.new_run:
                    self.registry.set_launch(child.run_id, "recorded")
            except NotFoundError:
                time.sleep(_POLL_S)  # the child is still checking its data
            except FleetlearnError as exc:  # a registry hiccup: try again
                log.warning("run %s: could not record its process yet: %s", child.run_id, exc)
                time.sleep(_POLL_S)
        code = child.proc.wait()
        # A driver killed outright (SIGKILL, the OOM killer) leaves its embedded Ray
        # running (GCS, raylet, workers: measured, they do not follow their parent);
        # they are in the child's process group, which outlives it while they do.
        _stop_group(child.proc.pid)
        retry: str | None = None
        try:
            error = last_error(child.log) if code != 0 else None
            if child.new_run and not child.recorded:
                self._end_launch(child, code, error)
            retry = self._retry_reason(child, code, error)
            if retry is not None:
                # Still running as far as readers go: it comes back after the pause.
                pause = min(self.backoff_s * 2 ** child.attempt, RETRY_BACKOFF_MAX_S)
                retry_at = datetime.now(UTC) + timedelta(seconds=pause)
                self.registry.set_run_launcher(child.run_id, {
                    **child.record("retrying", code, error), "last_error": retry,
                    "retry_at": retry_at.isoformat(timespec="seconds")})
                self.registry.set_run_status(child.run_id, "running")
                child.retry_pending = True
            else:
                # The exit record first, then the status: a resume that a reader starts
                # on seeing the status must not have its new record overwritten by this.
                with contextlib.suppress(NotFoundError):
                    status = "cancelled" if child.cancelled else "exited"
                    self.registry.set_run_launcher(child.run_id,
                                                   child.record(status, code, error))
                self._settle(child.run_id, code, error, child.cancelled)
        except Exception as exc:  # noqa: BLE001 - a registry hiccup must not kill the thread
            log.warning("run %s: could not record how its process ended: %s", child.run_id, exc)
            retry = None
            child.retry_pending = False
        finally:
            child.done.set()
        if retry is not None:
            self._auto_resume(child, retry, pause, code, error)

    def _end_launch(self, child: LaunchedRun, code: int, error: str | None) -> None:
        """The process ended before its run existed: the launch says why."""
        try:
            self.registry.get_run(child.run_id)
            self.registry.set_launch(child.run_id, "recorded", exit_code=code)
            return  # recorded in the last moments: the run tells the rest
        except NotFoundError:
            pass
        if child.cancelled:
            self.registry.set_launch(child.run_id, "cancelled", exit_code=code,
                                     error="cancelled through the API before the run started")
        else:
            self.registry.set_launch(
                child.run_id, "failed", exit_code=code,
                error=error or f"the training process exited with code {code}")

    def _settle(self, run_id: str, code: int | None, error: str | None,
                cancelled: bool) -> Run | None:
        """A run whose process is gone but still says 'running': record how it ended.

        A process killed by a signal (``code`` < 0: SIGKILL, the OOM killer) had no
        chance to say anything: its run is ``interrupted`` ("driver died"), like a dead
        driver found on reading. Returns the run as it now is (None: never recorded).
        """
        try:
            run = self.registry.get_run(run_id)
        except NotFoundError:
            return None
        if run.status != "running":
            return run
        if cancelled:
            return self.registry.set_run_status(run_id, "interrupted",
                                                error="cancelled through the API")
        if code is not None and code < 0:
            info = run.launcher or {}
            return self.registry.set_run_status(
                run_id, "interrupted", error=DRIVER_DIED.format(
                    pid=info.get("pid"), host=info.get("host")) + f" (signal {-code})")
        return self.registry.set_run_status(
            run_id, "failed", error=f"the training process exited with code {code}"
            + (f": {error}" if error else "") + "; resume with 'fleetlearn train --resume "
            f"{run_id}'")

    def _retry_reason(self, child: LaunchedRun, code: int, error: str | None) -> str | None:
        """Why ``child``'s run should be resumed by itself, or None (see the module
        docstring for the rule)."""
        if (child.cancelled or code == 0 or code in _STOPPED_CODES
                or child.attempt >= self.retries or self.closing.is_set()):
            return None
        if code == 2 and not (error or "").startswith(_CLUSTER_LOST):
            return None  # a fleetlearn error: the same input fails the same way again
        try:
            run = self.registry.get_run(child.run_id)
        except NotFoundError:
            return None  # never recorded: bad input, nothing to resume
        if run.status == "finished":
            return None
        if code < 0:
            return DRIVER_DIED.format(pid=child.proc.pid, host=this_host()) + \
                f" (signal {-code})"
        if run.status in ("failed", "running") and run.error:
            return run.error  # a driver that will be resumed leaves it 'running'
        return f"the training process exited with code {code}" + (
            f": {error}" if error else "")

    def _auto_resume(self, child: LaunchedRun, reason: str, pause: float, code: int,
                     error: str | None) -> None:
        """Resume ``child``'s run after ``pause``, unless it was cancelled, resumed
        through the API meanwhile, or the server is stopping."""
        attempt = child.attempt + 1
        log.warning("run %s: %s; resuming it by itself in %.0f s (attempt %d of %d)",
                    child.run_id, reason, pause, attempt, self.retries)
        try:
            stopping = self.closing.wait(pause)
            with self.lock:
                superseded = self.children.get(child.run_id) is not child
            if child.cancelled or superseded:
                return  # cancel() marked the run; or a resume through the API owns it
            if stopping:
                self.registry.set_run_launcher(child.run_id, child.record("exited", code, error))
                self.registry.set_run_status(child.run_id, "interrupted", error=reason)
                return
            self._spawn(child.run_id, ["--resume", child.run_id], attempt=attempt,
                        last_error=reason)
        except Exception as exc:  # noqa: BLE001 - a registry hiccup must not kill the thread
            log.warning("run %s: not resumed by itself: %s", child.run_id, exc)
            with contextlib.suppress(Exception):
                self.registry.set_run_status(child.run_id, "failed",
                                             error=f"{reason}; resuming it failed: {exc}")
        finally:
            child.retry_pending = False

    def close(self) -> None:
        """No more automatic resumes (the server is stopping). Running children go on:
        they are their own processes, and any API process reports on them."""
        self.closing.set()

    # ------------------------------------------------------------ reading

    def child(self, run_id: str) -> LaunchedRun | None:
        """The process of ``run_id`` if this launcher started it."""
        with self.lock:
            return self.children.get(run_id)

    def starting(self) -> list[str]:
        """Runs started through the API whose process runs but has not recorded them yet:
        this launcher's, and any API process's from the registry's launches."""
        with self.lock:
            ours = [rid for rid, c in self.children.items()
                    if c.proc.poll() is None and not c.recorded]
        others = [launch.run_id for launch in self.registry.list_launches("starting")
                  if launch.run_id not in ours and self._launch(launch).status == "starting"]
        return ours + others

    def _launch(self, launch: Launch) -> Launch:
        """``launch``, marked failed if it is starting but its process is gone from this
        host (the API process that watched it died too). Only for launches that no
        thread of this launcher watches."""
        if (launch.status != "starting" or launch.host != this_host()
                or self.child(launch.run_id) is not None or _alive(launch.pid, launch.run_id)):
            return launch
        try:
            self.registry.get_run(launch.run_id)
            return self.registry.set_launch(launch.run_id, "recorded")  # it did record
        except NotFoundError:
            pass
        error = last_error(Path(launch.log)) or LAUNCH_DIED.format(pid=launch.pid,
                                                                   host=launch.host)
        log.warning("run %s: %s", launch.run_id, error)
        return self.registry.set_launch(launch.run_id, "failed", error=error)

    def pending(self, run_id: str) -> dict[str, Any] | None:
        """A run that has no run row (yet): its status (``starting``, ``failed``,
        ``cancelled``), error and process, from this launcher or the registry's launches;
        None when no API process launched it (or it is recorded by now)."""
        child = self.child(run_id)
        if child is not None:
            proc = self.process(run_id)
            assert proc is not None
            if proc["running"]:
                status, error = "starting", None
            elif proc["cancelled"]:
                status, error = "cancelled", "cancelled through the API before the run started"
            else:
                status = "failed"
                error = (proc["error"]
                         or f"the training process exited with code {proc['exit_code']}")
            return {"status": status, "error": error, "process": proc}
        launch = self.registry.get_launch(run_id)
        if launch is None or launch.status == "recorded":
            return None
        launch = self._launch(launch)
        if launch.status == "recorded":
            return None
        running = launch.status == "starting"
        proc = {"pid": launch.pid, "host": launch.host, "running": running,
                "exit_code": launch.exit_code, "log": launch.log,
                "started_at": launch.created_at.isoformat(timespec="seconds"),
                "cancelled": launch.status == "cancelled", "error": launch.error}
        return {"status": launch.status, "error": launch.error, "process": proc}

    def check(self, run: Run) -> Run:
        """``run``, marked ``interrupted`` ("driver died") if its process is gone.

        Only for a run whose recorded process was on this host and that no thread of
        this launcher watches (that thread records the exit itself).
        """
        info = run.launcher
        if not info and run.status == "running" and self.child(run.id) is None:
            # Recorded, but the API process that launched it died before it could store
            # the process: the launch row still knows it.
            launch = self.registry.get_launch(run.id)
            if launch is not None:
                info = {"pid": launch.pid, "host": launch.host, "log": launch.log,
                        "status": "running",
                        "started_at": launch.created_at.isoformat(timespec="seconds"),
                        "exit_code": None, "cancelled": False, "error": None}
        if info and info.get("status") == "retrying" and not _retry_overdue(info):
            return run  # its server resumes it after the pause
        if (run.status != "running" or not info or info.get("host") != this_host()
                or self.child(run.id) is not None
                or info.get("status") not in ("running", "retrying")):
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
        launch: Launch | None = None
        if child is not None:
            if child.proc.poll() is not None:
                if child.retry_pending and not child.cancelled:
                    child.cancelled = True  # its automatic resume will not happen
                    with contextlib.suppress(NotFoundError):
                        info = self.registry.get_run(run_id).launcher or {}
                        self.registry.set_run_launcher(
                            run_id, {**info, "status": "cancelled", "cancelled": True})
                        self.registry.set_run_status(run_id, "interrupted",
                                                     error="cancelled through the API")
                    return True
                return False
            child.cancelled = True
            pid = child.proc.pid

            def exited() -> bool:
                return child.proc.poll() is not None
        else:
            try:
                run = self.registry.get_run(run_id)
            except NotFoundError:
                run = None
                launch = self.registry.get_launch(run_id)
                if launch is None or self._launch(launch).status != "starting":
                    return False
            if run is None:  # starting: the launch is all there is
                info: dict[str, Any] | None = {"pid": launch.pid, "host": launch.host}
            else:
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
            if launch is None:
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
        elif launch is not None:  # another API process's launch, stopped before recording
            self.registry.set_launch(run_id, "cancelled", error="cancelled through the API "
                                     "before the run started")
        else:
            self._settle(run_id, None, None, cancelled=True)
            with contextlib.suppress(NotFoundError):
                info = self.registry.get_run(run_id).launcher or {}
                self.registry.set_run_launcher(run_id, {**info, "status": "cancelled"})
        return True
