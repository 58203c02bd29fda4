"""Where fleetlearn keeps its state on this machine.

Every default can be overridden by an environment variable, so a cluster can point
all processes at one shared registry without passing options around:

- ``FLEETLEARN_HOME``: the state folder (default ``~/.fleetlearn``);
- ``FLEETLEARN_REGISTRY_URL``: the registry database (default SQLite in the home);
- ``FLEETLEARN_ARTIFACTS``: the folder of model artifacts (default ``<home>/artifacts``).

They are the fields of :class:`HomeSettings`, read afresh by each function below (a
process may change its environment, tests do). An empty variable counts as unset.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["HomeSettings", "fleetlearn_home", "default_registry_url", "default_artifact_dir"]


class HomeSettings(BaseSettings):
    """The ``FLEETLEARN_*`` variables that locate the home folder, registry and artifacts.

    Parameters
    ----------
    home : Path, optional
        ``FLEETLEARN_HOME``; ``~/.fleetlearn`` when unset.
    registry_url : str, optional
        ``FLEETLEARN_REGISTRY_URL``; a SQLite file in the home when unset.
    artifacts : Path, optional
        ``FLEETLEARN_ARTIFACTS``; ``<home>/artifacts`` when unset.

    Examples
    --------
    >>> HomeSettings(home="/srv/fleetlearn").home_folder
    PosixPath('/srv/fleetlearn')
    """

    # extra="ignore": FLEETLEARN_URL, FLEETLEARN_API_KEY ... belong to other readers
    # (the client, serving); env_ignore_empty: FLEETLEARN_HOME= means "the default".
    model_config = SettingsConfigDict(env_prefix="FLEETLEARN_", extra="ignore",
                                      env_ignore_empty=True)

    home: Path | None = None
    registry_url: str | None = None
    artifacts: Path | None = None

    @property
    def home_folder(self) -> Path:
        """The home folder (not created here)."""
        return self.home.expanduser() if self.home else Path.home() / ".fleetlearn"


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
    home = HomeSettings().home_folder
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
    url = HomeSettings().registry_url
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
    artifacts = HomeSettings().artifacts
    if artifacts:
        return artifacts.expanduser()
    return fleetlearn_home() / "artifacts"
