"""The HTML report of a real run, opened in headless Chromium: every figure renders, no
script error reaches the console, the page is not blank, and the PNG export works.

Needs headless Chromium: ``scripts/setup dev`` (so ``scripts/test``) installs Debian's
``chromium`` when it is missing and it runs as root; otherwise these tests skip, saying
what to install, unless ``FLEETLEARN_REQUIRE_BROWSER=1`` (``.ci/run``) makes a missing
browser a failure. No Playwright: Chromium's own
``--dump-dom`` (the DOM after scripts ran) and ``--enable-logging=stderr`` (console
messages as ``INFO:CONSOLE`` lines) are enough.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  "--no-first-run", "--virtual-time-budget=15000"]


MISSING = ("headless Chromium is not installed: install it (Debian/Ubuntu: apt-get install "
           "chromium; 'bash scripts/test' does it when run as root)")


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("FLEETLEARN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{MISSING}; FLEETLEARN_REQUIRE_BROWSER=1 says these tests must run",
                        pytrace=False)
        pytest.skip(MISSING)
    return path


def _open(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # Its own profile folder: never touches (or waits on) a user's browser profile.
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}",
         "--enable-logging=stderr", "--v=0", *extra, url],
        capture_output=True, text=True, timeout=180, check=False)


def _console_errors(stderr: str) -> list[str]:
    """Console messages that are errors: uncaught exceptions and console.error()."""
    lines = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    return [line for line in lines if re.search(r"Uncaught|Error|error", line)]


def _fleetlearn(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "fleetlearn", *args], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_console_check_catches_a_broken_page(tmp_path: Path) -> None:
    # Guards the check below: a page that throws must be seen as broken.
    page = tmp_path / "broken.html"
    page.write_text("<html><body><h1>x</h1><script>console.error('bad');"
                    "notAFunction();</script></body></html>")
    done = _open(page.as_uri(), tmp_path, "--dump-dom")
    errors = _console_errors(done.stderr)
    assert any("notAFunction" in e for e in errors), done.stderr[-2000:]


def test_report_renders_in_headless_chromium(tmp_path: Path,
                                              isolated_env: dict[str, str]) -> None:
    _chromium()  # skip (or fail) before training, not after
    iris = load_iris(as_frame=True).frame.rename(columns={"target": "species"})
    iris.to_csv(tmp_path / "iris.csv", index=False)
    load_diabetes(as_frame=True).frame.to_csv(tmp_path / "diabetes.csv", index=False)
    _fleetlearn(isolated_env, "train", str(tmp_path / "iris.csv"), str(tmp_path / "diabetes.csv"),
                "--target", "iris.csv=species", "--target", "diabetes.csv=target",
                "-m", "decision_tree", "-m", "gradient_boosting:n_estimators=10", "--folds", "3",
                "--quiet")
    run_id = json.loads(_fleetlearn(isolated_env, "runs", "list", "--json").stdout)[0]["id"]
    report = tmp_path / "report.html"
    png_dir = tmp_path / "png"
    _fleetlearn(isolated_env, "report", run_id, "-o", str(report), "--png", str(png_dir))

    text = report.read_text(encoding="utf-8")
    figure_ids = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', text)
    assert len(figure_ids) >= 10

    dom = _open(report.as_uri(), tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console_errors(dom.stderr) == []
    # Plotly drew every figure: each div holds its rendered SVG.
    rendered = dom.stdout.count('class="main-svg"')
    assert rendered >= len(figure_ids), (rendered, len(figure_ids))

    shot = tmp_path / "shot.png"
    done = _open(report.as_uri(), tmp_path, f"--screenshot={shot}", "--window-size=1280,2000")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console_errors(done.stderr) == []
    _assert_not_blank(shot)

    pngs = sorted(png_dir.glob("*.png"))
    assert len(pngs) == len(figure_ids)
    _assert_not_blank(pngs[0])


def _assert_not_blank(png: Path) -> None:
    """Not blank: a good share of the pixels differ from the page background."""
    from PIL import Image  # Pillow comes with matplotlib (the dev extra)

    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=int)
    height, width, _ = pixels.shape
    assert width > 100
    assert height > 100
    background = np.median(pixels.reshape(-1, 3), axis=0)
    drawn = (np.abs(pixels - background).sum(axis=2) > 30).mean()
    assert drawn > 0.02, f"{png.name} looks blank: {drawn:.1%} of pixels differ from the page"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
