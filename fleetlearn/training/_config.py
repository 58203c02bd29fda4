"""Run configuration: what to train, on what, and how.

A run is described by a :class:`RunConfig`, built from CLI options or read from a
run file (YAML or TOML). The stored copy in the registry is what ``--resume`` uses,
so a resumed run trains exactly what the original asked for.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleetlearn.errors import ConfigError, DataFileNotFoundError, did_you_mean

__all__ = ["DatasetConfig", "RunConfig", "load_run_file", "SCHEDULES", "TASKS"]

SCHEDULES = ("sequential", "concurrent")
TASKS = ("classification", "regression")


@dataclass
class DatasetConfig:
    """One table of a run.

    Parameters
    ----------
    path : str
        CSV, Parquet, or a folder of Parquet shards.
    target : str
        Name of the target column.
    task : str, optional
        ``"classification"`` or ``"regression"``; detected from the target when omitted.
    name : str, optional
        Name used in the leaderboard and in model names; the file stem by default.
    models : list, optional
        Models for this dataset only; the run's models otherwise.
    """

    path: str
    target: str
    task: str | None = None
    name: str | None = None
    models: list[Any] | None = None


@dataclass
class RunConfig:
    """Everything a training run needs; defaults are the CLI's defaults.

    Examples
    --------
    >>> cfg = RunConfig(datasets=[DatasetConfig("wine.csv", "cultivar")], folds=3)
    >>> cfg.schedule
    'concurrent'
    """

    datasets: list[DatasetConfig]
    models: list[Any] | None = None
    folds: int = 5
    test_size: float = 0.2
    metric: str | None = None
    seed: int = 0
    schedule: str = "concurrent"
    curves: bool = True
    final_fit: bool = True
    max_retries: int = 3
    quadratic_row_limit: int = 10_000
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.datasets = [
            d if isinstance(d, DatasetConfig) else _dataset_from_dict(d) for d in self.datasets
        ]
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad value."""
        if not self.datasets:
            raise ConfigError("No dataset given: pass at least one CSV/Parquet file to train on.")
        if not isinstance(self.folds, int) or isinstance(self.folds, bool) or self.folds < 2:
            raise ConfigError(
                f"The 'folds' option must be an int in the range [2, inf). Got {self.folds!r} "
                "instead."
            )
        if not (isinstance(self.test_size, int | float) and 0 < self.test_size < 1):
            raise ConfigError(
                f"The 'test_size' option must be a float in the range (0, 1). Got "
                f"{self.test_size!r} instead."
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"Unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}."
                + did_you_mean(str(self.schedule), SCHEDULES)
            )
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(
                f"The 'max_retries' option must be an int >= 0. Got {self.max_retries!r} instead."
            )
        for d in self.datasets:
            if d.task is not None and d.task not in TASKS:
                raise ConfigError(
                    f"Unknown task {d.task!r} for {d.path}: use classification or regression."
                    + did_you_mean(str(d.task), TASKS)
                )
            if not d.target:
                raise ConfigError(
                    f"No target column for {d.path}: pass --target COLUMN "
                    f"(or --target {Path(d.path).name}=COLUMN)."
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, stored with the run."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"Unknown run option(s) {', '.join(map(repr, unknown))}; known options: "
                f"{', '.join(sorted(known))}." + did_you_mean(unknown[0], known)
            )
        return cls(**data)


def _dataset_from_dict(entry: Any) -> DatasetConfig:
    if isinstance(entry, str):
        raise ConfigError(
            f"Dataset entry {entry!r} has no target: write it as {{path: {entry}, target: COLUMN}}."
        )
    if not isinstance(entry, dict):
        raise ConfigError(f"A dataset entry must be a mapping with path and target; got {entry!r}.")
    known = set(DatasetConfig.__dataclass_fields__)
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(
            f"Unknown dataset option(s) {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(sorted(known))}." + did_you_mean(unknown[0], known)
        )
    if "path" not in entry:
        raise ConfigError(f"Dataset entry {entry!r} has no 'path'.")
    return DatasetConfig(**{**{"target": ""}, **entry})


def load_run_file(path: str | Path) -> RunConfig:
    """Read a run file (``.yaml``, ``.yml`` or ``.toml``).

    Relative dataset paths are resolved against the run file's folder.

    Examples
    --------
    A YAML run file::

        datasets:
          - {path: wine.csv, target: cultivar}
          - {path: diabetes.parquet, target: progression, task: regression}
        models: [random_forest, "logistic_regression:C=0.5"]
        folds: 5
        seed: 42
        schedule: concurrent
    """
    path = Path(path)
    if not path.exists():
        raise DataFileNotFoundError(f"Run file not found: {path}. Check the path.")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(
                f"Run file {path} must end in .yaml, .yml or .toml (got '{path.suffix}')."
            )
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        kind = path.suffix[1:].upper()
        raise ConfigError(f"Run file {path} is not valid {kind}: {first}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"Run file {path} must hold a mapping of options at the top level.")
    datasets = data.get("datasets")
    if not isinstance(datasets, list):
        raise ConfigError(f"Run file {path} needs a 'datasets' list of {{path, target}} entries.")
    resolved = []
    for entry in datasets:
        if isinstance(entry, dict) and "path" in entry:
            p = Path(str(entry["path"]))
            if not p.is_absolute():
                p = (path.parent / p).resolve()
            entry = {**entry, "path": str(p)}
        resolved.append(entry)
    return RunConfig.from_dict({**data, "datasets": resolved})
