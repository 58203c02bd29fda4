"""Model artifacts: skops files named by their sha256, and the trusted-type policy.

Models never cross the storage boundary as pickles. ``dump_estimator`` writes the
skops format; ``load_estimator`` refuses any file holding a type outside an explicit
allow-list, and never calls ``skops.io.loads(..., trusted=True)``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fleetlearn.errors import ArtifactIntegrityError, RegistryError

__all__ = [
    "ArtifactStore",
    "dump_estimator",
    "load_estimator",
    "untrusted_types",
    "TRUSTED_MODULE_PREFIXES",
]

# Libraries whose classes an artifact may instantiate. Module prefixes, matched on
# the fully qualified type name skops reports (e.g. "sklearn.tree._tree.Tree").
TRUSTED_MODULE_PREFIXES: tuple[str, ...] = (
    "sklearn.",
    "numpy.",
    "scipy.",
    "fleetlearn.",
    "xgboost.",
    "lightgbm.",
    "collections.",
)
# Not "builtins." as a prefix: skops reports functions too, and "builtins.eval" or
# "builtins.exec" must never be trusted. Only plain data types are.
_TRUSTED_BUILTINS = frozenset(
    f"builtins.{name}"
    for name in (
        "bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int",
        "list", "NoneType", "object", "range", "set", "slice", "str", "tuple", "type",
    )
)  # fmt: skip
# Callables inside trusted libraries that touch the file system: an estimator holding
# one (e.g. FunctionTransformer(func=numpy.save)) could read or write files on predict.
_DENIED = frozenset(
    {
        "numpy.load", "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt",
        "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.memmap",
        "numpy.lib.npyio.load", "numpy.lib.npyio.save", "numpy.lib.npyio.loadtxt",
        "numpy.lib.npyio.savetxt", "numpy.lib.npyio.genfromtxt", "numpy.DataSource",
    }
)  # fmt: skip
_DENIED_PREFIXES = ("scipy.io.", "numpy.lib._datasource.", "numpy.lib.npyio.")

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def _is_trusted(type_name: str, extra: tuple[str, ...]) -> bool:
    if type_name in _DENIED or type_name.startswith(_DENIED_PREFIXES):
        return type_name in extra  # only an exact, explicit opt-in overrides the deny-list
    if type_name in _TRUSTED_BUILTINS or type_name in extra:
        return True
    prefixes = TRUSTED_MODULE_PREFIXES + tuple(p for p in extra if p.endswith("."))
    return type_name.startswith(prefixes)


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
    import skops.io as sio

    try:
        return sio.dumps(estimator)
    except Exception as exc:  # skops raises TypeError/NotImplementedError/...
        raise RegistryError(
            f"Cannot serialise {type(estimator).__name__} with skops: {exc}. Only objects "
            "skops can persist (scikit-learn, xgboost, lightgbm estimators) can be registered."
        ) from exc


def untrusted_types(data: bytes, trusted: Iterable[str] = ()) -> list[str]:
    """Return the types in a skops artifact that the allow-list does not cover.

    Parameters
    ----------
    data : bytes
        A skops file content.
    trusted : iterable of str
        Extra fully qualified type names, or module prefixes ending with ``"."``
        (``"mypackage."``), to trust beyond :data:`TRUSTED_MODULE_PREFIXES`.

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
    extra = tuple(trusted)
    return sorted(t for t in _reported_types(data, "artifact") if not _is_trusted(t, extra))


def _reported_types(data: bytes, source: str) -> list[str]:
    import skops.io as sio

    try:
        return list(sio.get_untrusted_types(data=data))
    except Exception as exc:  # zipfile/json errors on anything that is not skops
        raise ArtifactIntegrityError(
            f"{source} is not a readable skops file ({type(exc).__name__}: {exc}). "
            "Register models with Registry.register_model(estimator=...) or skops bytes."
        ) from exc


def load_estimator(data: bytes, trusted: Iterable[str] = (), *, source: str = "artifact") -> Any:
    """Load a skops artifact, trusting only allow-listed types.

    Parameters
    ----------
    data : bytes
        A skops file content.
    trusted : iterable of str
        Extra type names or module prefixes (ending with ``"."``) to trust.
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

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> model = load_estimator(dump_estimator(LinearRegression().fit([[0], [1]], [0, 1])))
    >>> round(float(model.predict([[2]])[0]), 6)
    2.0
    """
    import skops.io as sio

    extra = tuple(trusted)
    reported = _reported_types(data, source)
    refused = sorted(t for t in reported if not _is_trusted(t, extra))
    if refused:
        raise ArtifactIntegrityError(
            f"Refusing to load {source}: it contains types outside the trusted list: "
            f"{', '.join(refused)}. Trusted are modules {', '.join(TRUSTED_MODULE_PREFIXES)} "
            "and plain builtins. If you wrote and trust these classes, pass them as "
            "trusted=[...] (exact names, or a module prefix ending with '.')."
        )
    try:
        # Exactly the reported types, each checked above; never trusted=True.
        return sio.loads(data, trusted=reported)
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
