"""``Registry.list_models`` filters, orders and pages in SQL, on SQLite and PostgreSQL.

250 versions of 125 models on a classification and a regression dataset, some
aliased, some without a score (missing, null or not a number): every page read in turn
concatenates to the whole list, each list is in its order (by name; by score, best
first with the metric's direction, ties by name), and the filters keep what they say.
The expected lists are computed here in Python from what was registered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pg_fixtures import shared_postgres_databases
from sklearn.dummy import DummyClassifier

from fleetlearn.registry import Registry
from fleetlearn.registry._artifacts import dump_estimator

NAMES = 125  # two versions each: 250
PAGE = 40


@dataclass
class Registered:
    """What was registered: (name, version) -> its dataset, score and aliases."""

    registry: Registry
    dataset: dict[tuple[str, int], str]
    score: dict[tuple[str, int], float | None]
    aliases: dict[tuple[str, int], set[str]]

    def latest(self) -> list[tuple[str, int]]:
        return sorted((n, 2) for n in {n for n, _ in self.dataset})


@pytest.fixture(params=["sqlite", "postgresql"])
def registered(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registered]:
    if request.param == "postgresql":
        with shared_postgres_databases() as create:
            yield from _fill(create(), tmp_path)
    else:
        yield from _fill(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path)


def _fill(url: str, tmp_path: Path) -> Iterator[Registered]:
    reg = Registry(url, artifact_dir=tmp_path / "artifacts")
    artifact = dump_estimator(DummyClassifier().fit([[0], [1]], [0, 1]))
    run = reg.create_run({"models": ["dummy"]}, seed=0)
    datasets = {}
    for name, task in (("flowers", "classification"), ("houses", "regression")):
        datasets[name] = reg.add_dataset(
            run.id, fingerprint=name * 8, name=name, source=f"/nowhere/{name}.csv",
            n_rows=10, n_features=1, task=task, target="y",
            schema={"target": "y", "task": task, "columns": []})
    rng = np.random.default_rng(0)
    out = Registered(reg, {}, {}, {})
    for i in range(NAMES):
        dataset = "flowers" if i % 2 == 0 else "houses"
        metric = "accuracy" if dataset == "flowers" else "rmse"
        # Shuffled names (registration order is not the name order) and rounded scores
        # (ties, broken by name).
        name = f"m{(i * 37) % NAMES:03d}-{dataset}"
        for version in (1, 2):
            score: Any = round(float(rng.uniform(0, 1)), 1)
            if (i + version) % 9 == 0:
                score = None  # stored as JSON null
            elif (i + version) % 11 == 0:
                score = "n/a"  # not a number
            test = {metric: score} if (i + version) % 13 else {}  # missing
            mv = reg.register_model(
                name, artifact=artifact, run_id=run.id, dataset_id=datasets[dataset].id,
                metrics={"test": test, "primary_metric": metric}, params={},
                input_schema={"columns": []})
            key = (mv.name, mv.version)
            out.dataset[key] = dataset
            out.score[key] = test.get(metric) if isinstance(test.get(metric), float) else None
            out.aliases[key] = set()
        if i % 3 == 0:
            reg.set_alias(name, "prod", 1)
            out.aliases[(name, 1)].add("prod")
        if i % 5 == 0:
            reg.set_alias(name, "staging", 2)
            out.aliases[(name, 2)].add("staging")
    assert len(out.dataset) == 2 * NAMES
    try:
        yield out
    finally:
        reg.close()


def _pages(reg: Registry, **filters: Any) -> list[tuple[str, int]]:
    """Every page of ``filters`` in turn, concatenated (checked to equal the unpaged list)."""
    keys: list[tuple[str, int]] = []
    while True:
        page = reg.list_models(limit=PAGE, offset=len(keys), **filters)
        assert len(page) <= PAGE
        keys += [(mv.name, mv.version) for mv in page]
        if len(page) < PAGE:
            break
    whole = [(mv.name, mv.version) for mv in reg.list_models(**filters)]
    assert keys == whole
    assert len(set(keys)) == len(keys)
    return keys


def _best_first(r: Registered, keys: list[tuple[str, int]], higher: bool
                ) -> list[tuple[str, int]]:
    scored = [k for k in keys if r.score[k] is not None]
    return sorted(scored, key=lambda k: (-r.score[k] if higher else r.score[k], k))


def test_latest_versions_page_by_name(registered: Registered) -> None:
    keys = _pages(registered.registry)
    assert keys == registered.latest()
    assert len(keys) == NAMES
    page = registered.registry.list_models(limit=PAGE, offset=120)
    assert [(mv.name, mv.version) for mv in page] == registered.latest()[120:]


def test_versions_holding_an_alias_page_by_name_and_version(registered: Registered) -> None:
    keys = _pages(registered.registry, has_alias=True)
    expected = sorted(k for k, a in registered.aliases.items() if a)
    assert keys == expected
    assert any(v == 1 for _, v in keys)  # not only latest versions
    listed = {(mv.name, mv.version): set(mv.aliases)
              for mv in registered.registry.list_models(has_alias=True)}
    assert listed == {k: registered.aliases[k] for k in expected}
    houses = _pages(registered.registry, has_alias=True, task="regression")
    assert houses == [k for k in expected if registered.dataset[k] == "houses"]


def test_an_alias_lists_the_version_it_points_at(registered: Registered) -> None:
    keys = _pages(registered.registry, alias="prod")
    assert keys == sorted(k for k, a in registered.aliases.items() if "prod" in a)
    assert {v for _, v in keys} == {1}
    flowers = _pages(registered.registry, alias="staging", dataset="flowers")
    assert flowers == sorted(k for k, a in registered.aliases.items()
                             if "staging" in a and registered.dataset[k] == "flowers")


def test_metric_orders_best_first_in_its_direction(registered: Registered) -> None:
    r = registered
    latest = r.latest()
    accuracy = _pages(r.registry, metric="accuracy")
    assert accuracy == _best_first(r, [k for k in latest if r.dataset[k] == "flowers"], True)
    assert len(accuracy) > PAGE  # more than a page, though null/text/missing are left out
    scores = [r.score[k] for k in accuracy]
    assert scores == sorted(scores, reverse=True)
    rmse = _pages(r.registry, metric="rmse", higher_is_better=False, task="regression")
    assert rmse == _best_first(r, [k for k in latest if r.dataset[k] == "houses"], False)
    assert [r.score[k] for k in rmse] == sorted(r.score[k] for k in rmse)
    # Filters and the metric together, one page in the middle.
    aliased = _pages(r.registry, metric="accuracy", has_alias=True)
    assert aliased == _best_first(r, [k for k, a in r.aliases.items() if a
                                      and r.dataset[k] == "flowers"], True)
    middle = r.registry.list_models(metric="accuracy", limit=5, offset=7)
    assert [(mv.name, mv.version) for mv in middle] == accuracy[7:12]


def test_a_metric_no_version_has_lists_nothing(registered: Registered) -> None:
    assert registered.registry.list_models(metric="f1_macro") == []
    assert registered.registry.list_models(metric='acc"uracy') == []
    assert registered.registry.list_models(alias="nope") == []
