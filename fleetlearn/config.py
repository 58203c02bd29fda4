"""Where fleetlearn keeps its state on this machine.

Every default can be overridden by an environment variable, so a cluster can point
all processes at one shared registry without passing options around:

- ``FLEETLEARN_HOME``: the state folder (default ``~/.fleetlearn``);
- ``FLEETLEARN_REGISTRY_URL``: the registry database (default SQLite in the home);
- ``FLEETLEARN_ARTIFACTS``: the folder of model artifacts (default ``<home>/artifacts``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fleetlearn_home", "default_registry_url", "default_artifact_dir"]


def fleetlearn_home() -> Path:
    """Return the fleetlearn state folder, creating it if needed.

    Returns
    -------
    Path
        ``$FLEETLEARN_HOME`` when set, else ``~/.fleetlearn``.

    Examples
    --------
    >>> fleetlearn_home().is_dir()
    True
    """
    raw = os.environ.get("FLEETLEARN_HOME")
    home = Path(raw).expanduser() if raw else Path.home() / ".fleetlearn"
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_registry_url() -> str:
    """Return the registry URL used when none is given.

    Returns
    -------
    str
        ``$FLEETLEARN_REGISTRY_URL`` when set, else a SQLite file in the home folder.

    Examples
    --------
    >>> default_registry_url().split(":")[0] in {"sqlite", "postgresql", "postgresql+psycopg"}
    True
    """
    url = os.environ.get("FLEETLEARN_REGISTRY_URL")
    if url:
        return url
    return f"sqlite:///{fleetlearn_home() / 'registry.db'}"


def default_artifact_dir() -> Path:
    """Return the folder where model artifacts are stored when none is given.

    Returns
    -------
    Path
        ``$FLEETLEARN_ARTIFACTS`` when set, else ``<home>/artifacts``. Not created here:
        the artifact store creates it on first write.

    Examples
    --------
    >>> default_artifact_dir().name != ""
    True
    """
    raw = os.environ.get("FLEETLEARN_ARTIFACTS")
    if raw:
        return Path(raw).expanduser()
    return fleetlearn_home() / "artifacts"
