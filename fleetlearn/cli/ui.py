"""``fleetlearn ui``: the browser GUI (Streamlit) against a running fleetlearn server.

The app is a child process (``python -m streamlit run fleetlearn/ui/app.py``) given the
server's URL and API key through its environment (``FLEETLEARN_URL``,
``FLEETLEARN_API_KEY``): never on its command line (``ps`` shows that to every user),
never in a URL. Everything is checked before the child starts (the port, the server,
the key), so bad input is one line and exit code 2. SIGTERM (``docker stop``) and Ctrl-C
are passed on to the child, which Streamlit stops in about a second; a child still there
after :data:`STOP_GRACE_S` is killed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Annotated, Any

import typer

from fleetlearn.cli._common import err_console
from fleetlearn.errors import ApiError, ConfigError

#: Seconds between passing SIGTERM on and killing a child that did not stop (Docker
#: kills the container 10 s after its SIGTERM).
STOP_GRACE_S = 8.0
#: Seconds to wait for the server's first answer before calling it unreachable.
CHECK_TIMEOUT_S = 5.0


def ui_command(
    api: Annotated[str | None, typer.Option(
        "--api", help="The fleetlearn server the GUI talks to (e.g. http://host:8000); "
        "$FLEETLEARN_URL or http://127.0.0.1:8000.")] = None,
    key: Annotated[str | None, typer.Option(
        "--key", help="API key for that server; $FLEETLEARN_API_KEY by default. Passed to "
        "the GUI by environment, never shown in the page. Without one, the GUI asks for "
        "it when the server wants one.")] = None,
    port: Annotated[int, typer.Option(help="TCP port of the GUI.")] = 8501,
    host: Annotated[str, typer.Option(
        help="Address the GUI listens on. Everyone who reaches it acts with the key "
        "given here: keep it on loopback unless a proxy with its own login is in "
        "front.")] = "127.0.0.1",
    ca_file: Annotated[str | None, typer.Option(
        help="PEM CA bundle to check an HTTPS server's certificate; $FLEETLEARN_CA_FILE.")
    ] = None,
) -> None:
    """Open the browser GUI (Streamlit) on a running fleetlearn server."""
    from fleetlearn.client import Client
    from fleetlearn.ui import APP_FILE, require_streamlit

    require_streamlit()
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be a TCP port in the range [1, 65535]. Got {port} "
                          "instead.")
    _check_port_free(host, port)
    key = key if key is not None else os.environ.get("FLEETLEARN_API_KEY")
    with Client(api, key or None, timeout=CHECK_TIMEOUT_S, verify=ca_file) as client:
        url = client.url
        client.health()  # ServerUnreachableError (exit 2) when nothing answers
        try:
            client.info()
        except ApiError as exc:
            if exc.status == 401 and key:
                raise ConfigError(f"The server at {url} refused the API key given with --key "
                                  f"or $FLEETLEARN_API_KEY: {exc.detail}") from None
            if exc.status != 401:
                raise
            # No key yet and the server wants one: the GUI asks for it.
    env = {**os.environ, "FLEETLEARN_URL": url}
    env.pop("FLEETLEARN_API_KEY", None)
    if key:
        env["FLEETLEARN_API_KEY"] = key
    if ca_file:
        env["FLEETLEARN_CA_FILE"] = ca_file
    command = [sys.executable, "-m", "streamlit", "run", str(APP_FILE),
               "--server.port", str(port), "--server.address", host,
               "--server.headless", "true", "--browser.gatherUsageStats", "false",
               # The app's files do not change under a user: no watcher thread.
               "--server.fileWatcherType", "none", "--server.runOnSave", "false",
               # A bug shows its type and message, never a traceback.
               "--client.showErrorDetails", "type", "--client.toolbarMode", "minimal"]
    err_console.print(f"fleetlearn ui on http://{_url_host(host)}:{port} for the server at "
                      f"{url} (Ctrl-C stops it)", highlight=False)
    raise typer.Exit(_run_child(command, env))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_port_free(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} is not an address of this machine: {exc}.") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Pick "
                              "another --port, or stop what holds it.") from None


def _run_child(command: list[str], env: dict[str, str]) -> int:
    """Run the Streamlit child until it ends; pass SIGTERM/SIGINT on. Returns the exit code
    (0 after a stop we passed on)."""
    # Its own process group: a Ctrl-C in the terminal reaches us once, and we pass it on.
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    stop: dict[str, Any] = {"at": None}

    def on_signal(signum: int, _frame: Any) -> None:
        if stop["at"] is None:
            stop["at"] = time.monotonic()
            proc.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while proc.poll() is None:
            if stop["at"] is not None and time.monotonic() - stop["at"] > STOP_GRACE_S:
                proc.kill()
            time.sleep(0.1)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if proc.poll() is None:  # an exception here: never leave the child behind
            proc.kill()
            proc.wait(5)
    if stop["at"] is not None:
        return 0
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
