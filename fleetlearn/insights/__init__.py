"""Read models: what the CLI, the API, the report and the GUI show about runs and models.

Each is a plain frozen dataclass computed from a :class:`fleetlearn.registry.Registry`
by one function, with ``to_dict()`` giving the JSON the API answers. Computing them in
one place is what keeps every reader's numbers (and its error lines) the same.

=======================  ==========================================================
function                 read model
=======================  ==========================================================
``run_summaries``        ``RunSummary``: recent runs, one line each
``run_detail``           ``RunDetail``: status, timings, datasets, progress, config
``run_progress``         ``RunProgress``: units and trials done of planned, failures
``run_failures``         ``UnitFailure``: each unit that failed, first error line
``run_retries``          ``UnitRetry``: each unit Ray ran again after a lost worker
                         or node: attempts, where each ran
``run_board``            ``RunBoard``: the leaderboard with tied-with-best
``run_comparison``       ``RunComparison``: per dataset vs the best; ranks, Friedman,
                         Nemenyi across datasets
``score_history``        ``ScoreHistory``: scores over time (a model, or a dataset)
``dataset_versions``     every model version trained on one dataset
``held_out_rows``        ``HeldOutRows``: a dataset's test rows in a run
``run_inference``        serving statistics of a run's models
=======================  ==========================================================

>>> from fleetlearn.insights import first_line
>>> first_line("ValueError: Input contains NaN\\nTraceback ...")
'ValueError: Input contains NaN'
"""

from __future__ import annotations

from fleetlearn.insights._boards import (
    RunBoard,
    RunComparison,
    frame_records,
    run_board,
    run_comparison,
)
from fleetlearn.insights._history import ScoreHistory, dataset_versions, score_history
from fleetlearn.insights._inference import run_inference
from fleetlearn.insights._runs import (
    DatasetProgress,
    RunDataset,
    RunDetail,
    RunProgress,
    RunSummary,
    UnitFailure,
    UnitRetry,
    run_detail,
    run_failures,
    run_progress,
    run_retries,
    run_summaries,
)
from fleetlearn.insights._split import HeldOutRows, held_out_rows
from fleetlearn.insights._text import ERROR_LINE_CHARS, first_line

__all__ = [
    "ERROR_LINE_CHARS",
    "DatasetProgress",
    "HeldOutRows",
    "RunBoard",
    "RunComparison",
    "RunDataset",
    "RunDetail",
    "RunProgress",
    "RunSummary",
    "ScoreHistory",
    "UnitFailure",
    "UnitRetry",
    "dataset_versions",
    "first_line",
    "frame_records",
    "held_out_rows",
    "run_board",
    "run_comparison",
    "run_detail",
    "run_failures",
    "run_inference",
    "run_progress",
    "run_retries",
    "run_summaries",
    "score_history",
]
