"""Insights: which differences between models are real (compare), scores over time (trends).

The computations are plain functions of :mod:`fleetlearn.training` and
:mod:`fleetlearn.evaluation`; these routes only shape their frames as JSON.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query

from fleetlearn.api.deps import ReadKey, StateDep
from fleetlearn.api.errors import HttpError
from fleetlearn.evaluation import check_metric, score_trends
from fleetlearn.registry import parse_model_ref
from fleetlearn.training import compare_run

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["insights"])


def _frame_records(frame: Any) -> list[dict[str, Any]]:
    # pandas writes NaN, NA and inf as null, timestamps as ISO text.
    if frame is None or frame.empty:
        return []
    return json.loads(frame.to_json(orient="records", date_format="iso"))


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
    result = compare_run(state.registry, run_id, metric=metric, alpha=alpha)
    return {"run_id": result["run"].id, "alpha": alpha,
            "leaderboard": _frame_records(result["leaderboard"]),
            "across_datasets": {t: c.to_dict() for t, c in result["across"].items()},
            "notes": result["notes"]}


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
        raise HttpError(422, "Give exactly one of ?model=NAME or ?dataset=NAME.", "ConfigError")
    if model is not None:
        name, _v, _a = parse_model_ref(model)
        versions = state.registry.list_models(name=name)
        if not versions:
            state.registry.get_model_version(name)  # NotFoundError with a suggestion
    else:
        latest = state.registry.list_models(dataset=dataset)
        if not latest:
            raise HttpError(404, f"No model was trained on a dataset named '{dataset}' (name "
                           "or fingerprint); see GET /v1/models.", "NotFoundError")
        ids = {mv.dataset_id for mv in latest}
        versions = [v for mv in latest for v in state.registry.list_models(name=mv.name)
                    if v.dataset_id in ids]
    if metric is not None:
        task = (versions[0].input_schema or {}).get("task", "classification")
        check_metric(metric, task)
    points, summary = score_trends(versions, metric)
    return {"by": "model", "metric": metric, "points": _frame_records(points),
            "summary": _frame_records(summary)}
