"""What the GUI's pages show, computed from the API's answers: no Streamlit here.

Each function takes the JSON a :class:`fleetlearn.Client` method returned (plain dicts
and lists) and gives back a table (``pandas.DataFrame`` with the columns a user reads),
a figure (the Plotly builders of :mod:`fleetlearn.reports`, so a figure looks as in the
HTML report) or a few numbers. The pages only lay these out.

>>> summary = cluster_summary({"mode": "local"})
>>> summary.mode, summary.nodes_alive
('local', 0)
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = [
    "PAGE_SIZE",
    "ClusterSummary",
    "MachineSnapshot",
    "cluster_summary",
    "nodes_frame",
    "resource_history",
    "resource_history_frame",
    "runs_frame",
    "leaderboard_frame",
    "leaderboard_datasets",
    "FIGURE_LABELS",
    "figure_tabs",
    "plotly_figure",
    "AcrossDatasets",
    "across_datasets",
    "trend_choices",
    "trends_view",
    "models_frame",
    "versions_frame",
    "version_metrics_frame",
    "lineage_rows",
    "schema_frame",
    "serving_frame",
    "serving_totals",
    "inference_figure_of",
    "machine_snapshot",
    "page_window",
    "MonitoringSnapshot",
    "collect_monitoring",
    "BATCH_ROWS",
    "BatchResult",
    "InputField",
    "input_fields",
    "record_of",
    "probabilities_frame",
    "problems_frame",
    "shift_rows",
    "predict_table",
    "RunProgressView",
    "run_progress_view",
    "best_so_far",
    "model_specs",
    "profile_summary",
    "profile_columns_frame",
    "catalog_choices",
    "EDITABLE_TYPES",
    "param_fields",
    "model_entries",
    "run_datasets",
]

#: Rows asked of the server per page of runs and of models.
PAGE_SIZE = 50
#: Points kept of the cluster's resource history (one per refresh: 10 min at 5 s).
HISTORY_POINTS = 120

GIB = 2**30


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _used_total(resources: Mapping[str, Any], key: str) -> tuple[float, float]:
    entry = resources.get(key) or {}
    return float(entry.get("used") or 0.0), float(entry.get("total") or 0.0)


def _fraction_text(used: float, total: float, unit: str = "", scale: float = 1.0) -> str:
    if total <= 0:
        return "–"
    pct = 100.0 * used / total
    return f"{used / scale:.3g} / {total / scale:.3g}{unit} ({pct:.0f} %)"


# ------------------------------------------------------------------ cluster


@dataclass(frozen=True)
class ClusterSummary:
    """The cluster at a glance (``GET /v1/cluster``)."""

    mode: str
    address: str | None
    reachable: bool | None
    error: str | None
    nodes_alive: int
    nodes_dead: int
    pending_tasks: int
    #: "cpus", "memory", "object_store": (used, total); bytes for the last two
    resources: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        """One sentence for the top of a page."""
        if self.mode != "cluster":
            return ("No Ray cluster behind this server: each run starts an embedded Ray of "
                    "its own.")
        if self.reachable is False:
            return f"The Ray cluster at {self.address} does not answer: {self.error}"
        return (f"Ray cluster at {self.address}: {self.nodes_alive} node(s) alive, "
                f"{self.nodes_dead} dead, {self.pending_tasks} task(s) waiting for "
                "resources.")

    def text(self, key: str) -> str:
        """``used / total (pct)`` of one resource, GiB for memory."""
        used, total = self.resources.get(key, (0.0, 0.0))
        if key == "cpus":
            return _fraction_text(used, total)
        return _fraction_text(used, total, " GiB", GIB)


def cluster_summary(cluster: Mapping[str, Any]) -> ClusterSummary:
    """The counts and resource totals of a ``GET /v1/cluster`` answer.

    >>> s = cluster_summary({"mode": "cluster", "address": "127.0.1.1:6380",
    ...     "reachable": True, "nodes_alive": 2, "nodes_dead": 1, "pending_tasks": 0,
    ...     "resources": {"cpus": {"used": 1.0, "total": 4.0}}})
    >>> s.text("cpus")
    '1 / 4 (25 %)'
    """
    resources = cluster.get("resources") or {}
    return ClusterSummary(
        mode=str(cluster.get("mode") or "local"), address=cluster.get("address"),
        reachable=cluster.get("reachable"), error=cluster.get("error"),
        nodes_alive=int(cluster.get("nodes_alive") or 0),
        nodes_dead=int(cluster.get("nodes_dead") or 0),
        pending_tasks=int(cluster.get("pending_tasks") or 0),
        resources={k: _used_total(resources, k) for k in ("cpus", "memory", "object_store")})


def nodes_frame(cluster: Mapping[str, Any]) -> pd.DataFrame:
    """One row per node (alive first, the head on top): state, address, resources.

    Columns: ``node, role, state, address, CPUs used, CPUs total, memory used (GiB),
    memory total (GiB), object store used (GiB), object store total (GiB), death reason``.
    """
    rows = []
    for node in cluster.get("nodes") or []:
        res = node.get("resources") or {}
        cpu_used, cpu_total = _used_total(res, "cpus")
        mem_used, mem_total = _used_total(res, "memory")
        obj_used, obj_total = _used_total(res, "object_store")
        rows.append({
            "node": str(node.get("node_id", ""))[:12],
            "role": "head" if node.get("is_head") else "worker",
            "state": node.get("state") or ("ALIVE" if node.get("alive") else "DEAD"),
            "address": node.get("ip"),
            "CPUs used": cpu_used, "CPUs total": cpu_total,
            "memory used (GiB)": round(mem_used / GIB, 3),
            "memory total (GiB)": round(mem_total / GIB, 3),
            "object store used (GiB)": round(obj_used / GIB, 3),
            "object store total (GiB)": round(obj_total / GIB, 3),
            "death reason": node.get("death_reason") or "",
            "_order": (not node.get("alive"), not node.get("is_head")),
        })
    columns = ["node", "role", "state", "address", "CPUs used", "CPUs total",
               "memory used (GiB)", "memory total (GiB)", "object store used (GiB)",
               "object store total (GiB)", "death reason"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows).sort_values("_order", kind="stable")
    return frame[columns].reset_index(drop=True)


def resource_history(history: list[dict[str, Any]], cluster: Mapping[str, Any],
                     now: float | None = None, limit: int = HISTORY_POINTS
                     ) -> list[dict[str, Any]]:
    """``history`` with one more point of the cluster's resources in use vs total,
    at most ``limit`` points kept (the oldest dropped), so a page left open for hours
    holds a bounded list. Returns the new list (``history`` is not changed).

    >>> h = resource_history([], {"mode": "cluster", "reachable": True,
    ...     "resources": {"cpus": {"used": 1, "total": 2}}}, now=0.0)
    >>> h[0]["cpus_used"], h[0]["cpus_total"]
    (1.0, 2.0)
    """
    summary = cluster_summary(cluster)
    if summary.mode != "cluster" or summary.reachable is False:
        return list(history)[-limit:]
    point: dict[str, Any] = {"t": time.time() if now is None else now}
    for key, (used, total) in summary.resources.items():
        point[f"{key}_used"], point[f"{key}_total"] = used, total
    return [*history, point][-limit:]


def resource_history_frame(history: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The history as percentages in use, indexed by time (for a line chart)."""
    rows = []
    for p in history:
        row: dict[str, Any] = {"time": pd.Timestamp(p["t"], unit="s", tz="UTC")}
        for key, label in (("cpus", "CPUs in use (%)"), ("memory", "memory in use (%)"),
                           ("object_store", "object store in use (%)")):
            total = p.get(f"{key}_total") or 0.0
            row[label] = 100.0 * (p.get(f"{key}_used") or 0.0) / total if total else None
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["CPUs in use (%)", "memory in use (%)",
                                     "object store in use (%)"])
    return pd.DataFrame(rows).set_index("time")


# ------------------------------------------------------------------ runs


def runs_frame(runs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """``GET /v1/runs`` rows as a table: ``id, name, status, datasets, created, finished,
    error``."""
    columns = ["id", "name", "status", "datasets", "created", "finished", "error"]
    rows = [{"id": r.get("id"), "name": r.get("name") or "", "status": r.get("status"),
             "datasets": ", ".join(r.get("datasets") or []),
             "created": _time_text(r.get("created_at")),
             "finished": _time_text(r.get("finished_at")),
             "error": (r.get("error") or "")[:200]} for r in runs]
    return pd.DataFrame(rows, columns=columns)


def _time_text(value: Any) -> str:
    if not value:
        return ""
    try:
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, TypeError):
        return str(value)


def _tied_text(row: Mapping[str, Any], first: bool) -> str:
    # The best is the dataset's first row (the server sorts them); another row may share
    # its rank (equal means) and is then "tied with best", as its test says.
    if first:
        return "best"
    tied = row.get("tied_with_best")
    if tied is None:
        return "not tested"
    return "tied with best" if tied else "worse"


def leaderboard_datasets(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The datasets of a leaderboard, in the order they appear."""
    return list(dict.fromkeys(str(r.get("dataset")) for r in rows))


def leaderboard_frame(rows: Sequence[Mapping[str, Any]], dataset: str | None = None
                      ) -> pd.DataFrame:
    """A leaderboard (``GET /v1/runs/{id}/leaderboard`` rows) as the GUI shows it: per
    model its rank, CV mean ± std, the 95 % confidence interval, the held-out test
    score, the tied-with-best marking, fit time, status.

    >>> leaderboard_frame([{"dataset": "d", "rank": 1, "model": "m", "metric": "r2",
    ...     "cv_mean": 0.5, "cv_std": 0.1, "ci_low": 0.4, "ci_high": 0.6, "test": 0.55,
    ...     "tied_with_best": None}])["versus best"].tolist()
    ['best']
    """
    columns = ["dataset", "rank", "model", "metric", "cv mean", "cv std", "95% CI low",
               "95% CI high", "test", "versus best", "p (Holm)", "fit time (s)", "folds",
               "status"]
    out = []
    seen: set[str] = set()
    for r in rows:
        if dataset is not None and str(r.get("dataset")) != dataset:
            continue
        first = str(r.get("dataset")) not in seen
        seen.add(str(r.get("dataset")))
        out.append({
            "dataset": r.get("dataset"), "rank": r.get("rank"), "model": r.get("model"),
            "metric": r.get("metric"), "cv mean": _num(r.get("cv_mean")),
            "cv std": _num(r.get("cv_std")), "95% CI low": _num(r.get("ci_low")),
            "95% CI high": _num(r.get("ci_high")), "test": _num(r.get("test")),
            "versus best": _tied_text(r, first), "p (Holm)": _num(r.get("p_adjusted")),
            "fit time (s)": _num(r.get("fit_time_s")), "folds": r.get("folds"),
            "status": r.get("status"),
        })
    return pd.DataFrame(out, columns=columns)


#: Tab labels of the figures' kinds (``GET /v1/runs/{id}/figures``), in report order.
FIGURE_LABELS = {
    "fold-scores": "Folds", "training-curve": "Training curves",
    "learning-curve": "Learning curves", "cost-quality": "Fit time vs score",
    "confusion": "Confusion matrix", "roc": "ROC", "precision-recall": "Precision-recall",
    "predicted-vs-actual": "Predicted vs actual", "residuals": "Residuals",
    "importance": "Importance", "trends": "Trends", "critical-difference":
    "Critical difference", "inference": "Inference",
}


def figure_tabs(figures: Sequence[Mapping[str, Any]], dataset: str | None
                ) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """The figures of one dataset (``None``: those of the whole run) grouped by kind, in
    the server's order: ``[(tab label, [figure, ...]), ...]``.

    >>> figure_tabs([{"kind": "roc", "dataset": "iris"}, {"kind": "fold-scores",
    ...     "dataset": "iris"}, {"kind": "roc", "dataset": "wine"}], "iris")[0][0]
    'ROC'
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for f in figures:
        if f.get("dataset") == dataset:
            groups.setdefault(str(f.get("kind")), []).append(f)
    return [(FIGURE_LABELS.get(kind, kind), part) for kind, part in groups.items()]


def plotly_figure(item: Mapping[str, Any]) -> Any:
    """A figure of ``GET /v1/runs/{id}/figures`` as a ``plotly.graph_objects.Figure``."""
    import json

    import plotly.io

    return plotly.io.from_json(json.dumps(item["figure"]))


@dataclass(frozen=True)
class AcrossDatasets:
    """One task's comparison across datasets, as the Compare page shows it."""

    task: str
    metric: str
    datasets: int
    ranks: pd.DataFrame  # model, average rank, group (models not significantly apart)
    scores: pd.DataFrame  # dataset x model
    friedman_text: str
    critical_difference: float | None
    dropped: list[str] = field(default_factory=list)


def across_datasets(compare: Mapping[str, Any]) -> list[AcrossDatasets]:
    """Per task of ``GET /v1/runs/{id}/compare``: average ranks (best first) with the
    Nemenyi groups, the scores table, and Friedman's test in one sentence.

    >>> a = across_datasets({"alpha": 0.05, "across_datasets": {"classification": {
    ...     "metric": "accuracy", "datasets": ["a", "b"], "models": ["x", "y"],
    ...     "scores": {"a": {"x": 0.9, "y": 0.8}, "b": {"x": 0.7, "y": 0.6}},
    ...     "average_ranks": {"y": 2.0, "x": 1.0}, "friedman": {"statistic": 2.0,
    ...     "p_value": 0.157, "df": 1}, "critical_difference": 1.39,
    ...     "groups": [["x", "y"]]}}})[0]
    >>> a.ranks["model"].tolist(), a.friedman_text.split(":")[0]
    (['x', 'y'], 'Friedman χ² = 2.00 (df 1), p = 0.157')
    """
    alpha = _num(compare.get("alpha")) or 0.05
    out = []
    for task, c in (compare.get("across_datasets") or {}).items():
        ranks = sorted((c.get("average_ranks") or {}).items(), key=lambda kv: kv[1])
        groups = [list(g) for g in c.get("groups") or []]
        group_of = {m: ", ".join(str(i + 1) for i, g in enumerate(groups) if m in g)
                    for m, _ in ranks}
        ranks_frame = pd.DataFrame(
            [{"model": m, "average rank": _num(r), "groups": group_of[m]} for m, r in ranks],
            columns=["model", "average rank", "groups"])
        scores = pd.DataFrame.from_dict(c.get("scores") or {}, orient="index")
        scores.index.name = "dataset"
        f = c.get("friedman") or {}
        stat, pv = _num(f.get("statistic")), _num(f.get("p_value"))
        if stat is None or pv is None:
            text = "Friedman's test could not be computed."
        else:
            verdict = ("the models differ: the critical-difference diagram shows which"
                       if pv < alpha else
                       f"no model is significantly better than another at α = {alpha:g}")
            text = f"Friedman χ² = {stat:.2f} (df {f.get('df')}), p = {pv:.3g}: {verdict}."
        out.append(AcrossDatasets(
            task=str(task), metric=str(c.get("metric") or ""),
            datasets=len(c.get("datasets") or []), ranks=ranks_frame,
            scores=scores.reset_index(), friedman_text=text,
            critical_difference=_num(c.get("critical_difference")),
            dropped=[str(m) for m in c.get("dropped_models") or []]))
    return out


def trend_choices(models: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """The datasets and the model names one can follow over time (``GET /v1/models``)."""
    datasets = sorted({str(m["dataset"]) for m in models if m.get("dataset")})
    names = sorted({str(m["name"]) for m in models if m.get("name")})
    return datasets, names


def trends_view(answer: Mapping[str, Any]) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """``GET /v1/trends``: the figure (one line per model and the best of each run),
    the points table and the per-series summary (Kendall's tau, improving)."""
    from fleetlearn.reports import trends_figure

    points = pd.DataFrame(answer.get("points") or [])
    summary = pd.DataFrame(answer.get("summary") or [])
    metric = str(answer.get("metric") or (points["metric"].iloc[0] if "metric" in points
                                          and len(points) else "score"))
    if not points.empty:
        points["t"] = pd.to_datetime(points["t"], utc=True, errors="coerce")
    figure = trends_figure(points, metric, by=str(answer.get("by") or "model"))
    return figure, points, summary


# ------------------------------------------------------------------ models


def models_frame(models: Sequence[Mapping[str, Any]], version_label: str = "latest version"
                 ) -> pd.DataFrame:
    """``GET /v1/models`` rows: ``name, latest version, aliases, task, dataset, metric,
    test score, created`` (``version_label`` names the version column)."""
    columns = ["name", version_label, "aliases", "task", "dataset", "metric",
               "test score", "created"]
    rows = [{"name": m.get("name"), version_label: m.get("version"),
             "aliases": ", ".join(m.get("aliases") or []), "task": m.get("task"),
             "dataset": m.get("dataset"), "metric": m.get("primary_metric"),
             "test score": _num(m.get("test_score")),
             "created": _time_text(m.get("created_at"))} for m in models]
    return pd.DataFrame(rows, columns=columns)


def versions_frame(answer: Mapping[str, Any]) -> pd.DataFrame:
    """``GET /v1/models/{name}``: one row per version, newest first: ``version, aliases,
    metric, test score, run, created, size (KiB)``."""
    columns = ["version", "aliases", "metric", "test score", "run", "created", "size (KiB)"]
    rows = []
    for v in answer.get("versions") or []:
        metrics = v.get("metrics") or {}
        metric = metrics.get("primary_metric")
        rows.append({
            "version": v.get("version"), "aliases": ", ".join(v.get("aliases") or []),
            "metric": metric, "test score": _num((metrics.get("test") or {}).get(metric)),
            "run": v.get("run_id") or "", "created": _time_text(v.get("created_at")),
            "size (KiB)": round((v.get("artifact_size") or 0) / 1024, 1),
        })
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("version", ascending=False, kind="stable").reset_index(drop=True)


def version_metrics_frame(version: Mapping[str, Any]) -> pd.DataFrame:
    """A version's test metrics: ``metric, value`` (the primary one first)."""
    metrics = version.get("metrics") or {}
    primary = metrics.get("primary_metric")
    test = metrics.get("test") or {}
    names = sorted(test, key=lambda k: (k != primary, k))
    return pd.DataFrame([{"metric": k + (" (primary)" if k == primary else ""),
                          "value": _num(test[k])} for k in names], columns=["metric", "value"])


def lineage_rows(version: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Where a version comes from, step by step: dataset → run → trial → version."""
    tags = version.get("tags") or {}
    return [
        ("dataset", f"{tags.get('dataset', '?')} (id {version.get('dataset_id')})"),
        ("run", str(version.get("run_id") or "–")),
        ("trial", str(version.get("trial_id") or "–")),
        ("version", f"{version.get('name')}:{version.get('version')}"),
        ("artifact sha256", str(version.get("artifact_digest") or "")),
    ]


def schema_frame(version: Mapping[str, Any]) -> pd.DataFrame:
    """A version's input schema: ``column, kind, dtype, categories`` per input column."""
    columns = (version.get("input_schema") or {}).get("columns") or []
    rows = []
    for c in columns:
        categories = c.get("categories") or []
        shown = ", ".join(str(x) for x in categories[:12])
        if len(categories) > 12:
            shown += f", … ({len(categories)} in all)"
        rows.append({"column": c.get("name"), "kind": c.get("kind"),
                     "dtype": c.get("dtype") or "", "categories": shown})
    return pd.DataFrame(rows, columns=["column", "kind", "dtype", "categories"])


# ------------------------------------------------------------------ serving


def serving_frame(stats: Mapping[str, Any]) -> pd.DataFrame:
    """``GET /v1/stats``: per model version its recent throughput, error rate and latency
    percentiles (over the last ``window`` seconds), and the totals since start."""
    columns = ["model", "version", "requests/s", "error rate (%)", "p50 (ms)", "p99 (ms)",
               "requests", "errors", "p50 all (ms)", "p99 all (ms)"]
    rows = []
    for m in stats.get("models") or []:
        recent = m.get("recent") or {}
        rate = _num(recent.get("error_rate"))
        rows.append({
            "model": m.get("model"), "version": m.get("version"),
            "requests/s": _num(recent.get("rps")),
            "error rate (%)": 100.0 * rate if rate is not None else None,
            "p50 (ms)": _num(recent.get("p50_ms")), "p99 (ms)": _num(recent.get("p99_ms")),
            "requests": m.get("requests"), "errors": m.get("errors"),
            "p50 all (ms)": _num(m.get("p50_ms")), "p99 all (ms)": _num(m.get("p99_ms")),
        })
    return pd.DataFrame(rows, columns=columns)


def serving_totals(stats: Mapping[str, Any]) -> tuple[float, float]:
    """Requests per second and error rate (%) over every model, recent window."""
    requests = errors = 0.0
    rps = 0.0
    for m in stats.get("models") or []:
        recent = m.get("recent") or {}
        requests += float(recent.get("requests") or 0)
        errors += float(recent.get("errors") or 0)
        rps += float(recent.get("rps") or 0.0)
    return rps, (100.0 * errors / requests if requests else 0.0)


def inference_figure_of(stats: Mapping[str, Any]) -> Any:
    """The report's inference figure (latency, throughput, errors, CPU, memory over
    time) of a ``GET /v1/stats`` answer's ``series``; None when there is none."""
    from fleetlearn.reports import inference_figure

    points = stats.get("series") or []
    return inference_figure(points, title="serving over time") if points else None


# ------------------------------------------------------------------ this machine


@dataclass(frozen=True)
class MachineSnapshot:
    """The machine the GUI runs on (psutil): CPU, memory and disk."""

    cpu_percent: float
    cpus: int
    memory_used: int
    memory_total: int
    disk_used: int
    disk_total: int
    disk_path: str

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory_used / self.memory_total if self.memory_total else 0.0

    @property
    def disk_percent(self) -> float:
        return 100.0 * self.disk_used / self.disk_total if self.disk_total else 0.0


def machine_snapshot(disk_path: str = "/") -> MachineSnapshot:
    """This machine's CPU use since the previous call, memory and disk (``disk_path``).

    >>> snap = machine_snapshot()
    >>> 0 <= snap.memory_percent <= 100
    True
    """
    import psutil

    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(disk_path)
    return MachineSnapshot(
        cpu_percent=float(psutil.cpu_percent(interval=None)), cpus=psutil.cpu_count() or 1,
        memory_used=int(memory.total - memory.available), memory_total=int(memory.total),
        disk_used=int(disk.used), disk_total=int(disk.total), disk_path=disk_path)


# ------------------------------------------------------------------ paging


def page_window(page: int, shown: int, size: int = PAGE_SIZE) -> tuple[int, bool, str]:
    """``(offset, more, label)`` of page ``page`` (0-based) when it holds ``shown`` rows:
    whether a next page may exist, and "rows 51–100" for the caption.

    >>> page_window(1, 50)
    (50, True, 'rows 51–100')
    >>> page_window(0, 3)
    (0, False, 'rows 1–3')
    """
    offset = max(page, 0) * size
    label = f"rows {offset + 1}–{offset + shown}" if shown else "no rows"
    return offset, shown >= size, label


# ------------------------------------------------------------------ monitoring


@dataclass(frozen=True)
class MonitoringSnapshot:
    """One refresh of the Monitoring panel: what the server said, and this machine."""

    cluster: dict[str, Any]
    stats: dict[str, Any]
    machine: MachineSnapshot
    taken_at: float


def collect_monitoring(client: Any, window: float = 60.0) -> MonitoringSnapshot:
    """Ask the server for its cluster and its serving statistics, and read this machine
    (what the Monitoring panel draws on every refresh). ``client`` is a
    :class:`fleetlearn.Client`; its errors (:class:`~fleetlearn.errors.ApiError`) pass.
    """
    cluster = client.cluster()
    stats = client.stats(window=window)
    return MonitoringSnapshot(cluster=cluster, stats=stats, machine=machine_snapshot(),
                              taken_at=time.time())


# ------------------------------------------------------------------ predict

#: Rows sent per request of a batch (the server's own cap is ``max_rows`` in /v1/info).
BATCH_ROWS = 1000


@dataclass(frozen=True)
class InputField:
    """One input column of a version, as the prediction form asks for it."""

    name: str
    kind: str  # numeric | boolean | categorical | datetime
    categories: tuple[Any, ...] = ()
    nullable: bool = True


def input_fields(version: Mapping[str, Any]) -> list[InputField]:
    """The form of a version: one field per input column of its schema, in order.

    >>> [f.kind for f in input_fields({"input_schema": {"columns": [
    ...     {"name": "x", "kind": "numeric"}, {"name": "c", "kind": "categorical",
    ...      "categories": ["a", "b"]}]}})]
    ['numeric', 'categorical']
    """
    schema = version.get("input_schema") or {}
    return [InputField(name=str(c["name"]), kind=str(c.get("kind") or "numeric"),
                       categories=tuple(c.get("categories") or ()),
                       nullable=bool(c.get("nullable", True)))
            for c in schema.get("columns") or []]


def record_of(values: Mapping[str, Any], fields: Sequence[InputField]) -> dict[str, Any]:
    """A form's values as one JSON record: dates as ISO 8601, empty fields as null."""
    record: dict[str, Any] = {}
    for f in fields:
        value = values.get(f.name)
        if value is not None and f.kind == "datetime" and hasattr(value, "isoformat"):
            value = value.isoformat()
        record[f.name] = value
    return record


def probabilities_frame(answer: Mapping[str, Any], row: int = 0) -> pd.DataFrame:
    """One row's class probabilities from a predict answer, most likely first:
    ``class, probability``."""
    probabilities = answer.get("probabilities") or []
    if row >= len(probabilities):
        return pd.DataFrame(columns=["class", "probability"])
    frame = pd.DataFrame([{"class": str(k), "probability": float(v)}
                          for k, v in probabilities[row].items()])
    return frame.sort_values("probability", ascending=False, kind="stable").reset_index(
        drop=True)


def problems_frame(errors: Sequence[Mapping[str, Any]], first_row: int = 0) -> pd.DataFrame:
    """The server's list of what is wrong with a request (``ApiError.errors``) as a table
    of ``row`` (counted from 0 in the whole table: ``first_row`` is the batch's start),
    ``column``, ``problem`` (the server's own message)."""
    rows = []
    for e in errors:
        loc = list(e.get("loc") or [])
        numbers = [p for p in loc if isinstance(p, int) and not isinstance(p, bool)]
        names = [p for p in loc if isinstance(p, str) and p not in ("body", "records",
                                                                     "data", "columns")]
        rows.append({"row": first_row + numbers[0] if numbers else None,
                     "column": names[-1] if names else "",
                     "problem": shift_rows(str(e.get("msg", "")), first_row)})
    return pd.DataFrame(rows, columns=["row", "column", "problem"])


def shift_rows(text: str, offset: int) -> str:
    """A batch's message with its row numbers counted from the table's start instead.

    >>> shift_rows("Row 7: expected a number, got 'x'.", 10)
    "Row 17: expected a number, got 'x'."
    """
    if not offset:
        return text
    return re.sub(r"\b([Rr]ows?) (\d+)", lambda m: f"{m.group(1)} {int(m.group(2)) + offset}",
                  text)


@dataclass(frozen=True)
class BatchResult:
    """A table's predictions, or where the server stopped and why."""

    predictions: pd.DataFrame  # the input rows with ``prediction`` (and ``proba_*``)
    problems: pd.DataFrame  # empty when every batch was accepted
    message: str | None = None  # the server's detail for the refused batch
    model: str | None = None
    version: int | None = None


def predict_table(client: Any, ref: str, frame: pd.DataFrame, *, proba: bool = False,
                  batch_rows: int = BATCH_ROWS) -> BatchResult:
    """Predict every row of ``frame`` with ``ref`` (``name:version``), ``batch_rows`` a
    request. A refused batch stops there: the rows before it keep their predictions, and
    ``problems`` lists the server's messages with row numbers of the whole table."""
    from fleetlearn.errors import ApiError

    parts = []
    model = version = None
    for start in range(0, len(frame), batch_rows):
        batch = frame.iloc[start:start + batch_rows]
        try:
            part = client.predict_frame(ref, batch, return_proba=proba)
        except ApiError as exc:
            if exc.status != 422 or not exc.errors:
                raise
            done = frame.iloc[:start]
            out = pd.concat([done.reset_index(drop=True),
                             pd.concat(parts).reset_index(drop=True)], axis=1) if parts else done
            return BatchResult(out, problems_frame(exc.errors, first_row=start),
                               message=shift_rows(exc.detail, start), model=model, version=version)
        model, version = part.attrs.get("model"), part.attrs.get("version")
        parts.append(part)
    result = pd.concat(parts).reset_index(drop=True) if parts else pd.DataFrame()
    out = pd.concat([frame.reset_index(drop=True), result], axis=1)
    return BatchResult(out, problems_frame([]), model=model, version=version)


# ------------------------------------------------------------------ train

#: Statuses a run ends in (as ``fleetlearn.Client.wait_for_run`` reads them).
FINAL_STATUSES = frozenset({"finished", "failed", "interrupted", "cancelled"})


@dataclass(frozen=True)
class RunProgressView:
    """How far a run is, for the live panel."""

    status: str
    units_done: int
    units_total: int
    fraction: float
    eta_s: float | None  # None before the first unit, or once it ended
    datasets: pd.DataFrame  # dataset, units done, units total

    @property
    def ended(self) -> bool:
        return self.status in FINAL_STATUSES


def run_progress_view(run: Mapping[str, Any], now: float | None = None) -> RunProgressView:
    """A ``GET /v1/runs/{id}`` answer as progress: units done of total, per dataset, and
    the time left at the pace so far (started_at to now over the fraction done).

    >>> v = run_progress_view({"status": "running", "started_at": "2024-01-01T00:00:00+00:00",
    ...     "progress": {"units_done": 5, "units_total": 20, "fraction": 0.25,
    ...                  "datasets": {"iris": {"units_done": 5, "units_total": 20}}}},
    ...     now=pd.Timestamp("2024-01-01T00:01:00+00:00").timestamp())
    >>> v.eta_s, v.datasets["units done"].tolist()
    (180.0, [5])
    """
    progress = run.get("progress") or {}
    done, total = int(progress.get("units_done") or 0), int(progress.get("units_total") or 0)
    fraction = float(progress.get("fraction") or (done / total if total else 0.0))
    status = str(run.get("status") or "starting")
    eta = None
    started = run.get("started_at") or run.get("created_at")
    if status not in FINAL_STATUSES and started and 0 < fraction < 1:
        elapsed = (time.time() if now is None else now) - pd.Timestamp(started).timestamp()
        eta = max(0.0, elapsed * (1 - fraction) / fraction)
    rows = [{"dataset": name, "units done": d.get("units_done", 0),
             "units total": d.get("units_total", 0)}
            for name, d in (progress.get("datasets") or {}).items()]
    return RunProgressView(status, done, total, min(max(fraction, 0.0), 1.0), eta,
                           pd.DataFrame(rows, columns=["dataset", "units done", "units total"]))


def best_so_far(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The leader of each dataset in a (partial) leaderboard: ``dataset, model, metric,
    cv mean``."""
    out = []
    for name in leaderboard_datasets(rows):
        scored = [r for r in rows if str(r.get("dataset")) == name
                  and _num(r.get("cv_mean")) is not None]
        if scored:
            top = scored[0]
            out.append({"dataset": name, "model": top.get("model"), "metric": top.get("metric"),
                        "cv mean": _num(top.get("cv_mean"))})
    return pd.DataFrame(out, columns=["dataset", "model", "metric", "cv mean"])


def model_specs(text: str) -> list[str] | None:
    """The models box: one spec a line or ``;``-separated (a spec's own parameters are
    comma-separated: ``random_forest:n_estimators=50,max_depth=8``); None (the server's
    default set) when empty.

    >>> model_specs("ridge; random_forest:n_estimators=50,max_depth=8\\n")
    ['ridge', 'random_forest:n_estimators=50,max_depth=8']
    """
    specs = [s.strip() for s in re.split(r"[;\n]", text) if s.strip()]
    return specs or None


def profile_summary(profile: Mapping[str, Any]) -> str:
    """One line of a ``GET /v1/datasets/{name}/profile`` answer: rows, the detected task
    (with its class count), the columns models see and those left out.

    >>> profile_summary({"rows": 150, "kinds": {"numeric": 4}, "columns": [],
    ...     "target": {"name": "species", "task": "classification", "n_classes": 3}})
    '150 rows; target species: classification (3 classes); 4 numeric'
    """
    parts = [f"{profile.get('rows', 0)} rows"]
    target = profile.get("target")
    if target:
        task = f"target {target['name']}: {target['task']}"
        if target.get("n_classes") is not None:
            task += f" ({target['n_classes']} classes)"
        if target.get("missing"):
            task += f", {target['missing']} rows without a target"
        parts.append(task)
    kinds = profile.get("kinds") or {}
    if kinds:
        parts.append(", ".join(f"{n} {kind}" for kind, n in kinds.items()))
    return "; ".join(parts)


def profile_columns_frame(profile: Mapping[str, Any]) -> pd.DataFrame:
    """The columns of a profile as a table: ``column, kind, used, missing, distinct,
    frequent values, note``.

    >>> profile_columns_frame({"columns": [{"name": "plan", "kind": "categorical",
    ...     "used": True, "missing": 0, "distinct": 2, "note": None,
    ...     "top_values": [{"value": "pro", "count": 3}, {"value": "basic", "count": 1}]}]}
    ...     )["frequent values"].tolist()
    ['pro (3), basic (1)']
    """
    rows = [{"column": c["name"], "kind": c["kind"], "used": bool(c.get("used")),
             "missing": c.get("missing"), "distinct": c.get("distinct"),
             "frequent values": ", ".join(f"{v['value']} ({v['count']})"
                                          for v in c.get("top_values") or []),
             "note": c.get("note") or ""}
            for c in profile.get("columns") or []]
    return pd.DataFrame(rows, columns=["column", "kind", "used", "missing", "distinct",
                                       "frequent values", "note"])


def catalog_choices(catalog: Mapping[str, Any], task: str) -> tuple[list[str], list[str]]:
    """The models a task can train (those whose extra is installed) and the server's
    default set among them: (options, defaults).

    >>> catalog_choices({"models": [{"name": "ridge", "tasks": ["regression"],
    ...     "available": True}, {"name": "svm", "tasks": ["classification"],
    ...     "available": True}], "defaults": {"regression": ["ridge"]}}, "regression")
    (['ridge'], ['ridge'])
    """
    options = [m["name"] for m in catalog.get("models") or []
               if task in m.get("tasks", ()) and m.get("available", True)]
    defaults = [n for n in (catalog.get("defaults") or {}).get(task, []) if n in options]
    return options, defaults


#: Parameter types the page draws an editor for (``other``: lists, arrays, callables).
EDITABLE_TYPES = ("int", "float", "bool", "str")


def param_fields(catalog: Mapping[str, Any], model: str, task: str) -> list[dict[str, Any]]:
    """The parameters of one catalog model the page can edit (``GET /v1/catalog``
    rows of types int, float, bool and str), in the estimator's order.

    >>> param_fields({"models": [{"name": "knn", "params": {"classification": [
    ...     {"name": "n_neighbors", "type": "int", "default": 5},
    ...     {"name": "metric_params", "type": "other", "default": None}]}}]},
    ...     "knn", "classification")
    [{'name': 'n_neighbors', 'type': 'int', 'default': 5}]
    """
    for m in catalog.get("models") or []:
        if m["name"] == model:
            return [p for p in (m.get("params") or {}).get(task, [])
                    if p.get("type") in EDITABLE_TYPES]
    return []


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, float) and isinstance(default, int | float) and not isinstance(
            default, bool):
        return math.isclose(value, float(default), rel_tol=1e-12, abs_tol=0.0)
    return value == default


def model_entries(chosen: Sequence[str], values: Mapping[str, Mapping[str, Any]],
                  catalog: Mapping[str, Any], task: str) -> list[str | dict[str, Any]]:
    """The run's model specs for the models picked: a name alone, or ``{"name",
    "params"}`` with only the parameters changed from their defaults.

    ``values`` is ``{model: {parameter: value on the page}}``; a value equal to the
    catalog's default is left out (the server applies it anyway).

    >>> cat = {"models": [{"name": "random_forest", "params": {"classification": [
    ...     {"name": "n_estimators", "type": "int", "default": 100},
    ...     {"name": "max_depth", "type": "int", "default": None}]}}]}
    >>> model_entries(["random_forest"], {"random_forest": {"n_estimators": 100,
    ...     "max_depth": 4}}, cat, "classification")
    [{'name': 'random_forest', 'params': {'max_depth': 4}}]
    >>> model_entries(["random_forest"], {}, cat, "classification")
    ['random_forest']
    """
    entries: list[str | dict[str, Any]] = []
    for model in chosen:
        defaults = {p["name"]: p.get("default") for p in param_fields(catalog, model, task)}
        changed = {name: value for name, value in (values.get(model) or {}).items()
                   if name in defaults and not _same(value, defaults[name])}
        entries.append({"name": model, "params": changed} if changed else model)
    return entries


def run_datasets(tables: Sequence[Mapping[str, Any]],
                 models: Mapping[str, Sequence[str | Mapping[str, Any]]] | None
                 ) -> list[dict[str, Any]]:
    """The ``datasets`` of ``POST /v1/runs`` for the tables picked on the page.

    ``tables`` are ``{"name", "target", "task"}`` (``task`` the one chosen, or None to
    let the server detect it as the profile did, with ``detected`` the profile's);
    ``models`` maps a task to its model specs (None: the run's own list, e.g. the
    advanced box, or the server's default set).

    >>> run_datasets([{"name": "iris.csv", "target": "species", "task": None,
    ...                "detected": "classification"}], {"classification": ["knn"]})
    [{'dataset': 'iris.csv', 'target': 'species', 'models': ['knn']}]
    """
    out = []
    for t in tables:
        entry: dict[str, Any] = {"dataset": t["name"], "target": t["target"]}
        if t.get("task"):
            entry["task"] = t["task"]
        task = t.get("task") or t.get("detected")
        if models is not None and task in models:
            entry["models"] = list(models[task])
        out.append(entry)
    return out
