"""Reading labeled tables and preparing them for the models.

``load_dataset`` reads a CSV/TSV/TXT file, a Parquet file or a folder of Parquet shards,
infers the task and the kind of every column, drops columns no model can use (with a
warning naming them) and returns a :class:`Dataset` with a stable fingerprint.
``build_preprocessor`` gives the unfitted ``ColumnTransformer`` for a schema and
``coerce_frame`` prepares serving inputs the same way.

This package does not import Ray or the registry.
"""

from __future__ import annotations

from fleetlearn.data._dataset import (
    Dataset,
    check_folds,
    dataset_from_frame,
    fingerprint,
    load_dataset,
)
from fleetlearn.data._examples import example_datasets
from fleetlearn.data._infer import infer_task
from fleetlearn.data._load import SUPPORTED_SUFFIXES, load_table
from fleetlearn.data._preprocess import (
    BooleanToFloat,
    CategoryToString,
    DatetimeFeatures,
    build_preprocessor,
    coerce_frame,
)
from fleetlearn.data._schema import ColumnKind, ColumnSchema, Schema, TaskKind

__all__ = [
    "BooleanToFloat",
    "CategoryToString",
    "ColumnKind",
    "ColumnSchema",
    "Dataset",
    "DatetimeFeatures",
    "Schema",
    "SUPPORTED_SUFFIXES",
    "TaskKind",
    "build_preprocessor",
    "check_folds",
    "coerce_frame",
    "dataset_from_frame",
    "example_datasets",
    "fingerprint",
    "infer_task",
    "load_dataset",
    "load_table",
]
