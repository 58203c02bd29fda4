"""A table's profile before training: each column's detected kind, and the target's task.

The same inference as training (:func:`~fleetlearn.data._infer.infer_column`,
:func:`~fleetlearn.data._infer.infer_task`), so what a user reads here is what a run
will do: which columns models see as numeric, categorical, boolean or datetime, and
which are dropped as text, ID-like or constant.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fleetlearn.data._infer import infer_column, infer_task
from fleetlearn.errors import TargetError, UnreadableTableError, did_you_mean

__all__ = ["PROFILE_KINDS", "profile_frame"]

#: Every kind a profile names: the four a model sees, then why a column is left out.
PROFILE_KINDS = ("numeric", "categorical", "boolean", "datetime", "text", "id-like",
                 "constant", "empty", "high-cardinality", "unsupported")
#: Distinct values shown per categorical or boolean column, most frequent first.
TOP_VALUES = 5
#: Classes counted in a classification target's summary, most frequent first.
TOP_CLASSES = 20

_DROPPED_KINDS = (("free text", "text"), ("ID-like", "id-like"), ("constant", "constant"),
                  ("all missing", "empty"), ("high-cardinality", "high-cardinality"),
                  ("unsupported", "unsupported"))


def _scalar(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value if isinstance(value, bool | int | float | str) or value is None else str(value)


def _top_values(series: pd.Series, n: int) -> list[dict[str, Any]]:
    counts = series.dropna().astype(str).value_counts().head(n)
    return [{"value": str(v), "count": int(c)} for v, c in counts.items()]


def _column(series: pd.Series) -> dict[str, Any]:
    inferred = infer_column(series)
    if inferred.schema is not None:
        kind, note = inferred.schema.kind, None
    else:
        note = inferred.dropped or "unusable"
        kind = next((k for prefix, k in _DROPPED_KINDS if note.startswith(prefix)),
                    "unsupported")
    try:
        distinct = int(series.nunique())
    except TypeError:  # unhashable cells
        distinct = None
    row: dict[str, Any] = {"name": str(series.name), "kind": kind, "dtype": str(series.dtype),
                           "used": inferred.schema is not None, "missing": int(series.isna().sum()),
                           "distinct": distinct, "note": note, "top_values": None}
    if kind in ("categorical", "boolean"):
        row["top_values"] = _top_values(series, TOP_VALUES)
    return row


def _target_summary(frame: pd.DataFrame, target: str, name: str) -> dict[str, Any]:
    if target not in frame.columns:
        raise TargetError(
            f"Target column '{target}' is not in {name}.{did_you_mean(target, frame.columns)} "
            f"Available columns: {', '.join(frame.columns)}. Pass one of them as the target."
        )
    y = frame[target]
    task = infer_task(y)
    present = y.dropna()
    summary: dict[str, Any] = {"name": target, "task": task, "missing": int(y.isna().sum()),
                               "n_classes": None, "classes": None, "min": None, "max": None,
                               "mean": None, "std": None}
    if task == "classification":
        counts = present.astype(str).value_counts()
        summary["n_classes"] = int(len(counts))
        summary["classes"] = [{"value": str(v), "count": int(c)}
                              for v, c in counts.head(TOP_CLASSES).items()]
    else:
        numbers = pd.to_numeric(present, errors="coerce").astype(float)
        numbers = numbers[np.isfinite(numbers)]
        for key, value in (("min", numbers.min()), ("max", numbers.max()),
                           ("mean", numbers.mean()), ("std", numbers.std())):
            summary[key] = _scalar(float(value)) if len(numbers) else None
    return summary


def profile_frame(frame: pd.DataFrame, target: str | None = None,
                  name: str = "the table") -> dict[str, Any]:
    """What training would make of a table: rows, each column's kind, the target's task.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table as read (``load_table``). It is not modified.
    target : str, optional
        The column to predict: its task and class count (or value summary) are added,
        and it is left out of the feature columns.
    name : str
        The table's name, for messages.

    Returns
    -------
    dict
        ``rows``, ``columns`` (one dict per column but the target: ``name``, ``kind``
        (one of :data:`PROFILE_KINDS`), ``dtype``, ``used`` (a model sees it),
        ``missing``, ``distinct``, ``note`` (why it is left out), ``top_values`` (the most
        frequent values of a categorical or boolean column, with counts)), ``kinds``
        (columns per kind) and ``target`` (None without a target; else ``name``,
        ``task``, ``missing``, ``n_classes`` and ``classes`` for classification, ``min``,
        ``max``, ``mean``, ``std`` for regression).

    Raises
    ------
    TargetError
        ``target`` is not a column (the message names the columns), has no values,
        or holds dates.
    UnreadableTableError
        The table has no rows.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5], "plan": ["a", "b", "a", "b"],
    ...                    "y": ["no", "yes", "no", "no"]})
    >>> p = profile_frame(df, target="y")
    >>> p["target"]["task"], p["target"]["n_classes"], p["kinds"]
    ('classification', 2, {'numeric': 1, 'categorical': 1})
    """
    if frame.shape[0] == 0:
        raise UnreadableTableError(f"Table {name} has no rows. Add data rows.")
    frame = frame.copy(deep=False)
    frame.columns = [str(c) for c in frame.columns]
    summary = None if target is None else _target_summary(frame, target, name)
    columns = [_column(frame[c]) for c in frame.columns if c != target]
    kinds: dict[str, int] = {}
    for col in columns:
        kinds[col["kind"]] = kinds.get(col["kind"], 0) + 1
    return {"name": name, "rows": int(frame.shape[0]), "columns": columns,
            "kinds": {k: kinds[k] for k in PROFILE_KINDS if k in kinds}, "target": summary}
