"""The parameters of the catalog's models, as data a form can be drawn from.

The catalog declares only the parameters fleetlearn changes (``CatalogEntry.params``);
everything else is read from the estimator: its ``__init__`` signature gives the names
and defaults, and scikit-learn's ``_parameter_constraints`` (the declarations its own
``set_params`` checks) give the allowed range or choices. Estimators without
constraints (XGBoost, LightGBM) get the type of their default only.

This imports the estimators, so it costs seconds the first time: callers that answer
often (the API's ``GET /v1/catalog``) keep the answer.
"""

from __future__ import annotations

import inspect
import math
from numbers import Integral, Real
from typing import Any

from fleetlearn.catalog._entries import CATALOG, DEFAULTS, EXTRAS, CatalogEntry, extra_available
from fleetlearn.catalog._spec import TASKS, check_task, import_estimator

__all__ = ["SET_BY_FLEETLEARN", "catalog_models", "model_params"]

#: Parameters fleetlearn sets itself on every fit (CPUs reserved, the run's seed) or
#: that only change log output: not offered for editing.
SET_BY_FLEETLEARN = frozenset({"n_jobs", "random_state", "verbose", "verbosity", "silent"})

#: The parameter types a form can edit; anything else is ``"other"`` (shown, not edited).
PARAM_TYPES = ("int", "float", "bool", "str", "other")


def _type_of_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Integral):
        return "int"
    if isinstance(value, Real):
        return "float"
    if isinstance(value, str):
        return "str"
    return None if value is None else "other"


def _finite(value: Any) -> float | int | None:
    if value is None:
        return None
    value = value.item() if hasattr(value, "item") else value
    return value if math.isfinite(value) else None


def _from_constraints(constraints: list[Any], default: Any) -> dict[str, Any]:
    """Type, range and choices from scikit-learn's ``_parameter_constraints`` entry."""
    # Imported here: only estimators that declare constraints are scikit-learn's.
    from sklearn.utils._param_validation import Interval, StrOptions

    info: dict[str, Any] = {"nullable": any(c is None for c in constraints)}
    choices: list[str] = []
    intervals = []
    booleans = False
    for c in constraints:
        if isinstance(c, StrOptions):
            choices += sorted(o for o in c.options if o not in getattr(c, "deprecated", ()))
        elif isinstance(c, Interval):
            intervals.append(c)
        elif c == "boolean" or c is bool:
            booleans = True
    wanted = _type_of_value(default)
    if wanted is None:  # a None default: the first declared kind of value
        if intervals:
            wanted = "int" if intervals[0].type is Integral else "float"
        elif booleans:
            wanted = "bool"
        elif choices:
            wanted = "str"
        else:
            wanted = "other"
    info["type"] = wanted
    if choices:
        info["choices"] = choices
    matching = [i for i in intervals
                if (i.type is Integral) == (wanted == "int") and wanted in ("int", "float")]
    if matching:
        interval = matching[0]
        info["minimum"] = _finite(interval.left)
        info["maximum"] = _finite(interval.right)
        info["range"] = str(interval).split(" in the range ")[-1]
    return info


def model_params(entry: CatalogEntry) -> list[dict[str, Any]]:
    """The parameters of one catalog model, fleetlearn's defaults applied.

    Parameters
    ----------
    entry : CatalogEntry
        A model of :data:`~fleetlearn.catalog._entries.CATALOG`.

    Returns
    -------
    list of dict
        One row per parameter, in the estimator's order: ``name``, ``type`` (one of
        ``int, float, bool, str, other``), ``default`` (fleetlearn's, which may differ
        from the estimator's), ``estimator_default``, ``nullable`` (None is allowed),
        and where known ``choices`` (the allowed strings), ``minimum``, ``maximum``
        (None when unbounded) and ``range`` (as scikit-learn writes it, ``"[1, inf)"``).
        Parameters in :data:`SET_BY_FLEETLEARN` are left out, and so are those
        scikit-learn deprecates (default ``"deprecated"``). A model whose optional
        extra is not installed lists fleetlearn's own parameters only.

    Examples
    --------
    >>> rf = CATALOG["classification"]["random_forest"]
    >>> n = next(p for p in model_params(rf) if p["name"] == "n_estimators")
    >>> n["type"], n["default"], n["minimum"], n["range"]
    ('int', 100, 1, '[1, inf)')
    """
    try:
        cls = import_estimator(entry.estimator_path, entry.name, entry.extra)
    except Exception:  # noqa: BLE001 - a missing extra: the catalog's own params only
        cls = None
    rows: list[dict[str, Any]] = []
    declared = getattr(cls, "_parameter_constraints", {}) if cls is not None else {}
    seen: set[str] = set()
    if cls is not None:
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            seen.add(p.name)
            if p.name in SET_BY_FLEETLEARN:
                continue
            estimator_default = None if p.default is p.empty else p.default
            if isinstance(estimator_default, str) and estimator_default == "deprecated":
                continue  # scikit-learn's marker of a parameter on its way out
            default = entry.params.get(p.name, estimator_default)
            row: dict[str, Any] = {"name": p.name, "default": _json(default),
                                   "estimator_default": _json(estimator_default)}
            if p.name in declared:
                row.update(_from_constraints(declared[p.name], default))
            else:
                row["type"] = _type_of_value(default) or "other"
                row["nullable"] = default is None
            rows.append(row)
    for name, value in entry.params.items():  # passed through **kwargs (XGBoost, LightGBM)
        if name not in seen and name not in SET_BY_FLEETLEARN:
            rows.append({"name": name, "default": _json(value), "estimator_default": None,
                         "type": _type_of_value(value) or "other", "nullable": False})
    return rows


def _json(value: Any) -> Any:
    """A default as JSON: numbers, strings, bools, None and lists of them, else its text."""
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value
    if isinstance(value, list | tuple) and all(
            isinstance(v, bool | int | float | str) for v in value):
        return list(value)
    return repr(value)


def catalog_models(task: str | None = None) -> dict[str, Any]:
    """The catalog with every model's parameters, and the default set of each task.

    Parameters
    ----------
    task : {"classification", "regression"}, optional
        Only this task's models; both by default.

    Returns
    -------
    dict
        ``{"models": [...], "defaults": {task: [name, ...]}}``; a model is ``name``,
        ``tasks`` (the tasks it has an entry for), ``description`` (the estimator's
        first docstring sentence; ``descriptions`` has it by task), ``estimators``
        (``{task: dotted path}``), ``available`` (its extra imports), ``extra``,
        ``in_default_set`` (the tasks whose default set holds it) and ``params``
        (``{task: [parameter rows of model_params]}``).

    Examples
    --------
    >>> answer = catalog_models("regression")
    >>> "ridge" in answer["defaults"]["regression"]
    True
    """
    tasks = TASKS if task is None else (check_task(task),)
    available = {extra: extra_available(extra) for extra in EXTRAS}
    models: dict[str, dict[str, Any]] = {}
    for t in tasks:
        for entry in CATALOG[t].values():
            model = models.setdefault(entry.name, {
                "name": entry.name, "tasks": [], "estimators": {}, "params": {},
                "in_default_set": [], "extra": entry.extra,
                "available": available[entry.extra] if entry.extra else True,
                "description": None, "descriptions": {}})
            model["tasks"].append(t)
            model["estimators"][t] = entry.estimator_path
            model["params"][t] = model_params(entry)
            if entry.name in DEFAULTS[t]:
                model["in_default_set"].append(t)
            model["descriptions"][t] = _description(entry)
            if model["description"] is None:
                model["description"] = model["descriptions"][t]
    return {"models": sorted(models.values(), key=lambda m: m["name"]),
            "defaults": {t: list(DEFAULTS[t]) for t in tasks}}


def _description(entry: CatalogEntry) -> str | None:
    """The first line of the estimator's docstring ("A random forest classifier.")."""
    try:
        cls = import_estimator(entry.estimator_path, entry.name, entry.extra)
    except Exception:  # noqa: BLE001 - a missing extra
        return None
    doc = inspect.getdoc(cls) or ""
    paragraph = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    first = paragraph.split(". ")[0].rstrip(".")
    return f"{first}." if first else None
