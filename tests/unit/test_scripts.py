"""The set-up scripts behind the README's commands: they parse, and the browser set-up
decides as documented (checked with ``--dry-run`` on a controlled ``PATH``; nothing is
installed here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [ROOT / "scripts" / name
           for name in ("setup", "setup-browser", "setup-docker", "setup-promtool", "test",
                        "quickstart")]
BASH = "/bin/bash"


@pytest.mark.parametrize("script", [*SCRIPTS, ROOT / ".ci" / "run"], ids=lambda p: p.name)
def test_every_script_parses(script: Path) -> None:
    done = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


def _bin(tmp_path: Path, *tools: str) -> Path:
    """A PATH folder holding ``id`` and do-nothing stand-ins named ``tools``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "id").symlink_to("/usr/bin/id")
    for tool in tools:
        stub = folder / tool
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    return folder


def _setup_browser(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(ROOT / "scripts" / "setup-browser"), "--dry-run"],
                          env={"PATH": str(path)}, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("name", ["chromium", "chromium-browser"])
def test_a_chromium_on_the_path_is_used_as_it_is(tmp_path: Path, name: str) -> None:
    done = _setup_browser(_bin(tmp_path, name, "apt-get"))
    assert done.returncode == 0
    assert (done.stdout, done.stderr) == ("", "")


def test_without_apt_get_it_says_in_one_line_what_to_install(tmp_path: Path) -> None:
    done = _setup_browser(_bin(tmp_path))
    assert done.returncode == 0  # the tests report the missing browser, not the set-up
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "the 2 browser tests will be skipped" in lines[0]
    assert "apt-get install chromium" in lines[0]


def test_as_root_with_apt_get_it_installs_debians_chromium(tmp_path: Path) -> None:
    done = _setup_browser(_bin(tmp_path, "apt-get"))
    assert done.returncode == 0
    if os.geteuid() == 0:
        assert done.stdout.strip() == (
            "setup-browser: would run: apt-get update -qq && "
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium")
        assert done.stderr == ""
    else:  # not root: no install attempt, the one-line hint instead
        assert done.stdout == ""
        assert "apt-get install chromium" in done.stderr


def test_the_dev_setup_and_ci_share_the_browser_setup() -> None:
    # One install path: scripts/setup dev runs setup-browser; .ci/run only calls
    # scripts/test (which runs scripts/setup dev) and installs nothing itself.
    assert "bash scripts/setup-browser" in (ROOT / "scripts" / "setup").read_text()
    assert "bash scripts/setup dev" in (ROOT / "scripts" / "test").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec bash scripts/test" in ci
    assert "apt-get" not in ci
    # Docker too: scripts/setup dev and .ci/run (which must start the engine before
    # scripts/test, to build the images meanwhile) use the same install script.
    assert "bash scripts/setup-docker" in (ROOT / "scripts" / "setup").read_text()
    assert "bash scripts/setup-docker" in ci


def _setup_promtool(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(ROOT / "scripts" / "setup-promtool"), "--dry-run"],
                          env={"PATH": str(path)}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_a_promtool_on_the_path_is_used_as_it_is(tmp_path: Path) -> None:
    done = _setup_promtool(_bin(tmp_path, "promtool", "apt-get"))
    assert done.returncode == 0
    assert (done.stdout, done.stderr) == ("", "")


def test_without_promtool_or_apt_get_it_says_in_one_line_what_to_install(
        tmp_path: Path) -> None:
    done = _setup_promtool(_bin(tmp_path))
    assert done.returncode == 0  # the tests report the missing promtool, not the set-up
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "the promtool tests will be skipped" in lines[0]
    assert "apt-get install prometheus" in lines[0]


def test_as_root_with_apt_get_it_installs_debians_prometheus(tmp_path: Path) -> None:
    done = _setup_promtool(_bin(tmp_path, "apt-get"))
    assert done.returncode == 0
    if os.geteuid() == 0:
        assert done.stdout.strip() == (
            "setup-promtool: would run: apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
            "apt-get install -y -qq --no-install-recommends prometheus")
    else:
        assert "apt-get install prometheus" in done.stderr


def test_the_dev_setup_installs_promtool() -> None:
    assert "bash scripts/setup-promtool" in (ROOT / "scripts" / "setup").read_text()
