"""The GUI end to end in a real headless Chromium (Debian's, driven by Playwright).

Real parts only: a 2-node Ray cluster of processes, ``fleetlearn serve`` on it (a
process), ``fleetlearn ui`` (a process, the Streamlit child under it), and Chromium.
A user uploads a CSV, picks its target, starts training, watches the run finish and
its leaderboard appear, opens a figure, sets an alias, predicts from the form and from
a CSV, and sees the cluster's nodes on Monitoring. Every step asserts on what the page
says (names, numbers) and, where it changed something, on what the server now says.
Screenshots of every step go to ``$FLEETLEARN_TEST_ARTIFACTS/gui`` (else the test's
temp folder).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import free_port
from model_fixtures import mixed_frame, serving_registry
from process_helpers import fleetlearn_cmd, fleetlearn_env, kill_tree, stop_tree, tree

from fleetlearn.client import Client

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
#: Milliseconds Playwright waits for a page to show what a step expects.
WAIT_MS = 60_000


def _browser_or_skip() -> None:
    pytest.importorskip("playwright.sync_api", reason="pip install 'fleetlearn[dev]'")
    if not Path(CHROMIUM).exists():
        message = "headless Chromium is not installed: apt-get install chromium"
        if os.environ.get("FLEETLEARN_REQUIRE_BROWSER") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def _wait_http(url: str, proc: subprocess.Popen[Any], ok: str | None = None) -> None:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        try:
            answer = httpx.get(url, timeout=2)
            if answer.status_code == 200 and (ok is None or answer.text.strip() == ok):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within 120 s")


@pytest.fixture
def stack(tmp_path: Path, isolated_env: dict[str, str], process_cluster: Any
          ) -> Iterator[dict[str, Any]]:
    """A cluster, the API on it over a registry holding the serving models, the GUI."""
    cluster = process_cluster(workers=1, cpus_per_node=2)
    home = Path(isolated_env["FLEETLEARN_HOME"])
    home.mkdir(parents=True)
    reg, _ = serving_registry(home)
    reg.close()
    env = fleetlearn_env({**isolated_env, **cluster.security_env,
                          "FLEETLEARN_SERVE_RAY_ADDRESS": cluster.address})
    api_port, ui_port = free_port(), free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        api = subprocess.Popen(fleetlearn_cmd("serve", "--port", str(api_port)), env=env,
                               stdout=(logs / "api.log").open("w"), stderr=subprocess.STDOUT)
        procs.append(api)
        api_url = f"http://127.0.0.1:{api_port}"
        _wait_http(f"{api_url}/readyz", api)
        ui = subprocess.Popen(fleetlearn_cmd("ui", "--api", api_url, "--port", str(ui_port)),
                              env=env, stdout=(logs / "ui.log").open("w"),
                              stderr=subprocess.STDOUT)
        procs.append(ui)
        gui = f"http://127.0.0.1:{ui_port}"
        _wait_http(f"{gui}/_stcore/health", ui, ok="ok")
        yield {"api": api_url, "gui": gui, "cluster": cluster, "tmp": tmp_path}
    finally:
        pids = [p for proc in procs for p in tree(proc.pid)]
        for proc in reversed(procs):
            stop_tree(proc.pid)
        kill_tree(pids)


def _shots(tmp: Path) -> Path:
    base = os.environ.get("FLEETLEARN_TEST_ARTIFACTS")
    folder = Path(base) / "gui" if base else tmp / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _pick(page: Any, label: str, option: str) -> None:
    """Choose ``option`` in the Streamlit selectbox labelled ``label``."""
    box = page.locator("[data-testid='stSelectbox']").filter(
        has=page.get_by_text(label, exact=True)).first
    box.locator("input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _cells(page: Any) -> list[str]:
    return [c.strip() for c in page.locator("[role=gridcell]").all_inner_texts()]


def _wait_cell(page: Any, text: str) -> None:
    """Wait until a table cell reads exactly ``text`` (tables draw after their heading;
    their cells are in the DOM for assistive technology, the picture is a canvas)."""
    cell = page.locator("[role=gridcell]").filter(
        has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))
    cell.first.wait_for(state="attached")


def test_a_user_trains_watches_aliases_predicts_and_monitors_in_a_browser(
        stack: dict[str, Any]) -> None:
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    # Every expectation waits as long as an action does: Playwright's own default
    # for expect is 5 s, short for a loaded 2-core machine.
    expect.set_options(timeout=WAIT_MS)
    shots = _shots(stack["tmp"])
    table = stack["tmp"] / "people.csv"
    mixed_frame(120, seed=2).to_csv(table, index=False)
    batch = stack["tmp"] / "batch.csv"
    mixed_frame(7, seed=8).drop(columns=["label"]).to_csv(batch, index=False)
    api = Client(stack["api"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(WAIT_MS)
        try:
            # Overview: the aliased model of the registry.
            page.goto(stack["gui"])
            expect(page.get_by_role("heading", name="Overview")).to_be_visible()
            expect(page.get_by_text("Model versions holding an alias")).to_be_visible()
            _wait_cell(page, "prod")
            page.screenshot(path=shots / "1-overview.png", full_page=True)

            # Train: upload, target (profiled), models, start, live progress to the end.
            page.goto(f"{stack['gui']}/train")
            page.locator("input[type=file]").set_input_files(str(table))
            expect(page.get_by_text("Uploaded people.csv: 120 rows, 6 columns.")
                   ).to_be_visible()
            # The upload is picked; its profile shows the detected task and kinds.
            _pick(page, "Target column of people.csv", "label")
            expect(page.get_by_text(re.compile(
                r"target label: classification \(2 classes\)"))).to_be_visible()
            _wait_cell(page, "id-like")  # row_id, in the column kinds table
            expect(page.get_by_text(re.compile("^Models for classification"))).to_be_visible()
            advanced = page.get_by_label(re.compile("^Advanced: model specs"))
            advanced.fill("logistic_regression")
            advanced.press("Control+Enter")  # committed: the catalog choices give way
            expect(page.get_by_text(re.compile("^Models for classification"))).to_have_count(0)
            page.get_by_role("button", name="Start training").click()
            started = page.get_by_text(re.compile(r"Run [0-9a-f]{12} started: \d+ units"))
            expect(started).to_be_visible()
            run_id = re.search(r"Run ([0-9a-f]{12})", started.inner_text()).group(1)
            page.screenshot(path=shots / "2-train-started.png", full_page=True)
            expect(page.get_by_role("heading", name=f"Run {run_id}: finished")
                   ).to_be_visible(timeout=240_000)
            expect(page.get_by_text(re.compile(r"(\d+) / \1 units"))).to_be_visible()
            _wait_cell(page, "logistic_regression")  # best so far
            page.screenshot(path=shots / "3-train-finished.png", full_page=True)
            assert api.run(run_id)["status"] == "finished"

            # Runs: its leaderboard, a figure opened.
            page.goto(f"{stack['gui']}/runs")
            expect(page.get_by_role("heading", name="Leaderboard")).to_be_visible()
            _wait_cell(page, run_id)
            board = api.leaderboard(run_id)[0]
            _wait_cell(page, "best")
            _wait_cell(page, board["model"])
            cells = _cells(page)
            assert f"{board['cv_mean']:.4f}"[:5] in " ".join(cells)
            # The dataset's figures are in tabs, one per kind (GET /v1/runs/{id}/figures).
            page.get_by_role("tab", name="Fit time vs score").first.click()
            expect(page.locator(".js-plotly-plot").filter(
                has_text="people: fit time vs")).to_be_visible()
            page.screenshot(path=shots / "4-runs.png", full_page=True)

            # Models: set an alias on the new model.
            name = "people-logistic_regression"
            page.goto(f"{stack['gui']}/models")
            _pick(page, "Model", name)
            expect(page.get_by_role("heading", name=f"{name}: versions")).to_be_visible()
            page.get_by_label("Alias", exact=True).fill("production")
            page.get_by_role("button", name="Set alias").click()
            expect(page.get_by_text(f"{name}@production now points at version 1.")
                   ).to_be_visible()
            assert api.model_versions(name)["aliases"] == {"production": 1}
            page.screenshot(path=shots / "5-alias.png", full_page=True)

            # Predict: the form, then a file.
            page.goto(f"{stack['gui']}/predict")
            _pick(page, "Model", name)
            page.get_by_label("x", exact=True).fill("1.5")
            _pick(page, "color", "red")
            page.get_by_role("button", name="Predict").click()
            said = api.predict(f"{name}:1", [{"x": 1.5, "flag": None, "color": "red",
                                              "when": None}])["predictions"][0]
            metric = page.locator("[data-testid='stMetric']").filter(
                has_text=f"prediction of {name}:1")
            expect(metric).to_contain_text(str(said))
            page.screenshot(path=shots / "6-predict-form.png", full_page=True)
            page.get_by_role("tab", name="A file").click()
            page.locator("input[type=file]").set_input_files(str(batch))
            expect(page.get_by_text("7 of 7 row(s) predicted.")).to_be_visible()
            page.screenshot(path=shots / "7-predict-file.png", full_page=True)

            # Compare: one dataset cannot be ranked across datasets (said so); its
            # trend over runs is drawn, with the model just trained in its summary.
            page.goto(f"{stack['gui']}/compare")
            expect(page.get_by_role("heading", name="Compare")).to_be_visible()
            assert api.compare(run_id)["across_datasets"] == {}
            expect(page.get_by_text("This run has no task with two or more datasets")
                   ).to_be_visible()
            page.get_by_role("tab", name="Trends over time").click()
            _pick(page, "Dataset", "people")
            trends = page.locator(".js-plotly-plot").filter(has_text="best of each run")
            # One trends figure once the rerun settles (Streamlit keeps the old element
            # for a moment while it draws the new one).
            expect(trends).to_have_count(1)
            expect(trends).to_be_visible()
            _wait_cell(page, name)
            page.screenshot(path=shots / "8-compare.png", full_page=True)

            # Monitoring: the cluster's two nodes, and the traffic just made.
            page.goto(f"{stack['gui']}/monitoring")
            cluster = stack["cluster"]
            expect(page.get_by_text(re.compile(r"Ray cluster at .*: 2 node\(s\) alive"))
                   ).to_be_visible()
            _wait_cell(page, cluster.head_ip)
            _wait_cell(page, cluster.worker_ips[0])
            _wait_cell(page, name)  # served: the form and the file
            page.screenshot(path=shots / "9-monitoring.png", full_page=True)
        finally:
            browser.close()
            api.close()
    assert len(list(shots.glob("*.png"))) == 9
