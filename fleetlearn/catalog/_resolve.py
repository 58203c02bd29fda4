"""Turn what a user wrote (``"random_forest:n_estimators=50"``) into a checked ModelSpec."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from fleetlearn.catalog._entries import CATALOG, DEFAULTS, EXTRAS, CatalogEntry
from fleetlearn.catalog._spec import ModelSpec, check_task, import_estimator
from fleetlearn.errors import ModelSpecError, did_you_mean

__all__ = ["allowed_model_packages", "resolve_model", "resolve_model_dict", "default_models",
           "parse_params", "infer_traits"]

_SPEC_EXAMPLE = "random_forest:n_estimators=200,max_depth=8"
_PATH_EXAMPLE = "sklearn.ensemble.AdaBoostClassifier:n_estimators=200"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Cost grows about quadratically (or worse) with the number of rows.
_QUADRATIC = {
    "SVC", "SVR", "NuSVC", "NuSVR", "KNeighborsClassifier", "KNeighborsRegressor",
    "RadiusNeighborsClassifier", "RadiusNeighborsRegressor", "GaussianProcessClassifier",
    "GaussianProcessRegressor", "KernelRidge", "LabelPropagation", "LabelSpreading",
}
# Scores do not change when a feature is rescaled; scaling would only cost time
# (and would break MultinomialNB, which needs non-negative counts).
_SCALE_FREE_MODULES = ("sklearn.tree", "sklearn.ensemble", "sklearn.naive_bayes")
_SCALE_FREE_ROOTS = {"xgboost", "lightgbm", "catboost"}


def _split_items(text: str) -> list[str]:
    """Split on commas outside brackets and quotes: ``a=[1,2],b=3`` -> two items."""
    items, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(current))
            current = []
            continue
        current.append(ch)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _parse_value(raw: str) -> Any:
    text = raw.strip()
    if text == "None":  # how Python users write null
        return None
    if text.startswith("(") and text.endswith(")"):  # a Python tuple: (64, 32)
        text = "[" + text[1:-1] + "]"
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return raw.strip()
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
    try:
        json.dumps(value)
    except (TypeError, ValueError):  # dates and other YAML types: keep the text
        return raw.strip()
    return value


def parse_params(text: str, spec: str | None = None) -> dict[str, Any]:
    """Parse ``"n_estimators=50,max_depth=8"`` into a dict of YAML scalars.

    Values are read as YAML: ``50`` is an int, ``0.1`` and ``1e-3`` are floats,
    ``true``/``false`` are bools, ``null`` or ``None`` is None, ``[64,32]`` or
    ``(64,32)`` is a list; anything else stays a string.

    Examples
    --------
    >>> parse_params("n_estimators=50,max_features=sqrt,hidden_layer_sizes=[64,32]")
    {'n_estimators': 50, 'max_features': 'sqrt', 'hidden_layer_sizes': [64, 32]}
    """
    where = f"model spec '{spec}'" if spec else f"parameters '{text}'"
    params: dict[str, Any] = {}
    for item in _split_items(text):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise ModelSpecError(
                f"cannot read {where}: {item!r} is not key=value. Expected "
                f"name:key=value,key=value, e.g. '{_SPEC_EXAMPLE}'."
            )
        if not raw.strip():
            raise ModelSpecError(
                f"cannot read {where}: parameter '{key}' has no value. Write {key}=null "
                "for None."
            )
        if key in params:
            raise ModelSpecError(f"cannot read {where}: parameter '{key}' is given twice.")
        params[key] = _parse_value(raw)
    return params


def infer_traits(cls: type) -> dict[str, Any]:
    """Traits of an estimator class named by dotted path (not in the catalog).

    Examples
    --------
    >>> from sklearn.svm import SVR
    >>> infer_traits(SVR)["quadratic"]
    True
    """
    module = cls.__module__
    root = module.split(".")[0]
    if root in EXTRAS:
        iterative = "evals_result"
    elif hasattr(cls, "staged_predict"):
        iterative = "staged"
    elif module.startswith("sklearn.neural_network"):
        iterative = "loss_curve"
    else:
        iterative = None
    return {
        "needs_scaling": not (module.startswith(_SCALE_FREE_MODULES) or root in _SCALE_FREE_ROOTS),
        "quadratic": cls.__name__ in _QUADRATIC,
        "iterative": iterative,
        "extra": EXTRAS.get(root),
    }


def _other_task(task: str) -> str:
    return "regression" if task == "classification" else "classification"


def _names(task: str) -> str:
    return ", ".join(sorted(CATALOG[task]))


def _entry_for(name: str, task: str) -> CatalogEntry:
    key = name.strip().lower().replace("-", "_")
    entry = CATALOG[task].get(key)
    if entry is not None:
        return entry
    other = _other_task(task)
    if key in CATALOG[other]:
        raise ModelSpecError(
            f"model '{name}' is a {other} model, but this is a {task} task. "
            f"{task.capitalize()} models: {_names(task)}."
        )
    raise ModelSpecError(
        f"unknown model '{name}' for a {task} task.{did_you_mean(key, CATALOG[task])} "
        f"Known {task} models: {_names(task)}; or give a dotted path to any "
        f"scikit-learn compatible estimator, e.g. '{_PATH_EXAMPLE}'."
    )


def _default_instance(cls: type, label: str) -> Any:
    try:
        return cls()
    except Exception as exc:
        raise ModelSpecError(
            f"model '{label}': {cls.__name__}() cannot be built without arguments "
            f"({type(exc).__name__}: {exc}); fleetlearn builds estimators from plain "
            "parameters, so wrap it in a class whose parameters all have defaults."
        ) from exc


def _check_estimator_class(cls: Any, path: str, task: str) -> Any:
    # On use: resolving a catalog name must not import scikit-learn (CLI start-up).
    from sklearn.base import is_classifier, is_regressor

    if not isinstance(cls, type) or not hasattr(cls, "fit"):
        raise ModelSpecError(
            f"model '{path}' is not an estimator: it has no fit method. Expected a "
            f"scikit-learn compatible estimator class, e.g. '{_PATH_EXAMPLE}'."
        )
    instance = _default_instance(cls, path)
    wanted, check = ("classifier", is_classifier) if task == "classification" else (
        "regressor", is_regressor)
    if check(instance):
        return instance
    other = is_regressor(instance) if task == "classification" else is_classifier(instance)
    kind = ("a regressor" if task == "classification" else "a classifier") if other else (
        "neither a classifier nor a regressor")
    hint = ""
    swap = ("Regressor", "Classifier") if task == "classification" else ("Classifier", "Regressor")
    if swap[0] in cls.__name__:
        hint = f" Did you mean '{path.replace(swap[0], swap[1])}'?"
    raise ModelSpecError(
        f"model '{path}' is {kind}, but this is a {task} task: give a {wanted}.{hint}"
        + ("" if other else " (Third-party estimators declare their type by inheriting "
           f"sklearn.base.{'ClassifierMixin' if task == 'classification' else 'RegressorMixin'}.)")
    )


def _takes_kwargs(cls: type) -> bool:
    # XGBoost and LightGBM take **kwargs and pass them to the native library (verbose,
    # min_data_in_leaf, ...), which warns about names it does not know: only they can
    # tell, so such names are let through.
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())


def _check_params(cls: type, instance: Any, params: dict[str, Any], label: str) -> int:
    """Check names and values of ``params`` for ``cls``; return the CPUs one fit uses."""
    valid = sorted(instance.get_params(deep=False))
    for key in params:
        if key not in valid and not _takes_kwargs(cls):
            raise ModelSpecError(
                f"model '{label}' ({cls.__name__}) has no parameter '{key}'."
                f"{did_you_mean(key, valid)} Valid parameters: {', '.join(valid)}."
            )
    try:
        json.dumps(params)
    except (TypeError, ValueError) as exc:
        raise ModelSpecError(
            f"model '{label}': parameter values must be plain data (numbers, strings, "
            f"booleans, null, lists, mappings) so the spec can be stored; {exc}."
        ) from exc
    n_jobs = params.get("n_jobs")
    if n_jobs is None:
        n_jobs = 1
    elif isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ModelSpecError(
            f"model '{label}': n_jobs={n_jobs!r} cannot be reserved on the cluster: "
            "fleetlearn asks Ray for exactly as many CPUs as one fit uses. Give n_jobs as "
            "a whole number of CPUs >= 1 (1 by default)."
        )
    try:
        built = cls(**params)
    except Exception as exc:
        raise ModelSpecError(f"model '{label}': {cls.__name__}(**{params}) failed: {exc}") from exc
    # Only scikit-learn estimators declare constraints; XGBoost inherits the method alone.
    validate = getattr(built, "_validate_params", None)
    if callable(validate) and hasattr(built, "_parameter_constraints"):
        try:
            validate()
        except (ValueError, TypeError) as exc:  # sklearn's InvalidParameterError is both
            raise ModelSpecError(f"model '{label}': {exc}") from exc
    return n_jobs


_ALLOWED_PACKAGES: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "fleetlearn_allowed_model_packages", default=None)


@contextlib.contextmanager
def allowed_model_packages(packages: Iterable[str] | None) -> Iterator[None]:
    """Within the block, dotted model paths resolve only under these top-level packages
    (``None``: any, as on the command line, where the user runs their own code).

    The API wraps the checking of a run it is asked to start in this, so a ``train`` key
    cannot make the server import an arbitrary module (see ``ServeSettings``).

    Examples
    --------
    >>> from fleetlearn.errors import ModelSpecError
    >>> with allowed_model_packages(["sklearn"]):
    ...     try:
    ...         resolve_model("os.path.Foo", "classification")
    ...     except ModelSpecError as exc:
    ...         print(str(exc)[:70])
    model 'os.path.Foo': this server trains dotted paths only from the pac
    """
    token = _ALLOWED_PACKAGES.set(None if packages is None else frozenset(packages))
    try:
        yield
    finally:
        _ALLOWED_PACKAGES.reset(token)


def _resolve(ref: str, params: dict[str, Any], task: str, display: str | None) -> ModelSpec:
    task = check_task(task)
    ref = ref.strip()
    if not ref:
        raise ModelSpecError(
            f"empty model name: expected a catalog name such as '{_SPEC_EXAMPLE}' or a dotted "
            f"path such as '{_PATH_EXAMPLE}'."
        )
    if "." in ref:
        root = ref.split(".")[0]
        allowed = _ALLOWED_PACKAGES.get()
        if allowed is not None and root not in allowed:
            # Refused before the import: importing a module runs its code.
            raise ModelSpecError(
                f"model '{ref}': this server trains dotted paths only from the packages "
                f"{', '.join(sorted(allowed))}, not '{root}'. Name a catalog model ('fleetlearn "
                "catalog' lists them), or ask the operator to add the package to "
                "FLEETLEARN_SERVE_MODEL_PACKAGES."
            )
        cls = import_estimator(ref, ref, EXTRAS.get(root))
        instance = _check_estimator_class(cls, ref, task)
        traits = infer_traits(cls)
        entry = next(
            (e for e in CATALOG[task].values() if e.estimator_path.rpartition(".")[2]
             == cls.__name__ and e.estimator_path.split(".")[0] == root),
            None,
        )
        wrapper = None
        if entry is not None:  # the catalog knows this class better than the heuristics
            traits = {"needs_scaling": entry.needs_scaling, "quadratic": entry.quadratic,
                      "iterative": entry.iterative, "extra": entry.extra}
            wrapper = entry.wrapper if entry.wrapper == "label_encoded" else None
        elif traits["extra"] == "xgboost" and task == "classification":
            wrapper = "label_encoded"
        merged = dict(params)
        name = display or cls.__name__
        path = ref
    else:
        entry = _entry_for(ref, task)
        cls = import_estimator(entry.estimator_path, entry.name, entry.extra)
        instance = _default_instance(cls, entry.name)
        traits = {"needs_scaling": entry.needs_scaling, "quadratic": entry.quadratic,
                  "iterative": entry.iterative, "extra": entry.extra}
        wrapper = entry.wrapper
        merged = {**entry.params, **params}
        name = display or entry.name
        path = entry.estimator_path
    n_jobs = _check_params(cls, instance, merged, name)
    return ModelSpec(name=name, estimator_path=path, params=merged, task=task, n_jobs=n_jobs,
                     wrapper=wrapper, **traits)


def resolve_model(text: str, task: str) -> ModelSpec:
    """Resolve a model spec string into a checked :class:`ModelSpec`.

    Parameters
    ----------
    text : str
        ``"name"``, ``"name:key=value,key=value"``, or ``"package.module.Class[:...]"``.
        Values are YAML scalars (see :func:`parse_params`).
    task : {"classification", "regression"}

    Raises
    ------
    ModelSpecError
        Unknown model or parameter (with a suggestion), a model of the other task,
        a bad parameter value, or a missing optional extra (with the install hint).

    Examples
    --------
    >>> spec = resolve_model("random_forest:n_estimators=50,max_depth=8", "classification")
    >>> spec.params
    {'n_estimators': 50, 'max_depth': 8}
    >>> resolve_model("sklearn.ensemble.AdaBoostClassifier", "classification").name
    'AdaBoostClassifier'
    """
    ref, sep, rest = text.strip().partition(":")
    params = parse_params(rest, text) if sep else {}
    return _resolve(ref, params, task, None)


def resolve_model_dict(entry: dict[str, Any], task: str) -> ModelSpec:
    """Resolve a run-file entry ``{"name" or "path": ..., "params": {...}}``.

    ``name`` alone is a catalog name or dotted path; with ``path`` it is the name
    shown for the model (so one run can hold two variants of one estimator).

    Examples
    --------
    >>> spec = resolve_model_dict(
    ...     {"name": "deep_forest", "path": "sklearn.ensemble.RandomForestRegressor",
    ...      "params": {"max_depth": 30}}, "regression")
    >>> spec.name, spec.params
    ('deep_forest', {'max_depth': 30})
    """
    if not isinstance(entry, dict):
        raise ModelSpecError(
            f"a model entry must be a mapping like {{name: random_forest, params: "
            f"{{n_estimators: 50}}}} or a string; got {entry!r}."
        )
    allowed = {"name", "path", "params"}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ModelSpecError(
            f"model entry {entry!r} has unknown keys {unknown}: expected 'name' and/or 'path', "
            "and optionally 'params'."
        )
    params = entry.get("params") or {}
    label = entry.get("name") or entry.get("path")
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise ModelSpecError(
            f"model '{label}': 'params' must be a mapping of parameter names to values; "
            f"got {params!r}."
        )
    path, name = entry.get("path"), entry.get("name")
    if path is not None:
        return _resolve(str(path), dict(params), task, str(name) if name else None)
    if name is None:
        raise ModelSpecError(
            f"model entry {entry!r} names no model: give 'name' (a catalog name or dotted "
            "path) or 'path' (a dotted path)."
        )
    text = str(name)
    if ":" in text:  # allow the string form inside a run file too
        ref, _, rest = text.partition(":")
        return _resolve(ref, {**parse_params(rest, text), **params}, task, None)
    return _resolve(text, dict(params), task, None)


def default_models(
    task: str, n_rows: int, quadratic_row_limit: int = 10_000
) -> tuple[list[ModelSpec], list[str]]:
    """The default model set for a task and table size, with notes for the user.

    Models whose cost grows quadratically with rows are left out above
    ``quadratic_row_limit`` rows; a note says which and how to train them anyway.

    Examples
    --------
    >>> specs, notes = default_models("classification", 50_000)
    >>> "svm" in [s.name for s in specs], notes[0].startswith("left out knn, svm")
    (False, True)
    """
    task = check_task(task)
    specs = [resolve_model(name, task) for name in DEFAULTS[task]]
    notes: list[str] = []
    if n_rows > quadratic_row_limit:
        dropped = [s.name for s in specs if s.quadratic]
        specs = [s for s in specs if not s.quadratic]
        if dropped:
            notes.append(
                f"left out {', '.join(dropped)} (cost grows quadratically with rows; "
                f"{n_rows:,} rows > {quadratic_row_limit:,}): name them with --model to "
                "train them anyway"
            )
    if n_rows > LARGE_TABLE_ROWS:
        slow = [s.name for s in specs if s.name in SLOW_ON_LARGE_TABLES]
        specs = [s for s in specs if s.name not in SLOW_ON_LARGE_TABLES]
        if slow:
            notes.append(
                f"left out {', '.join(slow)} ({n_rows:,} rows > {LARGE_TABLE_ROWS:,}: it fits "
                "one tree after another on every row, minutes per fold; "
                "hist_gradient_boosting is its fast equivalent): name it with --model to "
                "train it anyway"
            )
    return specs, notes


# Exact gradient boosting costs ~90 s (binary) to ~260 s (3 classes) per fit on a
# 50,000 x 30 table on one core here; the histogram variant gives the same quality
# in seconds, so the default set keeps only that one on large tables.
LARGE_TABLE_ROWS = 20_000
SLOW_ON_LARGE_TABLES = frozenset({"gradient_boosting"})
