"""The one exception hierarchy of fleetlearn.

Every error a user can cause says what was wrong, what was expected and what to
do, naming the file, column or model involved. The CLI prints ``str(error)`` on one
line and exits non-zero; the API (later) maps these to 4xx responses.

::

    FleetlearnError
    ├── DataError                 a table cannot be used for training
    │   ├── DataFileNotFoundError
    │   ├── UnreadableTableError  empty, malformed, unsupported format
    │   ├── TargetError           missing target column, one class, all missing
    │   └── TooFewRowsError       fewer rows than folds / classes per fold
    ├── ModelSpecError            unknown model, bad parameter, missing extra
    ├── ConfigError               bad run file, bad option value
    │   └── CertificateError      no CA in the folder, unreadable or expired certificate
    ├── ConflictError             the request clashes with the current state (run finished)
    ├── RegistryError             registry unreachable or inconsistent
    │   ├── RegistryUnavailableError the database is down or busy for now: retry later
    │   ├── NotFoundError         no such run, model, version or alias
    │   └── ArtifactIntegrityError digest mismatch, untrusted types
    ├── ClusterError              Ray address unreachable, cluster lost
    └── ApiError                  a fleetlearn server answered with an error (the client)
        └── ServerUnreachableError nothing answers at the URL (refused, DNS, TLS, timeout)

    KeyboardInterrupt
    └── Terminated                SIGTERM, handled like Ctrl-C (``docker stop``); exit 143
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "FleetlearnError",
    "DataError",
    "DataFileNotFoundError",
    "UnreadableTableError",
    "TargetError",
    "TooFewRowsError",
    "ModelSpecError",
    "ConfigError",
    "CertificateError",
    "ConflictError",
    "RegistryError",
    "RegistryUnavailableError",
    "NotFoundError",
    "ArtifactIntegrityError",
    "ClusterError",
    "ApiError",
    "ServerUnreachableError",
    "Terminated",
    "closest",
]


class Terminated(KeyboardInterrupt):
    """SIGTERM asked this process to stop: the same clean stop as Ctrl-C.

    A subclass of :class:`KeyboardInterrupt`, so every path that stops cleanly on
    Ctrl-C (journal what finished, mark the run ``interrupted``, shut down an embedded
    Ray) does the same on SIGTERM; the CLI exits with 143 (128 + 15) instead of 130.
    """

    exit_code = 143


class FleetlearnError(Exception):
    """Base class of every error fleetlearn raises on purpose."""


class DataError(FleetlearnError):
    """A table cannot be used for training."""


class DataFileNotFoundError(DataError):
    """The data file or folder does not exist."""


class UnreadableTableError(DataError):
    """The file exists but holds no usable table (empty, malformed, unknown format)."""


class TargetError(DataError):
    """The target column is missing or unusable (one class, all missing)."""


class TooFewRowsError(DataError):
    """Too few rows for the requested folds or test split."""


class ModelSpecError(FleetlearnError):
    """Unknown model, bad parameter, or a model whose extra is not installed."""


class ConfigError(FleetlearnError):
    """A run file or an option value is invalid."""


class CertificateError(ConfigError):
    """A certificate folder holds no CA, or a certificate or key cannot be read or used."""


class ConflictError(FleetlearnError):
    """The request clashes with the current state: a run already stopped, on another host."""


class RegistryError(FleetlearnError):
    """The registry cannot be reached or refused an operation."""


class RegistryUnavailableError(RegistryError):
    """The registry's database cannot be reached right now (down, restarting, locked).

    Transient: the same call can succeed once the database is back. The training driver
    retries its journal batches on it; the API answers 503 with ``Retry-After``.
    """


class NotFoundError(RegistryError):
    """No such run, model, version or alias."""


class ArtifactIntegrityError(RegistryError):
    """A stored artifact does not match its digest or holds untrusted types."""


class ClusterError(FleetlearnError):
    """The Ray cluster cannot be reached or was lost."""


class ApiError(FleetlearnError):
    """A fleetlearn server answered with an error; the message is the server's detail.

    Attributes
    ----------
    status : int or None
        HTTP status (None when no answer came, see :class:`ServerUnreachableError`).
    detail : str
        The server's explanation (what was wrong and what to do).
    error : str
        The server's error kind, e.g. ``"NotFoundError"``, ``"InputError"``.
    errors : list of dict
        Every problem found, for input errors (``loc``, ``msg``, ``type``).
    """

    def __init__(self, detail: str, status: int | None = None, error: str = "",
                 errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(detail)
        self.detail, self.status, self.error = detail, status, error
        self.errors = list(errors or [])


class ServerUnreachableError(ApiError):
    """No fleetlearn server answers at the URL (refused, unknown host, TLS, timeout)."""


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name``, or None when nothing is close.

    >>> closest("lable", ["label", "age", "income"])
    'label'
    """
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return " Did you mean 'x'?" or an empty string, for error messages."""
    best = closest(name, candidates)
    return f" Did you mean '{best}'?" if best else ""
