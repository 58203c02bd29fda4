"""The Dataset: features, target, schema and fingerprint of one training table."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fleetlearn.data._infer import infer_column, infer_task
from fleetlearn.data._load import load_table
from fleetlearn.data._schema import TASKS, ColumnSchema, Schema
from fleetlearn.data._values import category_string
from fleetlearn.errors import (
    ConfigError,
    TargetError,
    TooFewRowsError,
    UnreadableTableError,
    did_you_mean,
)

__all__ = ["Dataset", "load_dataset", "dataset_from_frame", "check_folds"]

_FINGERPRINT_VERSION = b"fleetlearn-dataset-v1"


@dataclass(eq=False)
class Dataset:
    """A training table ready for the models: features, target, schema and fingerprint.

    A plain dataclass of a DataFrame and a numpy array, so it pickles cheaply (e.g. into
    the Ray object store with ``ray.put``).

    Attributes
    ----------
    name : str
        Short name (file stem, or folder name for a folder of shards).
    source : str
        Absolute path of the file or folder, or ``"<frame>"``.
    X : pandas.DataFrame
        The feature columns (``schema.feature_names``, in order) with raw values: no
        encoding, but dates parsed to ``datetime64`` and number-like strings to floats.
    y : numpy.ndarray
        The target with missing-target rows removed. Classification labels are kept as
        they are (strings, ints, bools); integral floats become ints.
    schema : Schema
        Target, task, feature columns and dropped columns.
    fingerprint : str
        sha256 (hex) of the table's content, the target, the task and the schema.
    warnings : list of str
        What was changed or dropped, in plain words.
    """

    name: str
    source: str
    X: pd.DataFrame = field(repr=False)
    y: np.ndarray = field(repr=False)
    schema: Schema = field(repr=False)
    fingerprint: str
    warnings: list[str] = field(default_factory=list, repr=False)

    @property
    def task(self) -> str:
        """``"classification"`` or ``"regression"``."""
        return self.schema.task

    @property
    def n_rows(self) -> int:
        """Number of rows models are trained and evaluated on."""
        return len(self.y)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, rows={self.n_rows}, "
            f"features={len(self.schema.columns)}, fingerprint={self.fingerprint[:12]!r})"
        )


def load_dataset(
    path: str | os.PathLike[str],
    target: str,
    task: str | None = None,
    name: str | None = None,
) -> Dataset:
    """Read a table and prepare it for training (schema inference and checks).

    Parameters
    ----------
    path : str or os.PathLike
        CSV/TSV/TXT file, Parquet file, or folder of Parquet shards (see ``load_table``).
    target : str
        Name of the column to predict.
    task : {"classification", "regression"}, optional
        Inferred from the target when omitted (see ``infer_task``).
    name : str, optional
        Dataset name; defaults to the file stem or the folder name.

    Returns
    -------
    Dataset

    Raises
    ------
    DataFileNotFoundError, UnreadableTableError, TargetError, ConfigError

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "toy.csv"
    >>> _ = p.write_text("x,label\\n" + "".join(f"{i},{'ab'[i % 2]}\\n" for i in range(10)))
    >>> ds = load_dataset(p, target="label")
    >>> ds.name, ds.task, ds.n_rows
    ('toy', 'classification', 10)
    """
    _check_task(task)
    frame = load_table(path)
    resolved = Path(path).expanduser().resolve()
    default_name = resolved.name if resolved.is_dir() else resolved.stem
    return dataset_from_frame(
        frame, target, task=task, name=name or default_name, source=str(resolved)
    )


def dataset_from_frame(
    frame: pd.DataFrame,
    target: str,
    task: str | None = None,
    name: str = "frame",
    source: str = "<frame>",
) -> Dataset:
    """Prepare an in-memory table for training (schema inference and checks).

    Rows whose target is missing are dropped (with a warning); columns that cannot help
    a model (ID-like, free text, constant, all missing) are dropped with a warning naming
    them. See ``fleetlearn.data._infer`` for the column rules.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table, target column included. It is not modified.
    target : str
        Name of the column to predict.
    task : {"classification", "regression"}, optional
        Inferred from the target when omitted.
    name, source : str
        Dataset name and where it came from (used in messages).

    Returns
    -------
    Dataset

    Raises
    ------
    TargetError
        Target column missing (the message suggests the closest name), all missing, or
        a classification target with a single class.
    ConfigError
        Unknown task, or regression on a non-numeric target.
    UnreadableTableError
        No rows, duplicate column names, or no usable feature column left.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.5, 2.5, 3.1, 4.8]})
    >>> ds = dataset_from_frame(df, target="y")
    >>> ds.task, ds.schema.feature_names
    ('regression', ['x'])
    """
    _check_task(task)
    frame = frame.copy(deep=False)
    frame.columns = [str(c) for c in frame.columns]
    duplicated = sorted(set(frame.columns[frame.columns.duplicated()]))
    if duplicated:
        raise UnreadableTableError(
            f"Table {source} has duplicate column names: {', '.join(duplicated)}. "
            "Give every column a distinct name."
        )
    if frame.shape[0] == 0:
        raise UnreadableTableError(f"Table {source} has no rows. Add data rows.")
    if target not in frame.columns:
        raise TargetError(
            f"Target column '{target}' is not in {source}.{did_you_mean(target, frame.columns)} "
            f"Available columns: {', '.join(frame.columns)}. Pass one of them as the target."
        )
    warnings: list[str] = []

    y_series = frame[target]
    missing = y_series.isna().to_numpy()
    if missing.all():
        raise TargetError(
            f"Target column '{target}' in {source} has no values: all {len(frame)} rows are "
            "missing. Pick a column with labels, or fill it in."
        )
    if missing.any():
        k = int(missing.sum())
        warnings.append(
            f"dropped {k} row{'s' if k != 1 else ''} whose target '{target}' is missing"
        )
    keep = ~missing
    y_series = y_series[keep].reset_index(drop=True)

    inferred_task = infer_task(y_series)
    chosen = task or inferred_task
    if chosen == "regression":
        y, keep_finite = _regression_target(y_series, target, source)
        if not keep_finite.all():
            k = int((~keep_finite).sum())
            warnings.append(
                f"dropped {k} row{'s' if k != 1 else ''} whose target '{target}' is infinite"
            )
            keep[np.flatnonzero(keep)[~keep_finite]] = False
            y = y[keep_finite]
        classes = None
    else:
        y, classes, label_note = _classification_target(y_series, target, source)
        if label_note:
            warnings.append(label_note)
    if (
        task is None
        and pd.api.types.is_numeric_dtype(y_series.dtype)
        and not pd.api.types.is_bool_dtype(y_series.dtype)
    ):
        n_distinct = y_series.nunique()
        other = "regression" if chosen == "classification" else "classification"
        # Only mention the inference when the target could plausibly be read either way.
        # A 0/1 target is no question.
        ambiguous_classes = chosen == "classification" and n_distinct > 2
        if ambiguous_classes or (chosen == "regression" and n_distinct <= 50
                                 and _all_integral(y_series)):
            warnings.append(
                f"task inferred as {chosen}: target '{target}' has {n_distinct} distinct "
                f"numeric values; pass --task {other} (task='{other}' in Python) to override"
            )

    features = frame.loc[keep, [c for c in frame.columns if c != target]]
    features = features.reset_index(drop=True)
    columns: list[ColumnSchema] = []
    values: dict[str, pd.Series] = {}
    dropped: dict[str, str] = {}
    for col in features.columns:
        result = infer_column(features[col])
        warnings.extend(result.warnings)
        if result.schema is None:
            dropped[col] = result.dropped or "unusable"
        else:
            columns.append(result.schema)
            values[col] = result.values.reset_index(drop=True)
    if not columns:
        if dropped:
            why = "; ".join(f"'{c}': {r}" for c, r in dropped.items())
            problem = f"No usable feature column left in {source} after dropping: {why}."
        else:
            problem = f"Table {source} has no column besides the target '{target}'."
        raise UnreadableTableError(
            f"{problem} Add feature columns a model can learn from (numbers, categories, dates)."
        )

    schema = Schema(
        target=target, task=chosen, columns=tuple(columns), classes=classes, dropped=dropped
    )
    X = pd.DataFrame(values, columns=[c.name for c in columns])
    return Dataset(
        name=name,
        source=source,
        X=X,
        y=y,
        schema=schema,
        fingerprint=fingerprint(frame, schema),
        warnings=warnings,
    )


def fingerprint(frame: pd.DataFrame, schema: Schema) -> str:
    """sha256 (hex) of a table's content, column names and dtypes, and its schema.

    Stable across processes and runs (pandas' row hash uses a fixed key); changes when
    any cell, column name, dtype, the target or the task changes.
    """
    h = hashlib.sha256(_FINGERPRINT_VERSION)
    h.update(f"{frame.shape[0]}x{frame.shape[1]}\0".encode())
    for col in frame.columns:
        h.update(f"{col}\0{frame[col].dtype}\0".encode())
    try:
        rows = pd.util.hash_pandas_object(frame, index=False)
    except TypeError:  # unhashable cells (lists, dicts): hash their text instead
        rows = pd.util.hash_pandas_object(frame.astype(str), index=False)
    h.update(rows.to_numpy().tobytes())
    h.update(json.dumps(schema.to_dict(), sort_keys=True, default=str).encode())
    return h.hexdigest()


def check_folds(dataset: Dataset, folds: int, test_size: float) -> None:
    """Check that a dataset has enough rows for a held-out test split and k-fold CV.

    The test split is stratified for classification, so every class needs at least two
    rows, and the training part must keep at least ``folds`` rows of every class (at
    least ``folds`` rows in total for regression).

    Parameters
    ----------
    dataset : Dataset
    folds : int
        Number of cross-validation folds (>= 2).
    test_size : float
        Share of rows held out for the final test, in [0, 1). 0 means no test split.

    Raises
    ------
    ConfigError
        ``folds`` or ``test_size`` out of range.
    TooFewRowsError
        Not enough rows (or rows of some class).

    Examples
    --------
    >>> df = pd.DataFrame({"x": [0.5 * i for i in range(40)], "y": ["a", "b"] * 20})
    >>> check_folds(dataset_from_frame(df, "y", name="toy"), folds=5, test_size=0.2)
    """
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ConfigError(f"The number of folds must be an int >= 2. Got {folds!r} instead.")
    if not (isinstance(test_size, int | float) and 0 <= test_size < 1):
        raise ConfigError(
            f"The test size must be a float in the range [0, 1). Got {test_size!r} instead."
        )
    folds = int(folds)
    n = dataset.n_rows
    split = f"a {test_size:.0%} test split and " if test_size else ""
    where = f"Dataset '{dataset.name}' ({dataset.source})"

    if dataset.task == "regression":
        n_train = n - math.ceil(n * test_size)
        if n_train < folds or (test_size and n - n_train < 1):
            raise TooFewRowsError(
                f"{where} has {n} rows: too few for {split}{folds}-fold cross-validation "
                f"(needs at least {folds} training rows, would have {n_train}). "
                "Lower --folds or add rows."
            )
        return

    labels, counts = np.unique(_label_keys(dataset.y), return_counts=True)
    smallest = int(counts.min())
    small_label = labels[int(counts.argmin())]
    if test_size and smallest < 2:
        raise TooFewRowsError(
            f"{where} has only {smallest} row of class {small_label!r}: a stratified test "
            f"split needs at least 2 rows per class. Add rows of that class or lower --folds."
        )
    n_test = math.ceil(n * test_size)
    if test_size and n_test < len(labels):
        raise TooFewRowsError(
            f"{where} has {n} rows and {len(labels)} classes: a {test_size:.0%} test split "
            f"holds {n_test} rows, fewer than one per class. Add rows or lower --folds."
        )
    # Conservative: a class may lose up to ceil(count * test_size) rows to the test split.
    train_counts = counts - np.ceil(counts * test_size).astype(int)
    worst = int(train_counts.min())
    if worst < folds:
        worst_label = labels[int(train_counts.argmin())]
        max_folds = worst
        advice = (
            f"Lower --folds to {max_folds} or add rows of that class."
            if max_folds >= 2
            else "Add rows of that class (or lower --test-size)."
        )
        raise TooFewRowsError(
            f"{where} has {n} rows; class {worst_label!r} has "
            f"{int(counts[int(train_counts.argmin())])}, leaving {worst} for training after "
            f"{split.removesuffix(' and ') or 'no test split'}, but {folds}-fold stratified "
            f"cross-validation needs at least {folds} per class. {advice}"
        )


def _check_task(task: str | None) -> None:
    if task is not None and task not in TASKS:
        raise ConfigError(
            f"The task must be one of {', '.join(TASKS)} (or omitted to infer it). "
            f"Got {task!r} instead.{did_you_mean(str(task), TASKS)}"
        )


def _all_integral(values: pd.Series) -> bool:
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))


def _regression_target(y: pd.Series, target: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    numeric = None
    if not pd.api.types.is_bool_dtype(y.dtype):
        if pd.api.types.is_numeric_dtype(y.dtype):
            numeric = y
        elif pd.api.types.infer_dtype(y, skipna=True) in (
            "integer",
            "floating",
            "mixed-integer-float",
            "decimal",
        ):
            numeric = pd.to_numeric(y, errors="coerce")
    if numeric is None:
        examples = ", ".join(repr(v) for v in y.drop_duplicates().head(3))
        raise ConfigError(
            f"Regression needs a numeric target, but '{target}' in {source} holds "
            f"{y.dtype} values ({examples}, ...). Use task='classification' or pick a "
            "numeric target."
        )
    arr = numeric.to_numpy(dtype=float)
    return arr, np.isfinite(arr)


def _classification_target(
    y: pd.Series, target: str, source: str
) -> tuple[np.ndarray, tuple, str | None]:
    note = None
    if pd.api.types.is_float_dtype(y.dtype):
        arr = y.to_numpy(dtype=float)
        if np.all(arr == np.round(arr)):
            # An int column with missing cells is read as float: give the labels back.
            labels = arr.astype(np.int64)
        else:
            n_distinct = len(np.unique(arr))
            if n_distinct > 20:
                raise ConfigError(
                    f"Classification needs labels, but target '{target}' in {source} holds "
                    f"{n_distinct} distinct fractional numbers. Use task='regression'."
                )
            labels = arr
    elif pd.api.types.is_bool_dtype(y.dtype):
        labels = y.to_numpy(dtype=bool)
    elif pd.api.types.is_integer_dtype(y.dtype):
        labels = y.to_numpy(dtype=np.int64)
    else:
        labels = y.to_numpy(dtype=object)
        try:
            sorted(set(labels))
        except TypeError:
            # Mixed labels (e.g. 1 and "a") cannot be ordered: compare them as text.
            labels = np.array([category_string(v) for v in labels], dtype=object)
            note = f"target '{target}' mixes value types; its labels are used as text"
    classes = tuple(_python_scalar(v) for v in sorted(set(labels.tolist())))
    if len(classes) < 2:
        raise TargetError(
            f"Target column '{target}' in {source} needs at least two classes; found only "
            f"{classes[0]!r}. Pick another target, or add rows of other classes."
        )
    return labels, classes, note


def _python_scalar(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _label_keys(y: np.ndarray) -> np.ndarray:
    if y.dtype == object:
        return np.array([str(v) for v in y], dtype=object)
    return y
