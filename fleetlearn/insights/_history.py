"""Scores over time: one model's versions, or every model trained on one dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from fleetlearn.errors import ConfigError, NotFoundError
from fleetlearn.evaluation import check_metric, score_trends
from fleetlearn.insights._boards import frame_records
from fleetlearn.registry import parse_model_ref

if TYPE_CHECKING:
    from fleetlearn.registry import ModelVersion, Registry

__all__ = ["ScoreHistory", "dataset_versions", "score_history"]


def dataset_versions(registry: Registry, dataset: str) -> list[ModelVersion]:
    """Every version of every model trained on a dataset, across runs.

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    dataset : str
        A dataset's fingerprint, or its name (registered, or its name in a run). A
        table that changed is another dataset: by name, the history follows the table
        each model's latest version was trained on; by fingerprint, exactly that table.

    Returns
    -------
    list of ModelVersion
        By model name, then version (oldest first); empty when nothing was trained on it.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> [v.ref for v in dataset_versions(Registry(), "iris")]    # doctest: +SKIP
    ['iris-knn:1', 'iris-knn:2', 'iris-svc:1']
    """
    latest = registry.list_models(dataset=dataset)
    ids = {mv.dataset_id for mv in latest}
    return [v for name in sorted({mv.name for mv in latest})
            for v in registry.list_models(name=name) if v.dataset_id in ids]


@dataclass(frozen=True, eq=False)
class ScoreHistory:
    """Test scores over time (see :func:`fleetlearn.evaluation.score_trends`).

    Attributes
    ----------
    by : str
        What one series is: ``"model"``.
    metric : str or None
        The metric followed; None means each version's primary metric.
    points, summary : pandas.DataFrame
        One row per version with a score; one row per series.
    """

    by: str
    metric: str | None
    points: pd.DataFrame
    summary: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """The API's ``GET /v1/trends`` answer: ``by, metric, points, summary``."""
        return {"by": self.by, "metric": self.metric, "points": frame_records(self.points),
                "summary": frame_records(self.summary)}


def score_history(registry: Registry, *, model: str | None = None,
                  dataset: str | None = None, metric: str | None = None) -> ScoreHistory:
    """Scores over time: one model's versions, or every model of one dataset.

    Parameters
    ----------
    registry : fleetlearn.registry.Registry
    model : str, optional
        A model name (``name``, ``name:3`` or ``name@alias`` name the same model): its
        versions.
    dataset : str, optional
        A dataset name or fingerprint: :func:`dataset_versions`. Give exactly one of
        ``model`` and ``dataset``.
    metric : str, optional
        The test metric to follow; each version's primary metric by default.

    Raises
    ------
    ConfigError
        Neither or both of ``model`` and ``dataset``; a metric unknown for the task.
    NotFoundError
        No such model, or nothing trained on that dataset.

    Examples
    --------
    >>> from fleetlearn.registry import Registry
    >>> history = score_history(Registry(), dataset="iris", metric="accuracy")  # doctest: +SKIP
    >>> history.summary[["series", "points", "improving"]]    # doctest: +SKIP
    """
    if (model is None) == (dataset is None):
        raise ConfigError("Give exactly one of ?model=NAME or ?dataset=NAME.")
    if model is not None:
        name, _version, _alias = parse_model_ref(model)
        versions = registry.list_models(name=name)
        if not versions:
            registry.get_model_version(name)  # NotFoundError with a suggestion
    else:
        versions = dataset_versions(registry, dataset)  # type: ignore[arg-type]
        if not versions:
            raise NotFoundError(f"No model was trained on a dataset named '{dataset}' (name "
                                "or fingerprint); see GET /v1/models.")
    if metric is not None:
        task = (versions[0].input_schema or {}).get("task", "classification")
        check_metric(metric, task)
    points, summary = score_trends(versions, metric)
    return ScoreHistory(by="model", metric=metric, points=points, summary=summary)
