"""The options of a training run, declared once.

:class:`RunOptions` is the one declaration of what a run trains and how: every option
with its type, bound, default and help text on its field. The five ways to start a
run read that declaration instead of restating it:

- run files (YAML/TOML): :func:`load_run_file` validates through
  :meth:`RunOptions.from_dict`;
- ``fleetlearn.train()``: its keyword arguments build a :class:`RunOptions`;
- ``fleetlearn train``: each option's help, default and bound come from the field
  (``fleetlearn/cli/train.py``);
- the REST API body: :class:`RunRequest`, the same fields (inherited, not copied) with
  the datasets given by reference, mapped to options by :meth:`RunRequest.to_options`;
- ``Client.start_run``: the body's fields as keyword arguments.

``tests/unit/test_training_options.py`` checks that every field is reachable from each
of the five with the same default and bound.

Errors are generated from pydantic's error and the field's declaration, in one wording
(scikit-learn's): "The 'folds' option must be an int in the range [2, inf). Got 1
instead." A :class:`~fleetlearn.errors.ConfigError` carries it, so the CLI prints one
line and exits 2; the API validates :class:`RunRequest` itself and answers 422 naming
the field.

The stored copy (:meth:`RunOptions.to_dict`) is what ``--resume`` reads back, so a
resumed run trains exactly what the original asked for.
"""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import annotated_types
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from fleetlearn.errors import ConfigError, DataFileNotFoundError, did_you_mean

__all__ = [
    "DatasetConfig",
    "DatasetOptions",
    "DatasetRef",
    "RunConfig",
    "RunOptions",
    "RunRequest",
    "SCHEDULES",
    "TASKS",
    "dataset_configs",
    "describe_field",
    "load_run_file",
    "options_error",
    "target_for",
]

Task = Literal["classification", "regression"]
Schedule = Literal["concurrent", "sequential"]
#: A model as on the command line (``"random_forest:n_estimators=50"``) or a mapping
#: ``{name, path, params}``.
ModelEntry = str | dict[str, Any]



def _whole_number(value: Any) -> Any:
    """JSON has one number type: ``5.0`` is the integer 5 (JSON Schema's ``integer``
    accepts it, so API clients may send it); ``5.5``, ``"5"`` and ``true`` stay errors."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: An integer option: strict (no strings, no booleans), a whole float taken as its int.
WholeInt = Annotated[int, BeforeValidator(_whole_number)]

TASKS: tuple[str, ...] = typing.get_args(Task)
SCHEDULES: tuple[str, ...] = typing.get_args(Schedule)

_MODELS_HELP = (
    "Models: a short name ('random_forest'), 'name:param=value,...', a dotted class path "
    "('sklearn.ensemble.AdaBoostClassifier'), or a {name, path, params} mapping. The "
    "task's default set when omitted (see 'fleetlearn catalog')."
)
_TASK_HELP = "classification or regression; detected from the target when omitted."


def _raise_config_error(exc: ValidationError, data: Any) -> typing.NoReturn:
    # The generated sentence says it all; pydantic's chained report would repeat it.
    raise options_error(exc, data) from None


class DatasetOptions(BaseModel):
    """One table of a run.

    Parameters
    ----------
    path : str
        CSV/TSV/TXT file, Parquet file, or a folder of Parquet shards.
    target : str
        Name of the target column.
    task : str, optional
        ``"classification"`` or ``"regression"``; detected from the target when omitted.
    name : str, optional
        Name used in the leaderboard and in model names; the file stem by default.
    models : list, optional
        Models for this dataset only; the run's models otherwise.

    Examples
    --------
    >>> DatasetOptions("wine.csv", "cultivar").task is None
    True
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    path: str = Field(min_length=1, description="CSV/TSV/TXT file, Parquet file, or a "
                      "folder of Parquet shards.")
    target: str = Field(min_length=1, description="The target column.")
    task: Task | None = Field(None, description=_TASK_HELP)
    name: str | None = Field(None, description="Name in leaderboards and model names "
                             "(<name>-<model>); the file name up to its first dot by default.")
    models: list[ModelEntry] | None = Field(None, description="Models for this table only; "
                                            "the run's models otherwise.")

    # Positional path and target, as the dataclass this model replaced took them.
    def __init__(self, path: Any = None, target: Any = None, /, **data: Any) -> None:
        if path is not None:
            data["path"] = path
        if target is not None:
            data["target"] = target
        try:
            super().__init__(**data)
        except ValidationError as exc:
            _raise_config_error(exc, data)


class _SharedOptions(BaseModel):
    """The options a run file, the CLI, ``train()`` and the API body all take as they are.

    :class:`RunOptions` adds the datasets as entries; :class:`RunRequest` as references
    to the server's tables. Declared here once, inherited by both.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    models: list[ModelEntry] | None = Field(None, description=_MODELS_HELP)
    folds: WholeInt = Field(5, ge=2, strict=True, description="Cross-validation folds.")
    test_size: float = Field(0.2, gt=0, lt=1, strict=True,
                             description="Share of rows held out for the final test.")
    metric: str | dict[Task, str] | None = Field(
        None, description="Primary metric ranking the leaderboard (accuracy / r2 by "
        "default), or {task: metric}.")
    # The bounds of a 32-bit signed integer: the seed is stored with the run and sent
    # to estimators whose random_state must fit one.
    seed: WholeInt = Field(0, ge=-(2**31), lt=2**31, strict=True,
                      description="Run seed: same seed, same data, same models: same scores.")
    schedule: Schedule = Field("concurrent", description="concurrent: every table's work "
                               "shares the cluster at once; sequential: one table after "
                               "another.")
    curves: bool = Field(True, description="Learning curves for models without "
                         "per-iteration metrics.")
    final_fit: bool = Field(True, description="Fit and register a final model per (table, "
                            "model); off: cross-validation only, nothing registered.")
    max_retries: WholeInt = Field(3, ge=0, strict=True, description="How often Ray reruns a "
                             "unit whose worker or node died (a model that raises is not "
                             "retried).")
    quadratic_row_limit: WholeInt = Field(10_000, ge=0, strict=True, description="Above this "
                                     "many rows, the default set leaves out models whose "
                                     "cost grows quadratically with rows.")
    name: str | None = Field(None, max_length=200, description="A label for the run.",
                             examples=["iris-baseline"])
    extra: dict[str, Any] = Field(default_factory=dict, description="Free-form mapping "
                                  "stored with the run; not used by training.")


class RunOptions(_SharedOptions):
    """Everything a training run needs; every default and bound is on its field.

    Building one checks every option (a :class:`~fleetlearn.errors.ConfigError` names
    the first bad one); the datasets' files are only read by
    :func:`~fleetlearn.training.prepare`.

    Examples
    --------
    >>> opts = RunOptions(datasets=[DatasetOptions("wine.csv", "cultivar")], folds=3)
    >>> opts.schedule
    'concurrent'
    >>> RunOptions(datasets=[DatasetOptions("wine.csv", "cultivar")], folds=1)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fleetlearn.errors.ConfigError: The 'folds' option must be an int in the range [2, inf)...
    """

    datasets: list[DatasetOptions] = Field(
        min_length=1, description="The tables to train on: {path, target} entries (and "
        "optionally task, name, models).")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            _raise_config_error(exc, data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, stored with the run (datasets first, as a run file
        lists them)."""
        data = self.model_dump(mode="json")
        return {"datasets": data.pop("datasets"), **data}

    @classmethod
    def from_dict(cls, data: Any) -> RunOptions:
        """Inverse of :meth:`to_dict`; unknown keys and bad values raise ``ConfigError``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"Run options must be a mapping of option names to values; "
                              f"got {type(data).__name__}.")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            _raise_config_error(exc, data)

    def with_options(self, **changes: Any) -> RunOptions:
        """A copy with some options changed, checked like a new one.

        Examples
        --------
        >>> opts = RunOptions(datasets=[DatasetOptions("wine.csv", "cultivar")])
        >>> opts.with_options(folds=3).folds
        3
        """
        return type(self).from_dict({**self.model_dump(), **changes})


#: The names this model had as a dataclass (and as the stored run's ``config``).
RunConfig = RunOptions
DatasetConfig = DatasetOptions


class DatasetRef(BaseModel):
    """One table of an API run request, with options of its own."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, examples=["iris.csv"],
                         description="An uploaded name, or a path inside the data folder.")
    # Optional here: the request's own "target" may name it.
    target: str | None = Field(None, examples=["species"], description="The target column; "
                               "the request's target by default.")
    task: Task | None = DatasetOptions.model_fields["task"]
    name: str | None = Field(None, examples=["iris"],
                             description=DatasetOptions.model_fields["name"].description)
    models: list[ModelEntry] | None = DatasetOptions.model_fields["models"]


_RUN_EXAMPLE = {
    "datasets": ["iris.csv"], "target": "species",
    "models": ["logistic_regression", "random_forest:n_estimators=100"],
    "folds": 5, "seed": 0, "name": "iris-baseline",
}


class RunRequest(_SharedOptions):
    """The REST API's body for a training run: the options of ``fleetlearn train``.

    Every option but the datasets is inherited from the same declaration as
    :class:`RunOptions`; the datasets are references to tables on the server (uploaded
    names or paths inside its data folder), with a target and task for all of them.

    Examples
    --------
    >>> body = RunRequest(datasets=["iris.csv"], target="species", folds=3)
    >>> body.to_options(lambda ref: Path("/data") / ref).datasets[0].path
    '/data/iris.csv'
    """

    model_config = ConfigDict(json_schema_extra={"examples": [_RUN_EXAMPLE]})

    datasets: list[str | DatasetRef] = Field(
        min_length=1, description="Uploaded names (POST /v1/datasets) or paths inside the "
        "server's data folder; an entry may be an object with its own target, task, models.")
    target: str | dict[str, str] | None = Field(
        None, description="The target column of every table, or {dataset: column}.")
    task: Task | None = Field(None, description="Detected from the target by default.")

    def to_options(self, resolve: Callable[[str], Path]) -> RunOptions:
        """The run's options, each dataset reference turned into a path by ``resolve``.

        ``resolve`` raises (a :class:`~fleetlearn.errors.FleetlearnError`) for a
        reference that names no table the server may read.
        """
        entries = []
        for item in self.datasets:
            entry = item if isinstance(item, DatasetRef) else None
            ref = entry.dataset if entry else str(item)
            path = resolve(ref)
            name = entry.name if entry else None
            target = (entry.target if entry and entry.target
                      else target_for(ref, self.target, path=path, name=name))
            entries.append(DatasetOptions(
                path=str(path), target=target,
                task=entry.task if entry and entry.task else self.task,
                name=name, models=entry.models if entry else None))
        shared = self.model_dump(include=set(_SharedOptions.model_fields))
        return RunOptions(datasets=entries, **shared)


# ------------------------------------------------------------------------ targets


def target_for(ref: str, target: str | Mapping[str, str] | None, *, path: Path | None = None,
               name: str | None = None) -> str:
    """The target column of one table: one name for all, or looked up by table.

    Parameters
    ----------
    ref : str
        The table as the user named it (a path, or an uploaded name on the server).
    target : str or mapping, optional
        One column for every table, or ``{key: column}`` where a key is the table as
        named, its file name, its stem, its full path, its dataset name, or ``"*"``
        (every other table), tried in that order.
    path : Path, optional
        Where ``ref`` was found (the server resolves names inside its data folder).
    name : str, optional
        The table's dataset name, when given.

    Examples
    --------
    >>> target_for("data/wine.csv", {"wine": "cultivar", "*": "label"})
    'cultivar'
    >>> target_for("other.csv", {"wine": "cultivar", "*": "label"})
    'label'
    """
    if isinstance(target, str) and target:
        return target
    if isinstance(target, Mapping):
        where = path if path is not None else Path(ref)
        keys = [ref, Path(ref).name, Path(ref).stem, str(where), where.name, where.stem]
        if path is None:
            keys.append(str(Path(ref).resolve()))
        keys += [name, "*"]
        for key in keys:
            if key is not None and key in target:
                return target[key]
    file = Path(ref).name or ref
    raise ConfigError(
        f"No target column for dataset '{ref}': give one for every table (--target COLUMN, "
        f"or \"target\": COLUMN in a request) or one for this table (--target "
        f"{file}=COLUMN, or {{\"{ref}\": COLUMN}})."
    )


def dataset_configs(data: Any, target: Any, task: str | None = None) -> list[DatasetOptions]:
    """Dataset entries for paths and a target given as one name or ``{file: column}``.

    Examples
    --------
    >>> [d.target for d in dataset_configs(["a.csv", "b.csv"], {"a.csv": "y", "*": "z"})]
    ['y', 'z']
    """
    if data is None:
        raise ConfigError("No dataset given: pass at least one CSV/Parquet file to train on.")
    items = [data] if isinstance(data, str | Path | DatasetOptions) else list(data)
    out = []
    for item in items:
        if isinstance(item, DatasetOptions):
            out.append(item)
            continue
        path = str(item)
        out.append(DatasetOptions(path=path, target=target_for(path, target), task=task))
    return out


# ------------------------------------------------------------------------ run files


def load_run_file(path: str | Path) -> RunOptions:
    """Read a run file (``.yaml``, ``.yml`` or ``.toml``).

    Relative dataset paths are resolved against the run file's folder. The file's keys
    are :class:`RunOptions` fields (see ``docs/configuration.md``).

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
    return RunOptions.from_dict({**data, "datasets": resolved})


# ------------------------------------------------------------------------ errors


def describe_field(field: FieldInfo) -> str:
    """What a field accepts, in words: ``"an int in the range [2, inf)"``.

    Read from the field's type and constraints, so error messages and CLI help state
    the declared bound, never a retyped one.

    Examples
    --------
    >>> describe_field(RunOptions.model_fields["test_size"])
    'a float in the range (0, 1)'
    >>> describe_field(RunOptions.model_fields["schedule"])
    "one of 'concurrent', 'sequential'"
    """
    kind = _describe_type(field.annotation)
    lower = upper = None
    lo_closed = hi_closed = False
    min_len = max_len = None
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            lower, lo_closed = meta.ge, True
        elif isinstance(meta, annotated_types.Gt):
            lower, lo_closed = meta.gt, False
        elif isinstance(meta, annotated_types.Le):
            upper, hi_closed = meta.le, True
        elif isinstance(meta, annotated_types.Lt):
            upper, hi_closed = meta.lt, False
        elif isinstance(meta, annotated_types.MinLen):
            min_len = meta.min_length
        elif isinstance(meta, annotated_types.MaxLen):
            max_len = meta.max_length
    if lower is not None or upper is not None:
        left = "(-inf" if lower is None else ("[" if lo_closed else "(") + str(lower)
        right = "inf)" if upper is None else str(upper) + ("]" if hi_closed else ")")
        kind += f" in the range {left}, {right}"
    if max_len is not None:
        unit = "characters" if "str" in kind.split(" or ")[0] else "entries"
        kind += f" of at most {max_len} {unit}"
    if min_len:
        kind += f" of at least {min_len} {'entry' if min_len == 1 else 'entries'}"
    return kind


_TYPE_WORDS = {int: "an int", float: "a float", bool: "a bool (true or false)", str: "a str",
               dict: "a mapping", list: "a list"}


def _describe_type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _describe_type(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        parts = [_describe_type(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(parts)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(annotation))
    if origin is list:
        (inner,) = typing.get_args(annotation) or (Any,)
        inner_words = _describe_type(inner)
        return "a list" + ("" if inner is Any else f" (each {inner_words})")
    if origin is dict:
        args = typing.get_args(annotation)
        if args and typing.get_origin(args[0]) is Literal:
            keys = ", ".join(repr(k) for k in typing.get_args(args[0]))
            return f"a mapping from {keys} to {_describe_type(args[1])}"
        return "a mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        required = [n for n, f in annotation.model_fields.items() if f.is_required()]
        return "a mapping with " + ", ".join(required)
    return _TYPE_WORDS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, FieldInfo, int | None]:
    """The field an error location points at: ``("datasets", 0, "task")`` is the
    ``task`` of dataset 0. Union member tags pydantic appends (``"str"``) are skipped."""
    name = str(loc[0])
    field = model.model_fields[name]
    if name == "datasets" and len(loc) >= 3 and isinstance(loc[1], int):
        entry = typing.get_args(field.annotation)[0]
        entry_model = next((a for a in typing.get_args(entry) or (entry,)
                            if isinstance(a, type) and issubclass(a, BaseModel)), None)
        names = [str(p) for p in loc[2:]
                 if entry_model is not None and str(p) in entry_model.model_fields]
        if entry_model is not None and names:
            return names[0], entry_model.model_fields[names[0]], loc[1]
    return name, field, None


def _dataset_label(data: Any, index: int | None) -> str:
    if index is None:
        return ""
    try:
        entry = data["datasets"][index]
    except (KeyError, IndexError, TypeError):
        return f" of dataset entry {index + 1}"
    if isinstance(entry, Mapping):
        label = entry.get("path") or entry.get("dataset")
    else:
        label = getattr(entry, "path", None) or getattr(entry, "dataset", None)
    return f" of dataset '{label}'" if label else f" of dataset entry {index + 1}"


def options_error(exc: ValidationError | Sequence[Mapping[str, Any]], data: Any = None,
                  model: type[BaseModel] | None = None) -> ConfigError:
    """One :class:`ConfigError` sentence for the first problem pydantic found.

    Parameters
    ----------
    exc : pydantic.ValidationError or list of error dicts
        From validating :class:`RunOptions`, :class:`RunRequest` or
        :class:`DatasetOptions`; or the ``errors()`` of FastAPI's
        ``RequestValidationError`` for a :class:`RunRequest` body (their leading
        ``"body"`` location is dropped).
    data : mapping, optional
        The input that failed, to name the dataset an error is about.
    model : type, optional
        The model that failed; read from ``exc`` when it is a ``ValidationError``,
        :class:`RunRequest` otherwise.

    Examples
    --------
    >>> try:
    ...     RunOptions.model_validate({"datasets": [{"path": "a.csv", "target": "y"}],
    ...                                "schedule": "concurent"})
    ... except ValidationError as exc:
    ...     print(options_error(exc))  # doctest: +ELLIPSIS
    The 'schedule' option must be one of 'concurrent', 'sequential'. Got 'concurent' ...
    """
    if isinstance(exc, ValidationError):
        errors: list[Any] = list(exc.errors(include_url=False))
        title = exc.title
    else:
        errors = [{**e, "loc": tuple(e["loc"])[1:] if tuple(e["loc"])[:1] == ("body",)
                   else tuple(e["loc"])} for e in exc]
        title = "RunRequest"
    if model is None:
        model = {"RunRequest": RunRequest,
                 "DatasetOptions": DatasetOptions}.get(title, RunOptions)
    if not errors:
        return ConfigError("Invalid run options.")
    if data is None:
        data = {"datasets": _entries_in(errors)}
    if model is DatasetOptions:
        # Locate a lone entry's errors as those of entry 0 of a run.
        model, data = RunOptions, {"datasets": [data]}
        errors = [{**e, "loc": ("datasets", 0, *e["loc"])} for e in errors]
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        return _unknown_options(model, unknown)
    # The deepest location is the most specific: for a union (a dataset given as a name
    # or as a mapping) it is the member the input was meant to be.
    error = max(errors, key=lambda e: len(e["loc"]))
    loc = tuple(error["loc"])
    value = error.get("input")
    if loc and loc[0] == "datasets" and len(loc) <= 2:
        message = _dataset_list_error(error, loc, value)
        if message:
            return ConfigError(message)
    if not loc or str(loc[0]) not in model.model_fields:
        return ConfigError(f"Invalid run options: {error['msg']}.")
    name, field, index = _field_at(model, loc)
    where = _dataset_label(data, index)
    if index is not None and name == "target" and error["type"] in ("missing", "string_too_short"):
        path = where.removeprefix(" of dataset ").strip("'") or "the dataset"
        return ConfigError(f"No target column for {path}: pass --target COLUMN (or --target "
                           f"{Path(path).name}=COLUMN), or give 'target' in its run file entry.")
    if error["type"] == "missing":
        if index is not None:
            return ConfigError(f"Dataset entry {index + 1} has no '{name}': give it as "
                               "{path: FILE, target: COLUMN}.")
        return ConfigError(f"The '{name}' option is required: give it "
                           f"{describe_field(field)}.")
    hint = ""
    if typing.get_origin(field.annotation) in (Union, types.UnionType, Literal):
        choices = [str(c) for a in (field.annotation, *typing.get_args(field.annotation))
                   if typing.get_origin(a) is Literal for c in typing.get_args(a)]
        if choices and isinstance(value, str):
            hint = did_you_mean(value, choices)
    return ConfigError(f"The '{name}' option{where} must be {describe_field(field)}. Got "
                       f"{_shown(value)} instead.{hint}")


def _shown(value: Any, limit: int = 80) -> str:
    """A value as an error message quotes it: its repr, cut to one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _entries_in(errors: list[Any]) -> list[Any]:
    """The dataset entries that failed, as far as the errors quote them (a union member's
    error quotes the whole entry), to name a dataset when the input is not at hand."""
    entries: dict[int, Any] = {}
    for e in errors:
        loc, value = tuple(e["loc"]), e.get("input")
        if (len(loc) >= 2 and loc[0] == "datasets" and isinstance(loc[1], int)
                and isinstance(value, Mapping)):
            entries.setdefault(loc[1], value)
    return [entries.get(i) for i in range(max(entries, default=-1) + 1)]


def _dataset_list_error(error: Any, loc: tuple[Any, ...], value: Any) -> str | None:
    if len(loc) == 1 and error["type"] in ("missing", "too_short"):
        return ("No dataset given: the 'datasets' option needs at least one table (a "
                "CSV/Parquet file) to train on.")
    if len(loc) == 1:
        return (f"The 'datasets' option must be a list of {{path, target}} entries. Got "
                f"{type(value).__name__} instead.")
    if isinstance(value, str):
        return f"Dataset entry {value!r} has no target: write it as {{path: {value}, " \
               "target: COLUMN}."
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"A dataset entry must be a mapping with path and target; got {value!r}."
    return None


def _unknown_options(model: type[BaseModel], unknown: list[Any]) -> ConfigError:
    in_dataset = [e for e in unknown if len(e["loc"]) > 1]
    if in_dataset:
        names = sorted({str(e["loc"][-1]) for e in in_dataset})
        known = sorted(DatasetOptions.model_fields)
        if model is RunRequest:
            known = sorted(DatasetRef.model_fields)
        return ConfigError(
            f"Unknown dataset option(s) {', '.join(map(repr, names))}; known: "
            f"{', '.join(known)}." + did_you_mean(names[0], known))
    names = sorted({str(e["loc"][-1]) for e in unknown})
    known = sorted(model.model_fields)
    return ConfigError(
        f"Unknown run option(s) {', '.join(map(repr, names))}; known options: "
        f"{', '.join(known)}." + did_you_mean(names[0], known))
