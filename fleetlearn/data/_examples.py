"""Bundled example tables, written on demand (no data files are shipped).

* ``wine.csv``: scikit-learn's wine recognition data, 178 rows, all numeric, target
  ``cultivar`` (3 classes).
* ``customers.csv``: a generated churn table (2,000 rows, fixed seed) showing real-world
  handling: an ID column, a date column, string categoricals with a rare value, a yes/no
  column, numbers with ~5% missing cells, free-text notes, target ``churned`` (yes/no).
* ``diabetes.parquet``: scikit-learn's diabetes data, 442 rows, regression target
  ``progression``.

The content is deterministic, so the fingerprints of the loaded datasets are stable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["example_datasets", "make_customers"]

_CUSTOMERS_SEED = 20240601


def example_datasets(dest: str | Path) -> list[tuple[Path, str]]:
    """Write the example tables into ``dest`` (created if needed).

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
    # On use: only the demo writes the example tables; scikit-learn is slow to import.
    from sklearn.datasets import load_diabetes, load_wine

    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)

    wine = load_wine(as_frame=True)
    wine_frame = wine.data.copy()
    wine_frame["cultivar"] = np.asarray(wine.target_names)[wine.target.to_numpy()]
    wine_path = dest / "wine.csv"
    wine_frame.to_csv(wine_path, index=False, lineterminator="\n")

    customers_path = dest / "customers.csv"
    make_customers().to_csv(customers_path, index=False, lineterminator="\n")

    diabetes = load_diabetes(as_frame=True, scaled=False)
    diabetes_frame = diabetes.data.copy()
    diabetes_frame["progression"] = diabetes.target.astype(float)
    diabetes_path = dest / "diabetes.parquet"
    diabetes_frame.to_parquet(diabetes_path, index=False)

    return [(wine_path, "cultivar"), (customers_path, "churned"), (diabetes_path, "progression")]


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
