"""Model artifacts: skops files named by their sha256, and the exact trusted-type policy.

Models never cross the storage boundary as pickles. ``dump_estimator`` writes the
skops format; ``artifact_types`` lists every type a file holds (read from its schema,
without constructing anything); ``load_estimator`` refuses a file holding any type
that is not an exact name of :data:`TRUSTED_TYPES` or of the caller's opt-ins, and
never calls ``skops.io.loads(..., trusted=True)``.

Trust is by exact name only (``"mypackage.models.ThresholdClassifier"``), never by
module prefix: a prefix such as ``"numpy."`` would also admit ``numpy.load`` or
``numpy.testing`` functions inside a ``FunctionTransformer``. Users who register their
own estimator classes opt in with ``trusted=[...]`` or the ``FLEETLEARN_TRUSTED_TYPES``
environment variable (comma-separated exact names).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fleetlearn.errors import ArtifactIntegrityError, ConfigError, RegistryError
from fleetlearn.registry._trusted_types import TRUSTED_TYPES

__all__ = [
    "ArtifactStore",
    "TRUSTED_TYPES",
    "TRUSTED_TYPES_ENV",
    "artifact_types",
    "check_trusted_names",
    "dump_estimator",
    "load_estimator",
    "trusted_types_from_env",
    "untrusted_types",
]

#: The environment variable holding extra exact type names to trust (comma-separated).
TRUSTED_TYPES_ENV = "FLEETLEARN_TRUSTED_TYPES"

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
# A fully qualified name: dotted identifiers, at least "module.Name".
_TYPE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_OPT_IN_HINT = (
    f"pass them as trusted=[...] or set {TRUSTED_TYPES_ENV} (comma-separated exact type "
    "names)"
)


def trusted_types_from_env() -> tuple[str, ...]:
    """Return the exact type names opted in through ``FLEETLEARN_TRUSTED_TYPES``.

    Raises
    ------
    ConfigError
        When an entry is a module prefix or not a fully qualified type name.

    Examples
    --------
    >>> os.environ["FLEETLEARN_TRUSTED_TYPES"] = "mypkg.models.Threshold"
    >>> trusted_types_from_env()
    ('mypkg.models.Threshold',)
    >>> del os.environ["FLEETLEARN_TRUSTED_TYPES"]
    """
    raw = os.environ.get(TRUSTED_TYPES_ENV, "")
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    return check_trusted_names(names, source=TRUSTED_TYPES_ENV)


def check_trusted_names(names: Iterable[str], source: str = "trusted") -> tuple[str, ...]:
    """Check that every opt-in is one exact, fully qualified type name.

    Parameters
    ----------
    names : iterable of str
        Type names such as ``"mypackage.models.ThresholdClassifier"``.
    source : str
        Where the names came from, for the error message.

    Raises
    ------
    ConfigError
        Naming the entries that are module prefixes (``"mypackage."``) or not names.

    Examples
    --------
    >>> check_trusted_names(["mypkg.Model"])
    ('mypkg.Model',)
    """
    if isinstance(names, str):
        names = [names]
    out = tuple(str(n) for n in names)
    bad = [n for n in out if not _TYPE_NAME_RE.match(n)]
    if bad:
        prefixes = [n for n in bad if n.endswith(".") or n.endswith(".*")]
        why = ("module prefixes are no longer accepted" if prefixes
               else "each must be a fully qualified type name")
        raise ConfigError(
            f"Invalid trusted type(s) in {source}: {', '.join(map(repr, bad))}: {why}. "
            "List each class the artifact holds by its exact name, e.g. "
            "'mypackage.models.ThresholdClassifier' (the refusal message names them)."
        )
    return out


def dump_estimator(estimator: Any) -> bytes:
    """Serialise a fitted estimator to skops bytes.

    Parameters
    ----------
    estimator : object
        Any object skops can persist (scikit-learn estimators and pipelines, xgboost
        and lightgbm models).

    Returns
    -------
    bytes
        The skops file content.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> data = dump_estimator(LinearRegression().fit([[0], [1]], [0, 1]))
    >>> data[:2]
    b'PK'
    """
    # Imported here: skops pulls in scikit-learn, and the registry is imported by CLI
    # verbs that never touch a model (start-up stays fast).
    import skops.io as sio

    try:
        return sio.dumps(estimator)
    except Exception as exc:  # skops raises TypeError/NotImplementedError/...
        raise RegistryError(
            f"Cannot serialise {type(estimator).__name__} with skops: {exc}. Only objects "
            "skops can persist (scikit-learn, xgboost, lightgbm estimators) can be registered."
        ) from exc


def artifact_types(data: bytes, *, source: str = "artifact") -> list[str]:
    """Return every type a skops artifact holds, as sorted exact names.

    Read from the file's schema without constructing anything: each object, function
    and type reference the file would make skops build, not only the ones skops
    itself does not trust by default.

    Parameters
    ----------
    data : bytes
        A skops file content.
    source : str
        What to call the artifact in error messages.

    Raises
    ------
    ArtifactIntegrityError
        When ``data`` is not a readable skops file.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> artifact_types(dump_estimator(LinearRegression().fit([[0], [1]], [0, 1])))[-1]
    'sklearn.linear_model._base.LinearRegression'
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            schema = json.loads(zf.read("schema.json"))
        if not isinstance(schema, dict) or not {"protocol", "__class__", "__module__"} <= set(
                schema):
            raise ValueError("schema.json is not a skops schema (no protocol or root type)")
    except Exception as exc:  # zipfile/json/key errors on anything that is not skops
        raise ArtifactIntegrityError(
            f"{source} is not a readable skops file ({type(exc).__name__}: {exc}). "
            "Register models with Registry.register_model(estimator=...) or skops bytes."
        ) from exc
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:  # iterative: a deep artifact must not hit the recursion limit
        node = stack.pop()
        if isinstance(node, dict):
            cls, module = node.get("__class__"), node.get("__module__")
            if isinstance(cls, str) and isinstance(module, str):
                found.add(f"{module}.{cls}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return sorted(found)


def untrusted_types(data: bytes, trusted: Iterable[str] = ()) -> list[str]:
    """Return the types in a skops artifact that the allow-list does not cover.

    Parameters
    ----------
    data : bytes
        A skops file content.
    trusted : iterable of str
        Extra exact type names to trust beyond :data:`TRUSTED_TYPES` (module
        prefixes are refused with a :class:`~fleetlearn.errors.ConfigError`).

    Returns
    -------
    list of str
        Sorted type names that would be refused; empty when the file is safe to load.

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> untrusted_types(dump_estimator(DecisionTreeClassifier().fit([[0], [1]], [0, 1])))
    []
    """
    allowed = TRUSTED_TYPES | set(check_trusted_names(trusted))
    return [t for t in artifact_types(data) if t not in allowed]


def load_estimator(data: bytes, trusted: Iterable[str] = (), *, source: str = "artifact") -> Any:
    """Load a skops artifact, trusting only allow-listed exact type names.

    Parameters
    ----------
    data : bytes
        A skops file content.
    trusted : iterable of str
        Extra exact type names to trust (besides :data:`TRUSTED_TYPES` and
        ``FLEETLEARN_TRUSTED_TYPES``).
    source : str
        What to call the artifact in error messages (a file path, a model ref).

    Returns
    -------
    object
        The deserialised estimator.

    Raises
    ------
    ArtifactIntegrityError
        When the artifact holds a type outside the allow-list, or is not a skops file.
    ConfigError
        When an opt-in is a module prefix rather than an exact name.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> model = load_estimator(dump_estimator(LinearRegression().fit([[0], [1]], [0, 1])))
    >>> round(float(model.predict([[2]])[0]), 6)
    2.0
    """
    import skops.io as sio  # see dump_estimator: keeps the registry import light

    allowed = TRUSTED_TYPES | set(check_trusted_names(trusted)) | set(trusted_types_from_env())
    held = artifact_types(data, source=source)
    refused = [t for t in held if t not in allowed]
    if refused:
        raise ArtifactIntegrityError(
            f"Refusing to load {source}: it holds types outside the trusted list: "
            f"{', '.join(refused)}. fleetlearn trusts the exact types its catalog models, "
            "its transformers and numpy/scipy data containers need. If you wrote and trust "
            f"these classes, {_OPT_IN_HINT}."
        )
    try:
        # Exactly the types skops asks about, each checked above; never trusted=True.
        return sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    except Exception as exc:
        raise ArtifactIntegrityError(
            f"Cannot load {source} with skops ({type(exc).__name__}: {exc}). The file may be "
            "corrupt or written by an incompatible library version."
        ) from exc


class ArtifactStore:
    """A folder of skops files, each named by the sha256 of its content.

    Layout: ``<root>/<sha[:2]>/<sha>.skops``. Writes go to a temporary file in the
    same folder, are fsynced, then atomically renamed, so a crash never leaves a
    half-written artifact under a valid name.

    Parameters
    ----------
    root : str or Path
        The artifact folder; created on first write.

    Examples
    --------
    >>> import tempfile
    >>> store = ArtifactStore(tempfile.mkdtemp())
    >>> digest, size, path = store.save_bytes(b"hello")
    >>> store.load_bytes(digest)
    b'hello'
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    def path_for(self, digest: str) -> Path:
        """Return where the artifact with this sha256 hex digest lives (or would live)."""
        if not _DIGEST_RE.match(digest):
            raise ArtifactIntegrityError(
                f"Invalid artifact digest {digest!r}: expected 64 lowercase hex characters "
                "(a sha256). The registry row may be corrupt."
            )
        return self.root / digest[:2] / f"{digest}.skops"

    def exists(self, digest: str) -> bool:
        """Return whether the artifact file for ``digest`` is present."""
        return self.path_for(digest).is_file()

    def save_bytes(self, data: bytes) -> tuple[str, int, Path]:
        """Store ``data`` under its digest; return ``(digest, size, path)``.

        Saving the same content twice is cheap: an existing file of the right size is
        kept.
        """
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        try:
            if path.is_file() and path.stat().st_size == len(data):
                return digest, len(data), path
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{digest[:12]}-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_dir(path.parent)
        except OSError as exc:
            raise RegistryError(
                f"Cannot write artifact {path}: {exc}. Check that the artifact folder "
                f"{self.root} is writable (set FLEETLEARN_ARTIFACTS to move it)."
            ) from exc
        return digest, len(data), path

    def load_bytes(self, digest: str) -> bytes:
        """Read the artifact for ``digest``, checking its sha256.

        Raises
        ------
        ArtifactIntegrityError
            When the file is missing or its content does not match ``digest``.
        """
        path = self.path_for(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactIntegrityError(
                f"Artifact file {path} is missing. The registry expects it under the "
                f"artifact folder {self.root}; check --artifacts / FLEETLEARN_ARTIFACTS "
                "points at the folder the model was registered with."
            ) from exc
        except OSError as exc:
            raise ArtifactIntegrityError(f"Cannot read artifact file {path}: {exc}.") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ArtifactIntegrityError(
                f"Artifact file {path} does not match its registered sha256: expected "
                f"{digest}, got {actual}. The file was modified or corrupted; re-register "
                "the model from its run instead of loading it."
            )
        return data

    def delete(self, digest: str) -> bool:
        """Remove the artifact file; return whether it existed."""
        path = self.path_for(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable. Not possible on Windows; harmless to skip there.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
