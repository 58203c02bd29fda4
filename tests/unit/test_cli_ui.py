"""``fleetlearn ui``: bad input is one line and exit 2 before anything starts; a good
one runs Streamlit with the server's URL and key in its environment only, answers HTTP,
and stops within Docker's 10 s on SIGTERM, leaving no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from api_fixtures import serve
from live_server import free_port, serving
from process_helpers import alive, fleetlearn_env, kill_tree, tree, wait_exit

from fleetlearn.cli import main


@pytest.fixture
def keyed_server(home: Path, keys: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    """A real API on loopback whose registry has keys (so one is required)."""
    with serve(home) as client, serving(client.app, free_port()) as url:
        yield url, keys


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    code = main(["ui", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: "), err
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    return err


@pytest.mark.parametrize("port", ["0", "70000", "-5"])
def test_a_port_out_of_range_is_one_line(capsys: pytest.CaptureFixture[str], port: str) -> None:
    _one_line_error(capsys, ["--port", port, "--api", "http://127.0.0.1:9"], "--port",
                    "[1, 65535]", port)


def test_a_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        _one_line_error(capsys, ["--port", str(port), "--api", "http://127.0.0.1:9"],
                        f"127.0.0.1:{port}", "--port")


def test_an_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    _one_line_error(capsys, ["--api", dead, "--port", str(free_port())], "Cannot reach",
                    dead, "connection refused")


def test_a_refused_key_is_one_line_and_never_echoed(
        capsys: pytest.CaptureFixture[str], keyed_server: tuple[str, dict[str, str]]) -> None:
    url, keys = keyed_server
    wrong = keys["read"][:-4] + "zzzz"
    err = _one_line_error(capsys, ["--api", url, "--key", wrong, "--port", str(free_port())],
                          "refused the API key", url)
    assert wrong not in err
    revoked = _one_line_error(capsys, ["--api", url, "--key", keys["revoked"],
                                       "--port", str(free_port())], "refused the API key")
    assert keys["revoked"] not in revoked


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"fleetlearn ui exited with {proc.returncode}"
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).text.strip() == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the GUI did not answer at {url} within {timeout:g} s")


def test_the_gui_serves_with_the_key_in_its_environment_and_stops_on_sigterm(
        keyed_server: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, keys = keyed_server
    port = free_port()
    env = fleetlearn_env({k: v for k, v in os.environ.items()
                          if k not in ("FLEETLEARN_URL", "FLEETLEARN_API_KEY")})
    env["HOME"] = str(tmp_path)  # Streamlit writes ~/.streamlit
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetlearn", "ui", "--api", url, "--key", keys["read"],
         "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pids: list[int] = [proc.pid]
    try:
        gui = f"http://127.0.0.1:{port}"
        _wait_healthy(gui, proc)
        pids = tree(proc.pid)
        children = [psutil.Process(p) for p in pids if p != proc.pid]
        streamlit = next(c for c in children if "streamlit" in " ".join(c.cmdline()))
        # The key travels by environment: never on the GUI's command line (ps shows
        # those; $FLEETLEARN_API_KEY keeps it off fleetlearn ui's own too).
        for p in children:
            assert keys["read"] not in " ".join(p.cmdline())
        child_env = streamlit.environ()
        assert child_env["FLEETLEARN_URL"] == url
        assert child_env["FLEETLEARN_API_KEY"] == keys["read"]
        page = httpx.get(gui, timeout=10)
        assert page.status_code == 200
        assert "<noscript>" in page.text or "streamlit" in page.text.lower()
        assert keys["read"] not in page.text
        code, seconds = wait_exit(proc, signal.SIGTERM, timeout_s=15)
        assert code == 0, proc.stderr.read().decode() if proc.stderr else code
        assert seconds < 10, f"took {seconds:.1f} s to stop"  # Docker kills after 10 s
        assert alive(pids) == []
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert f"fleetlearn ui on http://127.0.0.1:{port}" in err
        assert keys["read"] not in err
    finally:
        kill_tree(pids)
