"""A run's report: the self-contained HTML of ``fleetlearn report``, and its figures one
by one as Plotly JSON, over HTTP.

Routes (under ``/v1``)::

    GET /runs/{id}/report     the report as one HTML document (read)
    GET /runs/{id}/figures    its figures as Plotly JSON, ?dataset= and ?kind= (read)

Mounted on API servers only, not on Ray Serve replicas: the report reloads the run's
tables (paths on the API server) and refits nothing but still costs seconds of CPU
(permutation importance, every figure), which on a replica would take from predictions.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from fleetlearn.api.deps import ReadKey, StateDep
from fleetlearn.api.errors import ErrorBody, ORJSONResponse
from fleetlearn.api.schemas import RunFiguresPublic

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["runs"])


@router.get(
    "/runs/{run_id}/report", response_class=HTMLResponse,
    summary="A run's report: one self-contained HTML document (opens offline)",
    description="What `fleetlearn report RUN_ID` writes: summary, leaderboards, "
    "significance, curves, test-split figures (confusion, ROC/PR, predicted vs actual, "
    "importance), trends, lineage and serving statistics, plotly.js inlined once.",
    operation_id="getRunReport",
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}},
                     "description": "The report."}},
)
async def run_report(
    state: StateDep, _: ReadKey, run_id: str,
    metric: Annotated[str | None, Query(description="Rank and compare by this metric "
                                        "instead of the run's primary one")] = None,
    alpha: Annotated[float, Query(gt=0, lt=1, description="Significance level")] = 0.05,
    test_split: Annotated[bool, Query(description="Reload the tables and models for the "
                                      "test-split figures (false: the fast report, as "
                                      "--no-test-split)")] = True,
) -> HTMLResponse:
    # Plotly and the figure builders load on the first report, not with the app: every
    # library a serving process imports adds warning filters that scikit-learn's parallel
    # helper re-applies on each tree of each prediction (measured: RF-100 single rows
    # cost about 4 ms more CPU with Ray and Plotly loaded).
    from fleetlearn.reports import render_report

    # A worker thread: building the figures takes seconds, the event loop keeps serving.
    html = await asyncio.to_thread(
        render_report, state.registry, run_id, metric=metric, alpha=alpha,
        test_split=test_split, trusted=tuple(state.settings.trusted_types))
    return HTMLResponse(html)


#: The kinds of figure (``fleetlearn.reports.FIGURE_KINDS``, written out here: importing
#: the reports package would load Plotly with the app; a unit test keeps them equal).
FigureKind = Literal["critical-difference", "fold-scores", "training-curve",
                     "learning-curve", "cost-quality", "confusion", "roc",
                     "precision-recall", "predicted-vs-actual", "residuals", "importance",
                     "trends", "inference"]


@router.get(
    "/runs/{run_id}/figures", response_model=RunFiguresPublic,
    summary="A run's figures as Plotly JSON (the report's, one by one)",
    description="Every figure of the run's report, in report order, each with its kind, "
    "dataset (null for a figure of the whole run), model, title and Plotly JSON: per "
    "dataset the scores per fold, training or learning curves, fit time vs score, the "
    "held-out test split (confusion, ROC and precision-recall; or predicted vs actual and "
    "residuals), permutation importance and the trends over versions; per run the "
    "critical-difference diagram of each task compared across datasets and the inference "
    "statistics. A kind not drawn from the test split answers without reloading the "
    "tables and models.",
    operation_id="getRunFigures",
    responses={404: {"model": ErrorBody, "description": "No such run, or no such dataset "
                     "in it."}},
)
async def run_figures_route(
    state: StateDep, _: ReadKey, run_id: str,
    dataset: Annotated[str | None, Query(description="Only this dataset's figures (its "
                                         "name in the run)")] = None,
    kind: Annotated[FigureKind | None, Query(description="Only figures of this kind")] = None,
    metric: Annotated[str | None, Query(description="Rank and compare by this metric "
                                        "instead of the run's primary one")] = None,
    alpha: Annotated[float, Query(gt=0, lt=1, description="Significance level")] = 0.05,
    test_split: Annotated[bool, Query(description="Reload the tables and models for the "
                                      "test-split figures (false: skip them, faster)")] = True,
) -> ORJSONResponse:
    from fleetlearn.reports import figures_of_run  # on use: see run_report

    def build() -> dict[str, Any]:
        figures = figures_of_run(state.registry, run_id, dataset=dataset, kind=kind,
                                 metric=metric, alpha=alpha, test_split=test_split,
                                 trusted=tuple(state.settings.trusted_types))
        run = state.registry.get_run(run_id)
        # plotly.io's encoder turns numpy arrays and dates into JSON; parsed back to a dict
        # so the answer is one JSON document, not JSON in a string.
        items = [{"kind": f.kind, "dataset": f.dataset, "model": f.model, "title": f.title,
                  "key": f.key, "figure": json.loads(f.figure.to_json())} for f in figures]
        return {"run_id": run.id, "figures": items, "count": len(items)}

    return ORJSONResponse(await asyncio.to_thread(build))
