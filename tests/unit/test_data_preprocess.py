"""The preprocessor: fit on messy data, tolerate new values, survive skops, coerce inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from fleetlearn.data import (
    BooleanToFloat,
    CategoryToString,
    ColumnSchema,
    Dataset,
    DatetimeFeatures,
    Schema,
    build_preprocessor,
    coerce_frame,
    compile_preprocessor,
    dataset_from_frame,
    parse_rows,
)
from fleetlearn.data._examples import make_customers
from fleetlearn.errors import DataError
from fleetlearn.registry import load_estimator, untrusted_types


@pytest.fixture(scope="module")
def customers() -> Dataset:
    return dataset_from_frame(make_customers(400), "churned", name="customers")


def _odd_rows(ds: Dataset) -> pd.DataFrame:
    """Rows a deployed model meets: an unseen region, missing cells, ints for strings."""
    rows = ds.X.head(4).copy()
    rows["region"] = rows["region"].astype(object)
    rows.loc[0, "region"] = "atlantis"
    rows.loc[1, "age"] = np.nan
    rows.loc[1, "plan"] = np.nan
    rows.loc[2, "signup_date"] = pd.NaT
    rows.loc[3, "region"] = 7
    return rows


def test_fits_on_missing_values_and_transforms_unseen_values(customers: Dataset) -> None:
    assert customers.X.isna().any().any()  # the example really has missing cells
    pre = build_preprocessor(customers.schema, scale=True)

    pre.fit(customers.X, customers.y)
    out = pre.transform(_odd_rows(customers))

    assert isinstance(pre, ColumnTransformer)
    assert out.dtype == np.float64
    assert out.shape == (4, len(pre.get_feature_names_out()))
    assert np.isfinite(out).all()


def test_feature_names_and_one_hot_layout(customers: Dataset) -> None:
    pre = build_preprocessor(customers.schema, scale=False).fit(customers.X)
    names = list(pre.get_feature_names_out())

    assert "age" in names
    assert "autopay" in names
    assert {"plan_basic", "plan_plus", "plan_pro"} <= set(names)
    assert {"signup_date_year", "signup_date_month", "signup_date_dayofweek"} <= set(names)
    assert "signup_date_hour" not in names  # dates without times get no hour
    # "islands" is rarer than 1% of rows: grouped with unseen values, not its own column.
    assert "region_islands" not in names
    assert "region_infrequent_sklearn" in names


def test_scale_flag_controls_standardisation() -> None:
    schema = Schema("y", "regression", (ColumnSchema("x", "numeric", "float64", True),))
    frame = pd.DataFrame({"x": [10.0, np.nan, 30.0]})

    raw = build_preprocessor(schema, scale=False).fit_transform(frame)
    scaled = build_preprocessor(schema, scale=True).fit_transform(frame)

    assert raw.ravel().tolist() == [10.0, 20.0, 30.0]  # median imputed
    assert scaled.mean() == pytest.approx(0.0)


def test_preprocessor_is_unfitted_and_clonable(customers: Dataset) -> None:
    pre = build_preprocessor(customers.schema, scale=True)
    with pytest.raises(NotFittedError):
        pre.transform(customers.X)
    assert clone(pre).get_params().keys() == pre.get_params().keys()


def test_categories_match_whatever_type_they_arrive_as() -> None:
    frame = pd.DataFrame({"code": pd.Series([1, "x", 2, "x", 1, 2] * 5, dtype=object)})
    schema = dataset_from_frame(frame.assign(y=np.arange(30) % 2), "y").schema
    pre = build_preprocessor(schema, scale=False).fit(frame)

    as_numbers = pre.transform(pd.DataFrame({"code": [1.0, 2.0]}))
    as_strings = pre.transform(pd.DataFrame({"code": ["1", "2"]}))

    np.testing.assert_array_equal(as_numbers, as_strings)
    assert as_numbers.sum(axis=1).tolist() == [1.0, 1.0]  # each hits a known category


def test_skops_round_trip_with_trusted_prefixes_predicts_the_same(customers: Dataset) -> None:
    pipe = Pipeline(
        [
            ("preprocess", build_preprocessor(customers.schema, scale=True)),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(customers.X, customers.y)
    data = sio.dumps(pipe)

    # Every type the pipeline holds is on the registry's exact allow-list.
    assert untrusted_types(data) == []
    loaded = load_estimator(data)

    rows = _odd_rows(customers)
    np.testing.assert_array_equal(loaded.predict(customers.X), pipe.predict(customers.X))
    np.testing.assert_allclose(loaded.predict_proba(rows), pipe.predict_proba(rows))


def test_datetime_features_add_the_hour_only_when_times_are_present() -> None:
    frame = pd.DataFrame(
        {"day": ["2024-03-01", "2024-03-02"], "stamp": ["2024-03-01 08:30", "2024-03-01 17:00"]}
    )
    parts = DatetimeFeatures().fit(frame)

    out = parts.transform(pd.DataFrame({"day": ["2024-12-25"], "stamp": [None]}))

    assert parts.get_feature_names_out().tolist() == [
        "day_year", "day_month", "day_day", "day_dayofweek",
        "stamp_year", "stamp_month", "stamp_day", "stamp_dayofweek", "stamp_hour",
    ]  # fmt: skip
    assert out[0, :4].tolist() == [2024.0, 12.0, 25.0, 2.0]  # a Wednesday
    assert np.isnan(out[0, 4:]).all()


def test_boolean_words_map_to_floats() -> None:
    out = BooleanToFloat().fit_transform(pd.DataFrame({"b": ["Yes", "no", True, 0, None, "maybe"]}))
    np.testing.assert_array_equal(out.ravel(), [1.0, 0.0, 1.0, 0.0, np.nan, np.nan])


# Outputs strings: the checks that do arithmetic on the output do not apply.
_STRING_OUTPUT_CHECKS = {
    name: "outputs strings"
    for name in (
        "check_pipeline_consistency",
        "check_estimators_pickle",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit_idempotent",
    )
}


def _expected_failures(estimator) -> dict[str, str]:
    return _STRING_OUTPUT_CHECKS if isinstance(estimator, CategoryToString) else {}


@parametrize_with_checks(
    [BooleanToFloat(), CategoryToString(), DatetimeFeatures()],
    expected_failed_checks=_expected_failures,
)
def test_transformers_follow_the_sklearn_contract(estimator, check) -> None:
    check(estimator)


def test_coerce_frame_casts_by_kind_and_ignores_extra_columns(customers: Dataset) -> None:
    rows = pd.DataFrame(
        {
            "extra": [1, 2],
            "satisfaction": ["4", None],
            "support_calls": [1, 2],
            "monthly_charges": [55.5, None],
            "age": [30, 40],
            "autopay": ["yes", False],
            "region": ["north", 3],
            "plan": [None, "pro"],
            "signup_date": ["2021-05-01", None],
        },
        index=[10, 11],
    )

    out = coerce_frame(rows, customers.schema)

    assert list(out.columns) == customers.schema.feature_names
    assert out.index.tolist() == [10, 11]
    assert out["age"].dtype == np.float64
    assert out["autopay"].tolist() == [1.0, 0.0]
    assert out["region"].tolist() == ["north", "3"]
    assert out["plan"].dtype == object
    assert pd.isna(out.loc[10, "plan"])
    assert pd.api.types.is_datetime64_any_dtype(out["signup_date"])
    assert np.isnan(out.loc[11, "satisfaction"])
    pre = build_preprocessor(customers.schema, scale=True).fit(customers.X)
    assert np.isfinite(pre.transform(out)).all()


def test_coerce_frame_names_every_missing_column(customers: Dataset) -> None:
    rows = customers.X.drop(columns=["age", "plan"])
    with pytest.raises(DataError) as info:
        coerce_frame(rows, customers.schema)
    assert "'age'" in str(info.value)
    assert "'plan'" in str(info.value)
    assert "2 feature columns" in str(info.value)


def test_coerce_frame_refuses_values_of_the_wrong_type(customers: Dataset) -> None:
    rows = customers.X.head(2).astype(object)
    rows.loc[0, "age"] = "forty"
    rows.loc[1, "autopay"] = "sometimes"
    with pytest.raises(DataError) as info:
        coerce_frame(rows, customers.schema)
    # The same checks and wording as the API's parse_rows (one coercion path).
    assert "'age': Row 0: expected a number, got 'forty'" in str(info.value)
    assert "'autopay': Row 1: expected true/false" in str(info.value)


def test_coerce_frame_reads_cells_as_the_api_reads_json(customers: Dataset) -> None:
    rows = customers.X.head(3).astype(object)
    rows.loc[0, "age"] = np.int64(40)
    rows.loc[1, "age"] = "41.5"  # frames read from text carry numbers as text
    rows.loc[2, "age"] = True  # a boolean is not a number, in a body or a frame
    rows.loc[1, "signup_date"] = pd.Timestamp("2021-05-01 10:30")
    with pytest.raises(DataError, match="'age': Row 2: expected a number, got True"):
        coerce_frame(rows, customers.schema)
    rows.loc[2, "age"] = "inf"
    with pytest.raises(DataError, match="'age': Row 2: expected a number, got 'inf'"):
        coerce_frame(rows, customers.schema)
    rows.loc[2, "age"] = None
    out = coerce_frame(rows, customers.schema)
    assert out["age"].iloc[:2].tolist() == [40.0, 41.5]
    assert np.isnan(out["age"].iloc[2])
    assert out.loc[1, "signup_date"] == pd.Timestamp("2021-05-01 10:30")


@pytest.mark.parametrize("scale", [True, False])
def test_compiled_preprocessor_equals_the_fitted_transform(customers: Dataset,
                                                           scale: bool) -> None:
    pre = build_preprocessor(customers.schema, scale=scale).fit(customers.X)
    compiled = compile_preprocessor(pre, customers.schema)
    # Numeric, boolean and categorical blocks are numpy kernels; dates run fitted.
    assert (compiled.n_compiled, compiled.n_blocks) == (3, 4)
    frame = coerce_frame(customers.X.head(50), customers.schema)
    rows = parse_rows({"records": [
        {k: (None if pd.isna(v) else v.isoformat() if isinstance(v, pd.Timestamp)
             else v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
        for r in frame.to_dict(orient="records")]}, customers.schema)
    np.testing.assert_allclose(compiled(rows), pre.transform(frame), rtol=1e-12)


def test_compile_preprocessor_needs_a_fitted_column_transformer(customers: Dataset) -> None:
    with pytest.raises(TypeError, match="fitted ColumnTransformer"):
        compile_preprocessor(build_preprocessor(customers.schema, scale=True),
                             customers.schema)
