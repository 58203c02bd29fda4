"""Insights: which differences between models are real (compare), scores over time (trends).

The answers are the read models of :mod:`fleetlearn.insights` (``to_dict()``), the
same the CLI and the report show.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from fleetlearn import insights
from fleetlearn.api.deps import ReadKey, StateDep
from fleetlearn.api.errors import HttpError

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["insights"])


@router.get("/runs/{run_id}/compare",
            summary="Which differences are real: per dataset each model against the best "
                    "(corrected resampled t-test, Holm), and across datasets average ranks, "
                    "Friedman and the Nemenyi critical difference",
            operation_id="compareRun")
def compare_route(
    state: StateDep, _: ReadKey, run_id: str,
    metric: Annotated[str | None, Query(description="Compare on this metric instead of the "
                                        "run's primary one")] = None,
    alpha: Annotated[float, Query(gt=0, lt=1, description="Significance level")] = 0.05,
) -> dict[str, Any]:
    return insights.run_comparison(state.registry, run_id, metric=metric,
                                   alpha=alpha).to_dict()


@router.get("/trends",
            summary="Scores over time: one model's versions, or every model of a dataset "
                    "(by name or fingerprint) across runs",
            operation_id="getTrends")
def trends_route(
    state: StateDep, _: ReadKey,
    model: Annotated[str | None, Query(description="A model name: its versions")] = None,
    dataset: Annotated[str | None, Query(description="A dataset name or fingerprint: every "
                                         "model trained on it")] = None,
    metric: Annotated[str | None, Query(description="Test metric to follow; each "
                                        "version's primary metric by default")] = None,
) -> dict[str, Any]:
    if (model is None) == (dataset is None):
        # A 422 naming both parameters (the read model says the same as a ConfigError).
        raise HttpError(422, "Give exactly one of ?model=NAME or ?dataset=NAME.", "ConfigError")
    return insights.score_history(state.registry, model=model, dataset=dataset,
                                  metric=metric).to_dict()
