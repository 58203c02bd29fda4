"""Bundled example tables, written on demand (no data files are shipped).

* ``wine.csv``: scikit-learn's wine recognition data, 178 rows, all numeric, target
  ``cultivar`` (3 classes).
* ``customers.csv``: a generated churn table (2,000 rows, fixed seed) showing real-world
  handling: an ID column, a date column, string categoricals with a rare value, a yes/no
  column, numbers with ~5% missing cells, free-text notes, target ``churned`` (yes/no).
* ``diabetes.parquet``: scikit-learn's diabetes data, 442 rows, regression target
  ``progression``.
* ``iris.csv`` and ``breast_cancer.csv`` (:func:`write_example` only, not the demo):
  scikit-learn's iris (target ``species``) and breast cancer (target ``diagnosis``).

The content is deterministic, so the fingerprints of the loaded datasets are stable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fleetlearn.errors import DataFileNotFoundError, did_you_mean

__all__ = ["EXAMPLES", "example_datasets", "make_customers", "write_example"]

_CUSTOMERS_SEED = 20240601


#: The example tables :func:`write_example` writes: file name -> (target, what it is).
EXAMPLES: dict[str, tuple[str, str]] = {
    "iris.csv": ("species", "scikit-learn's iris flowers: 150 rows, 4 numeric columns, "
                 "3 classes"),
    "wine.csv": ("cultivar", "scikit-learn's wine recognition data: 178 rows, 13 numeric "
                 "columns, 3 classes"),
    "breast_cancer.csv": ("diagnosis", "scikit-learn's breast cancer data: 569 rows, 30 "
                          "numeric columns, 2 classes"),
    "customers.csv": ("churned", "a generated churn table: 2,000 rows with an ID, a date, "
                      "categoricals, a yes/no column, missing cells and free text; yes/no "
                      "target"),
    "diabetes.parquet": ("progression", "scikit-learn's diabetes data: 442 rows, 10 numeric "
                         "columns, regression"),
}


def _example_frame(name: str) -> pd.DataFrame:
    # On use: scikit-learn is slow to import.
    from sklearn import datasets

    if name == "customers.csv":
        return make_customers()
    if name == "diabetes.parquet":
        bunch = datasets.load_diabetes(as_frame=True, scaled=False)
        frame = bunch.data.copy()
        frame["progression"] = bunch.target.astype(float)
        return frame
    loader = {"iris.csv": datasets.load_iris, "wine.csv": datasets.load_wine,
              "breast_cancer.csv": datasets.load_breast_cancer}[name]
    bunch = loader(as_frame=True)
    frame = bunch.data.copy()
    if name == "iris.csv":
        frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    labels = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
    frame[EXAMPLES[name][0]] = labels
    return frame


def write_example(name: str, dest: str | Path) -> Path:
    """Write one example table (a key of :data:`EXAMPLES`) into ``dest``.

    Parameters
    ----------
    name : str
        ``"iris.csv"``, ``"wine.csv"``, ``"breast_cancer.csv"``, ``"customers.csv"`` or
        ``"diabetes.parquet"``.
    dest : str or pathlib.Path
        Folder to write into (created if needed); an existing file is overwritten.

    Returns
    -------
    pathlib.Path
        The file written. Its content is the same on every call.

    Raises
    ------
    DataFileNotFoundError
        ``name`` is not an example (the message lists them).

    Examples
    --------
    >>> import tempfile
    >>> write_example("iris.csv", tempfile.mkdtemp()).name
    'iris.csv'
    """
    if name not in EXAMPLES:
        raise DataFileNotFoundError(
            f"No example table '{name}'.{did_you_mean(name, EXAMPLES)} The examples are: "
            f"{', '.join(EXAMPLES)}.")
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / name
    frame = _example_frame(name)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, lineterminator="\n")
    return path


def example_datasets(dest: str | Path) -> list[tuple[Path, str]]:
    """Write the example tables of the demo into ``dest`` (created if needed).

    Parameters
    ----------
    dest : str or pathlib.Path
        Folder to write into; existing example files are overwritten.

    Returns
    -------
    list of (pathlib.Path, str)
        ``(path, target)`` for wine.csv, customers.csv and diabetes.parquet.

    Examples
    --------
    >>> import tempfile
    >>> [(p.name, t) for p, t in example_datasets(tempfile.mkdtemp())]
    [('wine.csv', 'cultivar'), ('customers.csv', 'churned'), ('diabetes.parquet', 'progression')]
    """
    return [(write_example(name, dest), EXAMPLES[name][0])
            for name in ("wine.csv", "customers.csv", "diabetes.parquet")]


_REGIONS = ("north", "south", "east", "west", "central", "islands")
_REGION_P = (0.27, 0.24, 0.2, 0.17, 0.116, 0.004)  # "islands" is rare on purpose
_PLANS = ("basic", "plus", "pro")
_NOTE_OPENERS = (
    "Called about",
    "Emailed support regarding",
    "Chatted with an agent about",
    "Left a review mentioning",
    "Asked in the shop about",
)
_NOTE_TOPICS = (
    "a billing error on the last invoice",
    "slow speeds in the evening",
    "upgrading to a bigger plan",
    "moving to a new address",
    "the price increase announced last month",
    "a router that keeps restarting",
    "adding a second line for family",
    "cancelling the sports add-on",
)


def make_customers(n_rows: int = 2000, seed: int = _CUSTOMERS_SEED) -> pd.DataFrame:
    """Generate the churn-like example table (numpy randomness only, deterministic).

    Churn depends on plan, tenure (signup date), autopay, monthly charges, support calls
    and region; ``customer_id`` and ``notes`` carry no signal and are dropped on load.

    Examples
    --------
    >>> make_customers(50).shape
    (50, 11)
    """
    rng = np.random.default_rng(seed)
    n = n_rows
    ids = rng.choice(np.arange(100_000, 1_000_000), size=n, replace=False)
    customer_id = np.array([f"C{i:06d}" for i in ids], dtype=object)

    start = np.datetime64("2019-01-01")
    days = rng.integers(0, 5 * 365, size=n)
    signup = start + days.astype("timedelta64[D]")
    tenure_years = (5 * 365 - days) / 365.0

    plan_idx = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    region_idx = rng.choice(len(_REGIONS), size=n, p=_REGION_P)
    autopay = rng.random(n) < 0.55
    age = rng.integers(18, 80, size=n).astype(float)
    monthly = 20 + 15 * plan_idx + rng.gamma(4.0, 6.0, size=n)
    support_calls = rng.poisson(1.2 + 0.6 * (plan_idx == 0), size=n).astype(float)
    satisfaction = np.clip(np.round(rng.normal(3.4, 1.0, size=n)), 1, 5)

    logit = (
        0.9
        + 1.4 * (plan_idx == 0)
        - 0.8 * (plan_idx == 2)
        - 1.1 * tenure_years
        - 2.0 * autopay
        + 0.06 * (monthly - 50)
        + 0.8 * support_calls
        - 0.9 * (satisfaction - 3)
        + 0.8 * (region_idx == 1)
        - 0.6 * (region_idx == 3)
    )
    # Bayes accuracy of this draw is about 0.83, so good models land near 0.8.
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))

    notes = np.array(
        [
            f"{_NOTE_OPENERS[rng.integers(len(_NOTE_OPENERS))]} "
            f"{_NOTE_TOPICS[rng.integers(len(_NOTE_TOPICS))]}; ticket {rng.integers(10**5, 10**6)}"
            for _ in range(n)
        ],
        dtype=object,
    )
    notes[rng.random(n) < 0.3] = None  # most customers never contacted support

    def with_missing(values: np.ndarray, share: float = 0.05) -> np.ndarray:
        out = values.astype(float)
        out[rng.random(n) < share] = np.nan
        return out

    frame = pd.DataFrame(
        {
            "customer_id": customer_id,
            "signup_date": np.datetime_as_string(signup, unit="D"),
            "plan": np.asarray(_PLANS, dtype=object)[plan_idx],
            "region": np.asarray(_REGIONS, dtype=object)[region_idx],
            "autopay": np.where(autopay, "yes", "no"),
            "age": with_missing(age),
            "monthly_charges": np.round(with_missing(monthly), 2),
            "support_calls": with_missing(support_calls),
            "satisfaction": satisfaction,
            "notes": notes,
            "churned": np.where(churned, "yes", "no"),
        }
    )
    return frame
