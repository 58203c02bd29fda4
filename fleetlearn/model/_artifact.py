"""A fitted pipeline as an artifact, and an artifact back as a predictor (exact trust)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleetlearn.data import Schema
from fleetlearn.model._predictor import Predictor
from fleetlearn.registry import artifact_types, dump_estimator, load_estimator

__all__ = ["Artifact", "dump_model", "load_predictor"]


@dataclass(frozen=True)
class Artifact:
    """A model's skops bytes and the exact type names they hold (sorted).

    ``types`` is what the registry records with the version
    (``ModelVersion.artifact_types``) and what loading checks against the allow-list.
    """

    data: bytes
    types: tuple[str, ...]


def dump_model(pipeline: Any) -> Artifact:
    """Serialise a fitted model to skops bytes, with the types the file holds.

    Parameters
    ----------
    pipeline : object
        A fitted estimator, normally :func:`~fleetlearn.model.build_pipeline`'s.

    Returns
    -------
    Artifact

    Raises
    ------
    RegistryError
        When skops cannot persist the object.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> dump_model(LinearRegression().fit([[0], [1]], [0, 1])).types[-1]
    'sklearn.linear_model._base.LinearRegression'
    """
    data = dump_estimator(pipeline)
    return Artifact(data, tuple(artifact_types(data)))


def load_predictor(data: bytes, schema: Schema, trusted: Iterable[str] = (), *,
                   source: str = "artifact") -> Predictor:
    """Load skops bytes with exact trust and make them a :class:`Predictor`.

    Parameters
    ----------
    data : bytes
        The artifact (already checked against its sha256 by the registry:
        ``Registry.load_artifact``).
    schema : Schema
        The version's input schema.
    trusted : iterable of str
        Extra exact type names to trust (besides the allow-list and
        ``FLEETLEARN_TRUSTED_TYPES``); module prefixes are refused.
    source : str
        What to call the artifact in error messages (a model ref).

    Raises
    ------
    ArtifactIntegrityError
        Naming every type outside the allow-list, or when the bytes are not skops.
    ConfigError
        When an opt-in is a module prefix.

    Examples
    --------
    >>> from sklearn.dummy import DummyRegressor
    >>> from fleetlearn.data import ColumnSchema
    >>> s = Schema("y", "regression", (ColumnSchema("x", "numeric", "float64", False),))
    >>> art = dump_model(DummyRegressor().fit([[0.0]], [1.0]))
    >>> load_predictor(art.data, s).compiled
    False
    """
    return Predictor(load_estimator(data, trusted, source=source), schema)
