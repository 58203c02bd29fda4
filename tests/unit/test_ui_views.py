"""The GUI's page logic (``fleetlearn.ui._views``): API answers in, tables and numbers
out. Cluster answers are built by fleetlearn's own ``ClusterView.to_dict`` (what
``GET /v1/cluster`` serves)."""

from __future__ import annotations

import pytest

from fleetlearn.cluster import ClusterView, NodeView
from fleetlearn.ui import _views as views

GIB = 2**30


def _node(ip: str, *, alive: bool = True, head: bool = False, cpus_used: float = 0.0,
          reason: str | None = None) -> NodeView:
    return NodeView(node_id=f"{ip.replace('.', '')}abcdef0123", ip=ip, alive=alive,
                    is_head=head, state="RUNNING" if alive else "DEAD",
                    resources={"cpus": {"total": 2.0, "used": cpus_used},
                               "memory": {"total": 4.0 * GIB, "used": 1.0 * GIB},
                               "object_store": {"total": 1.0 * GIB, "used": 0.0}},
                    death_reason=reason)


def _cluster() -> dict:
    return ClusterView(address="127.0.1.1:6380", nodes=[
        _node("127.0.0.3", alive=False, reason="killed"), _node("127.0.0.2", cpus_used=2.0),
        _node("127.0.1.1", head=True, cpus_used=1.0)], pending_tasks=3).to_dict()


def test_cluster_summary_counts_alive_and_dead_and_sums_alive_resources() -> None:
    s = views.cluster_summary({**_cluster(), "reachable": True})
    assert (s.nodes_alive, s.nodes_dead, s.pending_tasks) == (2, 1, 3)
    assert s.resources["cpus"] == (3.0, 4.0)  # the dead node's CPUs are not counted
    assert s.text("cpus") == "3 / 4 (75 %)"
    assert s.text("memory") == "2 / 8 GiB (25 %)"
    assert s.headline.startswith("Ray cluster at 127.0.1.1:6380: 2 node(s) alive, 1 dead")


def test_an_unreachable_head_and_local_mode_are_said_plainly() -> None:
    down = views.cluster_summary({"mode": "cluster", "address": "10.0.0.5:6380",
                                  "reachable": False, "error": "no answer within 5 s"})
    assert down.headline == ("The Ray cluster at 10.0.0.5:6380 does not answer: "
                             "no answer within 5 s")
    assert down.text("cpus") == "–"
    assert "No Ray cluster" in views.cluster_summary({"mode": "local"}).headline


def test_nodes_frame_lists_head_first_and_dead_nodes_last() -> None:
    frame = views.nodes_frame(_cluster())
    assert frame[["role", "state", "address"]].values.tolist() == [
        ["head", "RUNNING", "127.0.1.1"], ["worker", "RUNNING", "127.0.0.2"],
        ["worker", "DEAD", "127.0.0.3"]]
    assert frame["CPUs used"].tolist() == [1.0, 2.0, 0.0]
    assert frame["memory total (GiB)"].tolist() == [4.0, 4.0, 4.0]
    assert frame["death reason"].tolist() == ["", "", "killed"]
    assert views.nodes_frame({"mode": "local"}).empty


def test_resource_history_is_bounded_and_skips_answers_without_a_cluster() -> None:
    history: list = []
    for t in range(10):
        history = views.resource_history(history, _cluster(), now=float(t), limit=4)
    assert [p["t"] for p in history] == [6.0, 7.0, 8.0, 9.0]
    assert views.resource_history(history, {"mode": "local"}, now=99.0, limit=4) == history
    frame = views.resource_history_frame(history)
    assert frame["CPUs in use (%)"].tolist() == [75.0] * 4


def test_leaderboard_marks_the_first_row_best_even_when_another_shares_its_rank() -> None:
    rows = [{"dataset": "d", "rank": 1, "model": "a", "cv_mean": 0.9, "tied_with_best": True},
            {"dataset": "d", "rank": 1, "model": "b", "cv_mean": 0.9, "tied_with_best": True},
            {"dataset": "d", "rank": 3, "model": "c", "cv_mean": 0.5, "tied_with_best": False},
            {"dataset": "d", "rank": 4, "model": "e", "cv_mean": None,
             "tied_with_best": None},
            {"dataset": "f", "rank": 1, "model": "a", "cv_mean": 0.7, "tied_with_best": True}]
    frame = views.leaderboard_frame(rows, "d")
    assert frame["versus best"].tolist() == ["best", "tied with best", "worse", "not tested"]
    assert views.leaderboard_frame(rows, "f")["versus best"].tolist() == ["best"]
    assert views.leaderboard_datasets(rows) == ["d", "f"]


def test_serving_frame_reads_recent_rates_and_totals() -> None:
    stats = {"models": [{"model": "m", "version": 2, "requests": 40, "errors": 4,
                         "p50_ms": 3.0, "p99_ms": 9.0,
                         "recent": {"requests": 10, "errors": 1, "error_rate": 0.1,
                                    "rps": 0.5, "p50_ms": 2.0, "p99_ms": 8.0}}]}
    row = views.serving_frame(stats).iloc[0]
    assert (row["model"], row["version"], row["requests"], row["errors"]) == ("m", 2, 40, 4)
    assert row["error rate (%)"] == pytest.approx(10.0)
    assert (row["p50 (ms)"], row["p99 (ms)"], row["requests/s"]) == (2.0, 8.0, 0.5)
    assert views.serving_totals(stats) == (0.5, pytest.approx(10.0))
    assert views.serving_totals({"models": []}) == (0.0, 0.0)


@pytest.mark.parametrize(("page", "shown", "expected"), [
    (0, 50, (0, True, "rows 1–50")), (2, 7, (100, False, "rows 101–107")),
    (1, 0, (50, False, "no rows"))])
def test_page_window(page: int, shown: int, expected: tuple) -> None:
    assert views.page_window(page, shown, size=50) == expected


def test_the_gui_imports_only_the_client_and_the_figure_builders() -> None:
    # A thin client: no registry, insights, training, serving or Ray in the GUI's code.
    import ast
    from pathlib import Path

    import fleetlearn.ui

    allowed = {"fleetlearn", "fleetlearn.client", "fleetlearn.errors", "fleetlearn.reports",
               "fleetlearn.ui", "fleetlearn.ui._views", "fleetlearn.ui._session",
               "fleetlearn.ui._widgets"}
    root = Path(fleetlearn.ui.__file__).parent
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.split(".")[0] in ("fleetlearn", "ray"):
                    found.setdefault(str(path.relative_to(root)), set()).add(name)
    assert len(found) >= 6  # the app, four pages, the views and the session
    wrong = {f: sorted(n - allowed) for f, n in found.items() if n - allowed}
    assert wrong == {}, f"the GUI must talk HTTP only: {wrong}"


def test_run_progress_view_gives_the_time_left_at_the_pace_so_far() -> None:
    run = {"status": "running", "started_at": "2024-01-01T00:00:00+00:00",
           "progress": {"units_done": 10, "units_total": 40, "fraction": 0.25,
                        "datasets": {"a": {"units_done": 10, "units_total": 20},
                                     "b": {"units_done": 0, "units_total": 20}}}}
    now = 120.0 + 1704067200.0  # two minutes after the start
    view = views.run_progress_view(run, now=now)
    assert (view.units_done, view.units_total, view.fraction) == (10, 40, 0.25)
    assert view.eta_s == pytest.approx(360.0)
    assert view.datasets.values.tolist() == [["a", 10, 20], ["b", 0, 20]]
    assert not view.ended
    done = views.run_progress_view({**run, "status": "finished"}, now=now)
    assert done.ended
    assert done.eta_s is None
    assert views.run_progress_view({"status": "starting"}).fraction == 0.0


def test_best_so_far_is_each_datasets_first_scored_row() -> None:
    rows = [{"dataset": "d", "model": "pending", "cv_mean": None, "metric": "r2"},
            {"dataset": "d", "model": "ridge", "cv_mean": 0.7, "metric": "r2"},
            {"dataset": "e", "model": "svc", "cv_mean": 0.9, "metric": "accuracy"}]
    assert views.best_so_far(rows).values.tolist() == [["d", "ridge", "r2", 0.7],
                                                       ["e", "svc", "accuracy", 0.9]]
    assert views.model_specs(" \n ") is None
