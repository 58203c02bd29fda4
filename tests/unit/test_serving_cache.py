"""The model cache behind the predict route: one load per model, eviction by count and bytes.

The ASGI app in memory (no Ray, no network) over a real SQLite registry holding
models registered as training registers them (tests/model_fixtures.py); fixtures
in tests/api_fixtures.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import (
    PREDICT,
    house_records,
    metrics_of,
    pipeline_says,
    sample,
    serve,
    settings_for,
    state_of,
    toy_records,
)
from model_fixtures import ServingModels, open_registry

from fleetlearn.api import create_app
from fleetlearn.registry import Registry
from fleetlearn.serving import ServingState


def test_concurrent_first_requests_load_the_model_once(home: Path,
                                                       models: ServingModels) -> None:
    settings = settings_for(home)
    state = ServingState(settings, registry=open_registry(home))
    app = create_app(settings, state=state)

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(*(
                http.post(PREDICT.format("toy-forest"), json={"records": toy_records(1, seed=i)})
                for i in range(16)))

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 16
    for i, response in enumerate(responses):  # each request got its own row's answer
        assert response.json()["predictions"] == pipeline_says(
            models, "toy-forest", toy_records(1, seed=i))
    assert state.cache.loads == 1
    metrics = state.metrics
    assert metrics.cache_misses._value.get() == 16  # every request found it absent...
    assert metrics.load_seconds.labels("toy-forest", "1")._sum.get() > 0  # ...one loaded it
    state.registry.close()


def test_cache_evicts_the_least_recently_used_model_by_count(home: Path,
                                                            models: ServingModels) -> None:
    with serve(home, max_models=2) as client:
        state = state_of(client)
        toy, house = {"records": toy_records(1)}, {"records": house_records(1)}
        for name, body in (("toy-logreg", toy), ("toy-forest", toy), ("toy-logreg", toy),
                           ("house-ridge", house)):
            answer = client.post(PREDICT.format(name), json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == pytest.approx(
                pipeline_says(models, name, body["records"]))
        assert [m.version.name for m in state.cache.cached()] == ["toy-logreg", "house-ridge"]
        assert state.cache.loads == 3
        # The evicted model is loaded again when asked for, and still answers.
        again = client.post(PREDICT.format("toy-forest"), json=toy).json()
        assert (again["model"], again["version"]) == ("toy-forest", 1)
        assert again["predictions"] == pipeline_says(models, "toy-forest", toy["records"])
        assert state.cache.loads == 4
        metrics = metrics_of(client)
        assert sample(metrics, "fleetlearn_model_cache_evictions_total") == 2
        assert sample(metrics, "fleetlearn_model_cache_models") == 2
        assert sample(metrics, "fleetlearn_model_cache_hits_total") == 1
        assert sample(metrics, "fleetlearn_model_cache_misses_total") == 4


def test_cache_evicts_by_bytes_but_serves_a_model_bigger_than_the_bound(
        home: Path, registry: Registry, models: ServingModels) -> None:
    sizes = {n: registry.get_model_version(n).artifact_size
             for n in ("toy-logreg", "toy-forest", "house-ridge")}
    limit = max(sizes.values()) + 1  # any two models together are over it
    with serve(home, max_cache_mb=limit / 2**20) as client:
        state = state_of(client)
        for name in ("toy-logreg", "toy-forest"):
            body = client.post(PREDICT.format(name), json={"records": toy_records(1)})
            assert body.status_code == 200, body.text
            assert body.json()["predictions"] == pipeline_says(models, name, toy_records(1))
            assert [m.version.name for m in state.cache.cached()] == [name]
            assert state.cache.size_bytes == sizes[name] <= limit
        assert sample(metrics_of(client), "fleetlearn_model_cache_bytes") == sizes["toy-forest"]
    with serve(home, max_cache_mb=1e-6) as client:  # smaller than any model
        big = client.post(PREDICT.format("toy-forest"), json={"records": toy_records(1)})
        assert big.status_code == 200, big.text
        assert big.json()["predictions"] == pipeline_says(models, "toy-forest", toy_records(1))


def test_model_evicted_during_concurrent_requests_answers_them_all(
        home: Path, models: ServingModels) -> None:
    settings = settings_for(home, max_models=1)
    state = ServingState(settings, registry=open_registry(home))
    app = create_app(settings, state=state)

    sent: list[tuple[str, list[dict[str, Any]]]] = []

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            calls = []
            for i in range(12):  # sent[i] is (model, records) of calls[i]
                name = ("toy-logreg", "toy-forest", "house-ridge")[i % 3]
                records = house_records(2) if name == "house-ridge" else toy_records(2, seed=i)
                sent.append((name, records))
                calls.append(http.post(PREDICT.format(name), json={"records": records}))
            return await asyncio.wait_for(asyncio.gather(*calls), timeout=60)

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 12
    for (name, records), response in zip(sent, responses, strict=True):
        body = response.json()
        assert (body["model"], body["version"]) == (name, 1)
        assert body["predictions"] == pytest.approx(pipeline_says(models, name, records))
    assert len(state.cache) == 1
    state.registry.close()

