"""The compose stack's ``ui`` service for real: the GUI container (the fleetlearn image,
role ``ui``) reaches the API over the stack's network with the key of the env file,
turns healthy on Streamlit's ``/_stcore/health``, serves the app's page on 127.0.0.1,
and is published nowhere else.

A stack of its own, and a small one: PostgreSQL, the API and the GUI (no Ray node: the
GUI needs none, and the API answers without one). The key is created in the API
container, then written to the env file as ``FLEETLEARN_UI_API_KEY`` before the GUI is
started, as an operator does.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from docker_stack import ComposeStack, wait_for


@pytest.fixture(scope="module")
def ui_stack(docker_images: dict[str, float], request: pytest.FixtureRequest
             ) -> Iterator[ComposeStack]:
    folder = Path(tempfile.mkdtemp(prefix="fleetlearn-docker-ui-", dir="/tmp"))
    stack = ComposeStack(folder)
    failed_before = request.session.testsfailed
    try:
        stack.compose("up", "-d", "--no-build", "api")
        api = wait_for(lambda: stack.containers("api"), "the api container", 300)[0]
        created = json.loads(stack.exec(api, "fleetlearn", "keys", "create", "--role", "read",
                                        "--name", "gui", "--json"))
        stack.api_key = created["key"]
        with stack.env_file.open("a") as env:
            env.write(f"FLEETLEARN_UI_API_KEY={stack.api_key}\n")
        stack.compose("up", "-d", "--no-build", "ui")  # waits for the API to be healthy
        yield stack
    finally:
        try:
            print("containers' logs:", stack.logs())
        finally:
            stack.down()
            if request.session.testsfailed == failed_before:
                shutil.rmtree(folder, ignore_errors=True)


def _ui(stack: ComposeStack) -> str:
    return wait_for(lambda: stack.containers("ui"), "the ui container", 300)[0]


def test_the_ui_turns_healthy_and_serves_the_app_on_loopback(ui_stack: ComposeStack) -> None:
    ui = _ui(ui_stack)
    wait_for(lambda: ui_stack.inspect(ui)["State"].get("Health", {}).get("Status")
             == "healthy", lambda: f"the ui container healthy ({ui_stack.inspect(ui)['State']})",
             300, poll_s=2)
    base = ui_stack.ui_url
    health = httpx.get(f"{base}/_stcore/health", timeout=10)
    assert (health.status_code, health.text) == (200, "ok")
    page = httpx.get(f"{base}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # Streamlit's page: its root element and its scripts, which then draw the app.
    assert '<div id="root">' in page.text
    assert "<title>Streamlit</title>" in page.text
    # The app itself runs: its script is Streamlit's, started by `fleetlearn ui`.
    commands = " ".join(ui_stack.processes(ui))
    assert "streamlit run" in commands
    assert "fleetlearn/ui/app.py" in commands
    assert "--server.address 0.0.0.0" in commands
    assert ui_stack.api_key not in commands  # the key is in the environment only


def test_the_ui_acts_with_the_key_of_the_env_file(ui_stack: ComposeStack) -> None:
    ui = _ui(ui_stack)
    # What the GUI's pages call: fleetlearn.Client on $FLEETLEARN_URL with
    # $FLEETLEARN_API_KEY, from the Streamlit process's own environment.
    # (docker top shows the host's process ids: the container's /proc is read inside it.)
    environ = ui_stack.exec(ui, "bash", "-c", (
        "for d in /proc/[0-9]*; do if tr '\\0' ' ' < $d/cmdline 2>/dev/null "
        "| grep -q 'streamlit run'; then tr '\\0' '\\n' < $d/environ; fi; done"
    )).splitlines()
    assert "FLEETLEARN_URL=http://api:8000" in environ
    assert f"FLEETLEARN_API_KEY={ui_stack.api_key}" in environ
    answer = json.loads(ui_stack.exec(ui, "python", "-c", (
        "import json; from fleetlearn.client import Client; "
        "c = Client('http://api:8000'); print(json.dumps({'runs': c.runs(limit=5), "
        "'version': c.info().get('version')}))")))
    assert answer["runs"] == []
    assert answer["version"]


def test_the_ui_port_is_published_on_loopback_only(ui_stack: ComposeStack) -> None:
    ui = _ui(ui_stack)
    port = ui_stack.ui_port
    bindings = ui_stack.inspect(ui)["NetworkSettings"]["Ports"]["8501/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    published = subprocess.run(["docker", "port", ui, "8501/tcp"], capture_output=True,
                               text=True, check=True).stdout.split()
    assert published == [f"127.0.0.1:{port}"]
    # Nothing answers on this machine's other addresses at that port.
    addresses = subprocess.run(["hostname", "-I"], capture_output=True, text=True,
                               check=False).stdout.split()
    others = [a for a in addresses if ":" not in a and not a.startswith("127.")]
    assert others, "this machine has no address but loopback to try"
    for address in others:
        with socket.socket() as probe:
            probe.settimeout(3)
            assert probe.connect_ex((address, port)) != 0, f"{address}:{port} answers"
