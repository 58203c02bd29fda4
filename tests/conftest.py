"""Fixtures shared by the integration and slow suites.

``ray_session``: one embedded Ray for the whole test session. A process holds a single
Ray connection, and Ray 2.60 caches its auth token per process, so a second embedded Ray
started later in the same process (with another HOME) cannot start its GCS: every suite
that needs Ray in-process shares this one; suites that need their own cluster start it
in subprocesses.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

#: The test estimators' modules (tests/gated_models.py, tests/fault_models.py), allowed
#: by dotted path on every server the tests start, in-process or as a child (the
#: default allow-list is scikit-learn, XGBoost, LightGBM). Tests of the allow-list
#: itself pass ``model_packages`` explicitly.
TEST_MODEL_PACKAGES = "sklearn,xgboost,lightgbm,gated_models,fault_models"
os.environ.setdefault("FLEETLEARN_SERVE_MODEL_PACKAGES", TEST_MODEL_PACKAGES)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One embedded Ray for every integration test (starting one costs ~5 s).

    Its own HOME and RAY_TMPDIR keep Ray's auth token and session files out of the
    user's home. The temp dir path is short: Ray's unix sockets live there.
    """
    import ray

    tmp = tempfile.mkdtemp(prefix="flr-", dir="/tmp")
    saved = {k: os.environ.get(k) for k in ("HOME", "RAY_TMPDIR", "RAY_ADDRESS", "PYTHONPATH")}
    os.environ["HOME"] = tmp
    os.environ["RAY_TMPDIR"] = tmp
    os.environ.pop("RAY_ADDRESS", None)
    # Ray workers start with the raylet's environment, not their driver's sys.path: with
    # tests/ on PYTHONPATH, the workers of this process and of `fleetlearn train`
    # children (which inherit it too) import test-support estimators given as
    # module.Class model specs (tests/gated_models.py).
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (TESTS_DIR, saved["PYTHONPATH"]) if p)
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             object_store_memory=80 * 2**20, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(tmp, ignore_errors=True)




def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop multiprocessing children a failed test left behind, so pytest can exit.

    multiprocessing joins its non-daemon children when the interpreter exits: one
    child stuck after a failure would keep pytest (and CI) waiting forever after the
    summary is printed. They are this process's own children, stopped by PID.
    """
    import multiprocessing

    for child in multiprocessing.active_children():
        print(f"\nstopping process {child.pid} ({child.name}) left by a test")
        child.kill()
        child.join(timeout=10)
