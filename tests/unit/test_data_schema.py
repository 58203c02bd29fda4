"""Schema inference, task detection, target checks, fingerprints and fold checks."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetlearn.data import (
    ColumnSchema,
    Dataset,
    Schema,
    check_folds,
    dataset_from_frame,
    infer_task,
    load_dataset,
)
from fleetlearn.errors import (
    ConfigError,
    TargetError,
    TooFewRowsError,
    UnreadableTableError,
)

N = 60


@pytest.fixture
def messy() -> pd.DataFrame:
    """One column per inference rule, plus a classification target."""
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "row_number": rng.permutation(N),
            "customer_id": [f"C{i:05d}" for i in rng.permutation(N)],
            "income": rng.integers(10_000, 900_000, N),
            "children": rng.integers(0, 4, N),
            "comment": [
                f"the customer wrote to us about problem number {i} on a rainy day"
                for i in range(N)
            ],
            "country": ["nl"] * N,
            "nothing": [np.nan] * N,
            "signup": pd.date_range("2021-01-01", periods=N, freq="7D").strftime("%Y-%m-%d"),
            "autopay": rng.choice(["Yes", "No"], N),
            "paperless": rng.choice([True, False], N),
            "plan": rng.choice(["basic", "plus", "pro"], N),
            "score": rng.normal(size=N),
            "label": rng.choice(["churn", "stay"], N),
        }
    )


def kinds(ds: Dataset) -> dict[str, str]:
    return {c.name: c.kind for c in ds.schema.columns}


def test_column_kinds_and_drops(messy: pd.DataFrame) -> None:
    ds = dataset_from_frame(messy, target="label")

    assert kinds(ds) == {
        "income": "numeric",
        "children": "numeric",  # few-valued ints stay numeric (documented rule)
        "signup": "datetime",
        "autopay": "boolean",
        "paperless": "boolean",
        "plan": "categorical",
        "score": "numeric",
    }
    assert set(ds.schema.dropped) == {
        "row_number",
        "customer_id",
        "comment",
        "country",
        "nothing",
    }
    assert ds.schema.dropped["customer_id"].startswith("ID-like")
    assert ds.schema.dropped["row_number"].startswith("ID-like")
    assert ds.schema.dropped["comment"].startswith("free text")
    assert ds.schema.dropped["country"].startswith("constant")
    assert ds.schema.dropped["nothing"] == "all missing"
    assert "dropped ID-like column 'customer_id'" in ds.warnings
    assert "dropped free-text column 'comment'" in ds.warnings
    assert ds.schema.column("plan").categories == ("basic", "plus", "pro")
    assert ds.schema.column("score").categories is None


def test_features_are_raw_values_in_schema_order(messy: pd.DataFrame) -> None:
    ds = dataset_from_frame(messy, target="label")

    assert list(ds.X.columns) == ds.schema.feature_names
    assert "label" not in ds.X.columns
    assert ds.X["autopay"].tolist() == messy["autopay"].tolist()  # not encoded
    assert pd.api.types.is_datetime64_any_dtype(ds.X["signup"])  # dates parsed
    assert ds.schema.column("signup").dtype in ("str", "object")  # dtype as read
    assert ds.y.tolist() == messy["label"].tolist()
    assert ds.task == "classification"
    assert ds.schema.classes == ("churn", "stay")
    assert ds.n_rows == N


def test_int_column_that_is_unique_but_not_an_id_is_kept() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"income": rng.choice(np.arange(10_000, 1_000_000), 50, replace=False), "y": [0, 1] * 25}
    )
    assert kinds(dataset_from_frame(frame, "y")) == {"income": "numeric"}


def test_number_like_strings_become_numbers_with_a_warning() -> None:
    values = [str(v) for v in np.linspace(0, 10, 40)]
    values[3] = "unknown"
    frame = pd.DataFrame({"amount": values, "y": [0.5 * i for i in range(40)]})

    ds = dataset_from_frame(frame, "y")

    assert kinds(ds) == {"amount": "numeric"}
    assert ds.X["amount"].dtype == np.float64
    assert ds.X["amount"].isna().sum() == 1
    assert any("'unknown'" in w for w in ds.warnings)


def test_dates_written_day_first_are_parsed_consistently() -> None:
    dates = pd.date_range("2024-01-01", periods=30, freq="D")
    frame = pd.DataFrame({"d": dates.strftime("%d/%m/%Y"), "y": np.arange(30) * 1.5})

    ds = dataset_from_frame(frame, "y")

    assert kinds(ds) == {"d": "datetime"}
    assert ds.X["d"].tolist() == list(dates)


def test_mixed_value_types_are_one_categorical() -> None:
    frame = pd.DataFrame(
        {"grade": pd.Series([1, "A", 2.0, "B", None] * 6, dtype=object), "y": [0, 1, 0] * 10}
    )
    ds = dataset_from_frame(frame, "y")
    assert ds.schema.column("grade") == ColumnSchema(
        "grade", "categorical", "object", True, ("1", "2", "A", "B")
    )


def test_less_common_cells_booleans_in_any_case_durations_lists() -> None:
    frame = pd.DataFrame(
        {
            "member": ["Yes", "yes", "NO", "no", None] * 6,
            "wait": pd.to_timedelta(np.arange(30), unit="min"),
            "tags": [["a"], ["b", "c"]] * 15,
            "y": np.arange(30) * 0.5,
        }
    )

    ds = dataset_from_frame(frame, "y")

    assert kinds(ds) == {"member": "boolean", "wait": "numeric"}
    assert ds.X["wait"].tolist()[:2] == [0.0, 60.0]
    assert ds.schema.dropped["tags"].startswith("unsupported")


def test_rows_with_missing_target_are_dropped_with_a_count() -> None:
    frame = pd.DataFrame({"x": np.arange(10.0), "label": ["a", "b", None] * 3 + ["a"]})

    ds = dataset_from_frame(frame, "label")

    assert ds.n_rows == 7
    assert len(ds.X) == 7
    assert ds.X["x"].tolist() == [0.0, 1.0, 3.0, 4.0, 6.0, 7.0, 9.0]
    assert "dropped 3 rows whose target 'label' is missing" in ds.warnings


def test_integer_labels_read_as_float_come_back_as_ints() -> None:
    frame = pd.DataFrame({"x": np.arange(40.0), "y": [0, 1, 2, np.nan] * 10})
    ds = dataset_from_frame(frame, "y")
    assert ds.task == "classification"
    assert ds.y.dtype == np.int64
    assert ds.schema.classes == (0, 1, 2)
    assert any("task inferred as classification" in w for w in ds.warnings)


def test_missing_target_column_lists_columns_and_suggests() -> None:
    frame = pd.DataFrame({"age": [1, 2], "label": ["a", "b"]})
    with pytest.raises(TargetError) as info:
        dataset_from_frame(frame, target="lable", source="/data/t.csv")
    message = str(info.value)
    assert "'lable'" in message
    assert "/data/t.csv" in message
    assert "Did you mean 'label'?" in message
    assert "age, label" in message


def test_single_class_target_is_refused() -> None:
    frame = pd.DataFrame({"x": range(10), "y": ["x"] * 10})
    with pytest.raises(TargetError, match="needs at least two classes; found only 'x'"):
        dataset_from_frame(frame, "y")


def test_all_missing_target_is_refused() -> None:
    frame = pd.DataFrame({"x": range(5), "y": [np.nan] * 5})
    with pytest.raises(TargetError, match="all 5 rows are missing"):
        dataset_from_frame(frame, "y")


def test_unknown_task_and_regression_on_text_are_config_errors() -> None:
    frame = pd.DataFrame({"x": range(10), "y": ["a", "b"] * 5})
    with pytest.raises(ConfigError, match="Did you mean 'regression'"):
        dataset_from_frame(frame, "y", task="regresion")
    with pytest.raises(ConfigError, match="Regression needs a numeric target"):
        dataset_from_frame(frame, "y", task="regression")


def test_no_usable_feature_says_what_was_dropped_and_why() -> None:
    frame = pd.DataFrame(
        {"id": [f"u{i}" for i in range(30)], "k": [1] * 30, "y": [0.5 * i for i in range(30)]}
    )
    with pytest.raises(UnreadableTableError) as info:
        dataset_from_frame(frame, "y")
    assert "'id': ID-like" in str(info.value)
    assert "'k': constant" in str(info.value)


def test_target_only_table_is_refused() -> None:
    with pytest.raises(UnreadableTableError, match="besides the target 'y'"):
        dataset_from_frame(pd.DataFrame({"y": [1.0, 2.0, 3.0]}), "y")


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["cat", "dog"] * 10, "classification"),
        ([True, False] * 10, "classification"),
        (pd.Categorical(["lo", "hi"] * 10), "classification"),
        ([0, 1] * 10, "classification"),  # binary ints, even in a tiny table
        ([1, 2, 3, 4, 5] * 20, "classification"),  # few codes, each used often
        ([1.0, 2.0, np.nan, 3.0] * 30, "classification"),  # ints with missing cells
        (list(range(200)), "regression"),  # many-valued ints
        (np.linspace(0, 1, 50).tolist(), "regression"),
        ([0.5, 1.5] * 20, "regression"),  # two fractional values
    ],
)
def test_infer_task(values, task: str) -> None:
    assert infer_task(pd.Series(values, name="y")) == task


def test_classification_can_be_forced_and_regression_on_ints() -> None:
    frame = pd.DataFrame({"x": np.arange(40.0), "y": [1, 2, 3, 4] * 10})
    assert dataset_from_frame(frame, "y", task="regression").y.dtype == np.float64
    assert dataset_from_frame(frame, "y").task == "classification"


def test_fingerprint_is_stable_for_the_same_file(tmp_path: Path, messy: pd.DataFrame) -> None:
    path = tmp_path / "t.csv"
    messy.to_csv(path, index=False)

    first = load_dataset(path, "label")
    second = load_dataset(path, "label", name="other-name")

    assert first.fingerprint == second.fingerprint
    assert len(first.fingerprint) == 64
    int(first.fingerprint, 16)  # hex


def test_fingerprint_changes_with_one_cell_the_target_or_the_task(
    tmp_path: Path, messy: pd.DataFrame
) -> None:
    base = dataset_from_frame(messy, "label").fingerprint
    edited = messy.copy()
    edited.loc[17, "score"] += 1e-9

    assert dataset_from_frame(edited, "label").fingerprint != base
    assert dataset_from_frame(messy, "autopay").fingerprint != base
    numbers = messy.assign(label=np.arange(N) % 3)
    assert (
        dataset_from_frame(numbers, "label", task="classification").fingerprint
        != dataset_from_frame(numbers, "label", task="regression").fingerprint
    )


def test_schema_json_round_trip_is_exact(messy: pd.DataFrame) -> None:
    frame = messy.assign(label=np.arange(N) % 3)
    for schema in (
        dataset_from_frame(messy, "label").schema,
        dataset_from_frame(frame, "label").schema,
        dataset_from_frame(messy.assign(label=messy["paperless"]), "label").schema,
        dataset_from_frame(frame, "label", task="regression").schema,
    ):
        restored = Schema.from_dict(json.loads(json.dumps(schema.to_dict())))
        assert restored == schema
        assert restored.classes == schema.classes
        assert [type(c) for c in restored.classes or ()] == [type(c) for c in schema.classes or ()]
        assert hash(restored) == hash(schema)


def test_dataset_pickles_for_ray_workers(messy: pd.DataFrame) -> None:
    ds = dataset_from_frame(messy, "label", name="messy")
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.fingerprint == ds.fingerprint
    assert copy.schema == ds.schema
    pd.testing.assert_frame_equal(copy.X, ds.X)
    assert "messy" in repr(ds)
    assert "classification" in repr(ds)


def _classes(counts: dict[str, int]) -> Dataset:
    labels = [label for label, k in counts.items() for _ in range(k)]
    frame = pd.DataFrame({"x": np.arange(len(labels), dtype=float), "y": labels})
    return dataset_from_frame(frame, "y", name="tiny")


def test_check_folds_accepts_enough_rows() -> None:
    check_folds(_classes({"a": 20, "b": 20}), folds=5, test_size=0.2)
    check_folds(_classes({"a": 3, "b": 3}), folds=3, test_size=0.0)


def test_check_folds_names_the_short_class_and_the_fix() -> None:
    with pytest.raises(TooFewRowsError) as info:
        check_folds(_classes({"a": 30, "b": 4}), folds=5, test_size=0.2)
    message = str(info.value)
    assert "'tiny'" in message
    assert "class 'b' has 4" in message
    assert "Lower --folds to 3" in message


def test_check_folds_needs_two_rows_per_class_for_the_test_split() -> None:
    with pytest.raises(TooFewRowsError, match="only 1 row of class 'b'"):
        check_folds(_classes({"a": 30, "b": 1}), folds=2, test_size=0.2)


def test_check_folds_regression_and_bad_arguments() -> None:
    frame = pd.DataFrame({"x": np.arange(6.0), "y": np.linspace(0, 1, 6)})
    ds = dataset_from_frame(frame, "y", name="six")
    check_folds(ds, folds=4, test_size=0.2)
    with pytest.raises(TooFewRowsError, match="'six'.*6 rows.*add rows"):
        check_folds(ds, folds=5, test_size=0.2)
    with pytest.raises(ConfigError, match="folds"):
        check_folds(ds, folds=1, test_size=0.2)
    with pytest.raises(ConfigError, match="test size"):
        check_folds(ds, folds=2, test_size=1.5)
