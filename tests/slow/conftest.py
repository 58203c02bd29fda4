"""Slow suites: real subprocess drivers, multi-node clusters, killed processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cluster_fixtures
import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/slow" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def isolated_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a subprocess driver: its own HOME, Ray temp dir and fleetlearn home.

    The Ray temp dir is short (Ray's unix socket paths must stay under ~107 bytes).
    """
    ray_tmp = tempfile.mkdtemp(prefix="flrs-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FLEETLEARN_"))}
    env.update(HOME=ray_tmp, RAY_TMPDIR=ray_tmp, FLEETLEARN_HOME=str(tmp_path / "home"),
               PYTHONUNBUFFERED="1")
    yield env
    kill_processes_mentioning(ray_tmp)
    shutil.rmtree(ray_tmp, ignore_errors=True)


def kill_processes_mentioning(text: str) -> None:
    """Kill what a killed driver may leave behind: processes whose command line holds
    ``text`` (our own temp dir). Never ``ray stop``, which would hit every Ray on the
    machine."""
    import signal

    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            try:
                os.kill(int(pid_dir.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


# The real process cluster (tests/cluster_fixtures.py): `process_cluster(workers=2, ...)`.
process_cluster = cluster_fixtures.process_cluster
redis_server = cluster_fixtures.redis_server


@pytest.fixture(autouse=True)
def _ray_security_env_restored() -> Iterator[None]:
    """A test whose driver joined a TLS + token cluster in this process (connect_ray
    takes the cluster's variables for good), or that patched them into os.environ, must
    not leave them, or a Ray config read from them, to the next test's embedded Ray:
    that Ray would call its own GCS with another cluster's token and Ray would abort
    this process."""
    from fleetlearn.security import _ray_auth, use_ray_security
    from fleetlearn.security._ray_auth import AUTH_ENV, TLS_ENV

    def current() -> dict[str, str]:
        return {k: os.environ[k] for k in (*TLS_ENV, *AUTH_ENV) if k in os.environ}

    saved = current()
    yield
    if current() != saved or _ray_auth._applied not in (None, saved):
        use_ray_security(saved)
