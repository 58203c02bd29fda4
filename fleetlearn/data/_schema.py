"""The schema of a training table: which columns models see, of which kind, and why others not.

A :class:`Schema` is stored with every model version (as JSON) so that serving can
check and coerce incoming rows exactly as the training table was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = ["ColumnKind", "ColumnSchema", "Schema", "TaskKind"]

ColumnKind = Literal["numeric", "boolean", "categorical", "datetime"]
TaskKind = Literal["classification", "regression"]

COLUMN_KINDS: tuple[str, ...] = get_args(ColumnKind)
TASKS: tuple[str, ...] = get_args(TaskKind)

# Bumped when the JSON layout changes; from_dict refuses layouts it does not know.
_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ColumnSchema:
    """One feature column as models receive it.

    Parameters
    ----------
    name : str
        Column name in the table.
    kind : {"numeric", "boolean", "categorical", "datetime"}
        How the preprocessor treats the column.
    dtype : str
        The pandas dtype as read from the file, e.g. ``"float64"``, ``"str"``.
    nullable : bool
        Whether the training table had missing values in this column.
    categories : tuple of str or None
        For categorical columns, the sorted distinct values seen (as strings).

    Examples
    --------
    >>> col = ColumnSchema("plan", "categorical", "str", False, ("basic", "pro"))
    >>> ColumnSchema.from_dict(col.to_dict()) == col
    True
    """

    name: str
    kind: ColumnKind
    dtype: str
    nullable: bool
    categories: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "nullable": self.nullable,
            "categories": None if self.categories is None else list(self.categories),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnSchema:
        """Build a column schema from :meth:`to_dict` output."""
        cats = d.get("categories")
        return cls(
            name=str(d["name"]),
            kind=d["kind"],
            dtype=str(d["dtype"]),
            nullable=bool(d["nullable"]),
            categories=None if cats is None else tuple(str(c) for c in cats),
        )


@dataclass(frozen=True)
class Schema:
    """What a model was trained on: target, task, feature columns and dropped columns.

    Parameters
    ----------
    target : str
        Name of the target column.
    task : {"classification", "regression"}
        The learning task.
    columns : tuple of ColumnSchema
        The feature columns models receive, in order.
    classes : tuple or None
        Classification: the sorted class labels as Python scalars. Regression: None.
    dropped : dict of str to str
        Column name to the reason it is not a feature (ID-like, free text, ...).

    Examples
    --------
    >>> s = Schema("y", "regression", (ColumnSchema("x", "numeric", "float64", False),),
    ...            None, {"id": "ID-like"})
    >>> s.feature_names
    ['x']
    >>> Schema.from_dict(s.to_dict()) == s
    True
    """

    target: str
    task: TaskKind
    columns: tuple[ColumnSchema, ...]
    classes: tuple[Any, ...] | None = None
    # A dict is not hashable: leave it out of the hash so a Schema can still key a dict.
    dropped: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def feature_names(self) -> list[str]:
        """Names of the feature columns, in the order models receive them."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSchema:
        """Return the schema of feature column ``name`` (KeyError if it is not a feature)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def names_of_kind(self, kind: str) -> list[str]:
        """Names of the feature columns of one kind, in schema order."""
        return [c.name for c in self.columns if c.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (``from_dict`` gives back an equal Schema)."""
        return {
            "version": _SCHEMA_VERSION,
            "target": self.target,
            "task": self.task,
            "columns": [c.to_dict() for c in self.columns],
            "classes": None if self.classes is None else list(self.classes),
            "dropped": dict(self.dropped),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        """Build a schema from :meth:`to_dict` output (e.g. after a JSON round-trip)."""
        version = d.get("version", _SCHEMA_VERSION)
        if version != _SCHEMA_VERSION:
            raise ValueError(
                f"Schema layout version {version} is not supported by this fleetlearn "
                f"(it reads version {_SCHEMA_VERSION}); upgrade fleetlearn to read it."
            )
        classes = d.get("classes")
        return cls(
            target=str(d["target"]),
            task=d["task"],
            columns=tuple(ColumnSchema.from_dict(c) for c in d["columns"]),
            classes=None if classes is None else tuple(classes),
            dropped={str(k): str(v) for k, v in (d.get("dropped") or {}).items()},
        )
