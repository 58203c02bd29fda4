"""Reading labeled tables and preparing them for the models.

``load_dataset`` reads a CSV/TSV/TXT file, a Parquet file or a folder of Parquet shards,
infers the task and the kind of every column, drops columns no model can use (with a
warning naming them) and returns a :class:`Dataset` with a stable fingerprint.
``build_preprocessor`` gives the unfitted ``ColumnTransformer`` for a schema and
``compile_preprocessor`` its fitted form as numpy operations. Prediction inputs go
through one path: ``parse_rows`` (a JSON body) or ``coerce_frame`` (a DataFrame) check
them against the schema and give ``Rows``.

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
from fleetlearn.data._examples import EXAMPLES, example_datasets, write_example
from fleetlearn.data._infer import infer_task
from fleetlearn.data._load import SUPPORTED_SUFFIXES, load_table, sniff_format
from fleetlearn.data._preprocess import (
    BooleanToFloat,
    CategoryToString,
    CompiledPreprocessor,
    DatetimeFeatures,
    build_preprocessor,
    compile_preprocessor,
)
from fleetlearn.data._profile import PROFILE_KINDS, profile_frame
from fleetlearn.data._rows import (
    MAX_PROBLEMS,
    InputError,
    InputProblem,
    Rows,
    coerce_frame,
    concat_rows,
    parse_rows,
)
from fleetlearn.data._schema import ColumnKind, ColumnSchema, Schema, TaskKind

__all__ = [
    "EXAMPLES",
    "BooleanToFloat",
    "CategoryToString",
    "ColumnKind",
    "ColumnSchema",
    "CompiledPreprocessor",
    "Dataset",
    "DatetimeFeatures",
    "InputError",
    "InputProblem",
    "MAX_PROBLEMS",
    "PROFILE_KINDS",
    "Rows",
    "Schema",
    "SUPPORTED_SUFFIXES",
    "TaskKind",
    "build_preprocessor",
    "check_folds",
    "coerce_frame",
    "compile_preprocessor",
    "concat_rows",
    "dataset_from_frame",
    "example_datasets",
    "fingerprint",
    "infer_task",
    "load_dataset",
    "load_table",
    "parse_rows",
    "sniff_format",
    "write_example",
    "profile_frame",
]
