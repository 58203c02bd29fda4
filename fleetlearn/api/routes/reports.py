"""A run's report: the self-contained HTML of ``fleetlearn report``, over HTTP.

Routes (under ``/v1``)::

    GET /runs/{id}/report    the report as one HTML document (read)

Mounted on API servers only, not on Ray Serve replicas: the report reloads the run's
tables (paths on the API server) and refits nothing but still costs seconds of CPU
(permutation importance, every figure), which on a replica would take from predictions.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from fleetlearn.api.deps import ReadKey, StateDep

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
