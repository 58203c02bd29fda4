"""The docker suite: deploy/'s images and compose stack, for real (marker ``docker``).

Skipped with the reason when Docker is missing here, unless ``FLEETLEARN_REQUIRE_DOCKER=1``
(``.ci/run`` sets it): then a missing engine fails the suite, as CI must run it.

``docker_images`` (session): ``deploy/build-images.sh``, cached (seconds when nothing
changed; it waits for a build already running, such as ``.ci/run``'s background one).
``stack`` (module): one stack (``tests/docker_stack.py``) with 2 workers and Ray Serve
replicas, an admin key, and a model trained through the API; ``down -v`` afterwards,
also on failure (the containers' logs are kept in its folder first). The figures of the
fault tests go to ``$FLEETLEARN_FAULT_FIGURES`` (else the stack's folder).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from docker_stack import WORKER_CPUS, WORKERS, ComposeStack, build_images, docker_missing, wait_for
from sklearn.datasets import load_breast_cancer

from fleetlearn.client import Client

#: Every test here waits on containers: a generous bound, never asserted as a time.
pytestmark = pytest.mark.docker

MODEL = "breast_cancer-logistic_regression"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.docker)
            item.add_marker(pytest.mark.slow)  # out of the quick pass (-m "not slow")
            item.add_marker(pytest.mark.timeout(1800))


@pytest.fixture(scope="session")
def docker_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    missing = docker_missing()
    if missing:
        if os.environ.get("FLEETLEARN_REQUIRE_DOCKER") == "1":
            pytest.fail(f"FLEETLEARN_REQUIRE_DOCKER=1 but {missing}")
        pytest.skip(missing)
    log = tmp_path_factory.mktemp("images") / "build.log"
    seconds = build_images(log)
    print(f"images ready after {seconds:.1f} s: {log.read_text().strip().splitlines()[-1]}")
    return {"build_s": round(seconds, 1)}


@pytest.fixture(scope="module")
def stack(docker_images: dict[str, float],
          request: pytest.FixtureRequest) -> Iterator[ComposeStack]:
    # Not under pytest's temp folder: other pytest sessions on the machine rotate it (keep
    # 3) while this one's containers still mount its gate. Removed after a pass; kept,
    # with the containers' logs, after a failure.
    folder = Path(tempfile.mkdtemp(prefix="fleetlearn-docker-", dir="/tmp"))
    stack = ComposeStack(folder, env={"FLEETLEARN_WORKER_CPUS": str(WORKER_CPUS)})
    timings: dict[str, float] = {**docker_images}
    started = time.monotonic()
    passed = False
    failed_before = request.session.testsfailed
    try:
        stack.up(WORKERS)
        # The API waits for its first key (a server off loopback requires keys).
        api = wait_for(lambda: stack.containers("api"), "the api container", 120)[0]
        created = json.loads(stack.exec(api, "fleetlearn", "keys", "create", "--role", "admin",
                                        "--name", "docker-tests", "--json"))
        stack.api_key = created["key"]
        client = Client(stack.api_url, api_key=stack.api_key, timeout=120)
        wait_for(lambda: client.health(), "the API answering on 127.0.0.1", 300)

        def ray_nodes() -> bool:
            workers = {stack.ip(c) for c in stack.containers("ray-worker")}
            alive = {n.ip for n in stack.cluster_view().alive}
            return len(workers) == WORKERS and workers <= alive and stack.head_ip in alive
        wait_for(ray_nodes, "the head and both workers alive in Ray's GCS", 600, poll_s=2)
        timings["stack_up_s"] = round(time.monotonic() - started, 1)

        # A model, trained through the API on the cluster, for the serving faults.
        table = stack.folder / "breast_cancer.csv"
        frame = load_breast_cancer(as_frame=True).frame
        frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
        frame.to_csv(table, index=False)
        dataset = client.upload_dataset(table)["name"]
        run = client.start_run(dataset, "target", models=["logistic_regression"], folds=3,
                               curves=False, seed=0)
        done = client.wait_for_run(run["id"], timeout=900, poll_s=2)
        assert done["status"] == "finished", done
        records = frame.drop(columns="target").iloc[:20].to_dict(orient="records")
        expected = client.predict(MODEL, records)["predictions"]
        stack.model = {"name": MODEL, "records": records, "expected": expected}
        # Ray Serve's replicas answer through the head's proxy.
        wait_for(lambda: httpx.post(
            f"http://{stack.head_ip}:8001/v1/models/{MODEL}/predict",
            json={"records": records[:1]}, headers=stack.headers,
            timeout=30).status_code == 200, "Ray Serve answering", 600, poll_s=2)
        timings["ready_s"] = round(time.monotonic() - started, 1)
        stack.timings = timings
        print("stack timings:", timings)
        yield stack
        passed = request.session.testsfailed == failed_before
    finally:
        try:
            print("containers' logs:", stack.logs())
        finally:
            stack.down()
            if passed:
                shutil.rmtree(folder, ignore_errors=True)
