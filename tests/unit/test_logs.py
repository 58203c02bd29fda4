"""``--log-format``: which format wins, what a JSON line holds, ids that never mix.

The formatter and the context are checked in-process on real ``logging`` records; the
bad values through real ``fleetlearn`` processes (exit code and stderr as a user sees
them). No Ray: every check happens before it would start.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from process_helpers import fleetlearn_env

from fleetlearn.errors import ConfigError
from fleetlearn.logs import (
    JsonFormatter,
    bind_log_context,
    log_context,
    log_context_ids,
    resolve_log_format,
)
from fleetlearn.logs._context import ContextFilter
from fleetlearn.training._launcher import last_error


@pytest.fixture
def json_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through fleetlearn's JSON formatter and context filter."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("fleetlearn.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)


def _records(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_flag_beats_the_environment_beats_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETLEARN_LOG_FORMAT", raising=False)
    assert resolve_log_format(None) == "text"
    monkeypatch.setenv("FLEETLEARN_LOG_FORMAT", "json")
    assert resolve_log_format(None) == "json"
    assert resolve_log_format("text") == "text"
    monkeypatch.setenv("FLEETLEARN_LOG_FORMAT", "")
    assert resolve_log_format(None) == "text"  # empty counts as unset


@pytest.mark.parametrize(("flag", "env", "where"), [
    ("yaml", None, "--log-format option"),
    (None, "xml", "FLEETLEARN_LOG_FORMAT variable"),
])
def test_a_bad_format_names_where_it_came_from(monkeypatch: pytest.MonkeyPatch,
                                                flag: str | None, env: str | None,
                                                where: str) -> None:
    monkeypatch.delenv("FLEETLEARN_LOG_FORMAT", raising=False)
    if env is not None:
        monkeypatch.setenv("FLEETLEARN_LOG_FORMAT", env)
    with pytest.raises(ConfigError) as info:
        resolve_log_format(flag)
    assert str(info.value) == (f"The {where} must be one of text, json. "
                               f"Got {flag or env!r} instead.")


def test_a_json_line_has_time_level_logger_message_ids_and_the_traceback(
        json_lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = json_lines
    with log_context(run_id="3f2a9c01b7de"):
        logger.info("unit %s done", "cv0", extra={"done": 1})
        try:
            raise ValueError("bad fold")
        except ValueError:
            logger.exception("unit failed")
    logger.warning("outside")
    first, failed, outside = _records(out)
    assert list(first)[:5] == ["time", "level", "logger", "message", "run_id"]
    assert first["time"].endswith("+00:00")  # ISO 8601, UTC
    assert first["time"][10] == "T"
    assert (first["level"], first["logger"], first["message"]) == (
        "INFO", "fleetlearn.test_logs", "unit cv0 done")
    assert (first["run_id"], first["done"]) == ("3f2a9c01b7de", 1)
    assert failed["level"] == "ERROR"
    assert isinstance(failed["exc_info"], str)
    assert failed["exc_info"].startswith("Traceback (most recent call last)")
    assert failed["exc_info"].endswith("ValueError: bad fold")
    assert "run_id" not in outside  # the block's ids ended with it


def test_a_bound_id_lasts_until_the_enclosing_block_ends() -> None:
    with log_context(run_id=None):  # an id not known yet is left out
        assert log_context_ids() == {}
        bind_log_context(run_id="3f2a9c01b7de")
        with log_context(model="iris-rf", version=2):
            assert log_context_ids() == {"run_id": "3f2a9c01b7de", "model": "iris-rf",
                                         "version": 2}
        assert log_context_ids() == {"run_id": "3f2a9c01b7de"}
    assert log_context_ids() == {}
    with pytest.raises(ValueError, match="request_id"):
        bind_log_context(requestid="x")


def test_concurrent_tasks_never_see_each_others_ids(
        json_lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = json_lines

    async def request(n: int) -> None:
        # As the API: the middleware sets the request id, the route binds the model later.
        with log_context(request_id=f"req-{n}"):
            await asyncio.sleep(0.001 * (n % 3))
            bind_log_context(model=f"model-{n}", version=n)
            await asyncio.sleep(0.001 * (n % 2))
            logger.info("answered", extra={"n": n})

    async def all_requests() -> None:
        await asyncio.gather(*(request(n) for n in range(40)))

    asyncio.run(all_requests())
    records = _records(out)
    assert len(records) == 40
    for record in records:
        n = record["n"]
        assert (record["request_id"], record["model"], record["version"]) == (
            f"req-{n}", f"model-{n}", n)


def test_the_launcher_reads_the_error_of_a_json_log(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    lines = [
        {"time": "t", "level": "INFO", "logger": "fleetlearn.training", "message": "$ cmd"},
        {"time": "t", "level": "WARNING", "logger": "fleetlearn.training.progress",
         "message": "unit failed"},
        {"time": "t", "level": "ERROR", "logger": "fleetlearn.cli",
         "message": "Column 'lable' is not in t.csv.", "error": "DataError"},
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert last_error(log) == "Column 'lable' is not in t.csv."
    crashed = {"time": "t", "level": "ERROR", "logger": "fleetlearn.training",
               "message": "crash", "exc_info": "Traceback (most recent call last):\n"
               "  File \"x.py\", line 1\nRuntimeError: worker lost"}
    log.write_text(json.dumps(lines[0]) + "\n" + json.dumps(crashed) + "\n")
    assert last_error(log) == "RuntimeError: worker lost"


def _fleetlearn(tmp_path: Path, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLEARN_")}
    full = fleetlearn_env({**base, "FLEETLEARN_HOME": str(tmp_path / "home"), **(env or {})})
    return subprocess.run([sys.executable, "-m", "fleetlearn", *args], env=full,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("command", [["train", "t.csv", "-t", "y"], ["serve"],
                                     ["cluster", "join"], ["cluster", "up"]],
                         ids=["train", "serve", "cluster-join", "cluster-up"])
def test_a_bad_log_format_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    done = _fleetlearn(tmp_path, *command, "--log-format", "yaml")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: The --log-format option must be one of text, json. Got 'yaml' instead."]
    assert done.stdout == ""
    assert not (tmp_path / "home" / "registry.db").exists()  # nothing written


def test_a_bad_environment_format_names_the_variable(tmp_path: Path) -> None:
    done = _fleetlearn(tmp_path, "serve", env={"FLEETLEARN_LOG_FORMAT": "xml"})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: The FLEETLEARN_LOG_FORMAT variable must be one of text, json. "
        "Got 'xml' instead."]


def test_an_error_in_json_mode_is_one_json_line(tmp_path: Path) -> None:
    done = _fleetlearn(tmp_path, "train", "missing.csv", "-t", "y",
                       env={"FLEETLEARN_LOG_FORMAT": "json"})
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    record = json.loads(lines[0])
    assert (record["level"], record["logger"]) == ("ERROR", "fleetlearn.cli")
    assert "missing.csv" in record["message"]
    assert record["error"] == "DataFileNotFoundError"


def test_join_in_json_relays_what_ray_start_prints_and_passes_sigterm_on(
        caplog: pytest.LogCaptureFixture) -> None:
    """``cluster join --log-format json`` runs ``ray start`` as a child: here a real
    child that prints on both streams, then waits for SIGTERM like ``--block``."""
    import signal
    import threading

    from fleetlearn.cluster._join import _relayed

    child = ("import signal, sys, time\n"
             "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
             "print('\\x1b[1mLocal node IP\\x1b[0m: 127.0.0.5', flush=True)\n"
             "print('Ray runtime started.', file=sys.stderr, flush=True)\n"
             "time.sleep(120)\n")
    caplog.set_level(logging.INFO, logger="ray.start")
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(3.0, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        code = _relayed([sys.executable, "-c", child])
    finally:
        timer.cancel()
    assert code == 7  # the child got the SIGTERM and chose its exit code
    lines = [(r.getMessage(), getattr(r, "stream", None)) for r in caplog.records
             if r.name == "ray.start"]
    assert ("Local node IP: 127.0.0.5", "stdout") in lines  # colours stripped
    assert ("Ray runtime started.", "stderr") in lines
    assert lines[-1] == ("ray start exited with code 7", None)
    assert signal.getsignal(signal.SIGTERM) is before  # the forwarding handler is gone


def test_what_ray_prints_to_stdout_becomes_records(caplog: pytest.LogCaptureFixture) -> None:
    """``serve --ray`` in json mode: a print (Ray's '(raylet) ...' notices) is a record."""
    from fleetlearn.logs._config import _LineLogger

    caplog.set_level(logging.INFO, logger="stdout")
    stream = _LineLogger("stdout")
    print("\x1b[33m(raylet)\x1b[0m Task ServeController.graceful_shutdown failed.", file=stream)
    stream.write("half a line, ")
    stream.write("then the rest\n\n")
    stream.write("no newline yet")
    stream.flush()
    assert [r.getMessage() for r in caplog.records if r.name == "stdout"] == [
        "(raylet) Task ServeController.graceful_shutdown failed.",
        "half a line, then the rest", "no newline yet"]
