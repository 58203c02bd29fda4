"""What a node's start-up error says about why its ``ray start`` stopped, read from
the log ``ray start --block`` writes (its exact format, colour codes included)."""

from __future__ import annotations

from pathlib import Path

from fleetlearn.cluster._local import _why_stopped

_RAY_ABORT = (
    "Ray runtime started.\n"
    "[2026-12-03 15:53:20,102 I 9383 9383] (raylet) accessor.cc:475: Received address\n"
    "2026-12-03 15:53:39,058\tERR scripts.py:1307 -- \x1b[31mSome Ray subprocesses exited "
    "unexpectedly:\x1b[39m\n"
    "2026-12-03 15:53:39,058\tERR scripts.py:87 -- \x1b[31m\x1b[1mraylet\x1b[22m\x1b[26m"
    "\x1b[39m\x1b[0m\x1b[2m [exit code=1]\x1b[22m\x1b[0m\n"
    "2026-12-03 15:53:39,059\tERR scripts.py:115 -- \x1b[31m----- BEGIN raylet.out tail "
    "(exit code(s)=1) -----\x1b[39m\n"
    "2026-12-03 15:53:39,059\tERR scripts.py:122 -- \x1b[31m[2026-12-03 15:53:21,000 I "
    "9383 9393] (raylet) agent_manager.cc:80: Starting agent\x1b[39m\n"
    "2026-12-03 15:53:39,060\tERR scripts.py:122 -- \x1b[31m[2026-12-03 15:53:36,101 E "
    "9383 9383] (raylet) agent_manager.cc:102: The raylet exited immediately because one "
    "Ray agent failed, agent_name = dashboard_agent\x1b[39m\n"
    "2026-12-03 15:53:39,060\tERR scripts.py:128 -- \x1b[31m----- END raylet.out tail "
    "(exit code(s)=1) -----\x1b[39m\n"
    "2026-12-03 15:53:39,061\tERR scripts.py:1315 -- \x1b[31mRemaining processes will be "
    "killed.\x1b[39m\n")


def test_a_ray_process_that_died_is_named_with_its_exit_code_and_error_line(
        tmp_path: Path) -> None:
    log = tmp_path / "head.log"
    log.write_text(_RAY_ABORT)
    said = _why_stopped(log)
    assert said.startswith("Ray's raylet (exit code 1) exited; its log: ")
    assert "one Ray agent failed, agent_name = dashboard_agent" in said
    assert "\x1b" not in said
    assert "Remaining processes" not in said


def test_a_log_without_ray_s_report_gives_its_last_line(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("starting\n\nConnectionError: the head at 127.0.0.1:6380 refused\n\n")
    assert _why_stopped(log) == "ConnectionError: the head at 127.0.0.1:6380 refused"
    (tmp_path / "empty.log").write_text("")
    assert _why_stopped(tmp_path / "empty.log") == "(empty log)"
    assert _why_stopped(tmp_path / "missing.log") == "(no log)"
