"""Serving settings: one dataclass, filled from CLI options or ``FLEETLEARN_SERVE_*``."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from fleetlearn.errors import ConfigError

__all__ = ["ServeSettings", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeSettings:
    """How ``fleetlearn serve`` behaves. Every field has a ``FLEETLEARN_SERVE_<NAME>``
    environment variable (e.g. ``FLEETLEARN_SERVE_MAX_ROWS=5000``).

    Parameters
    ----------
    registry_url : str, optional
        SQLAlchemy URL of the registry; the home folder's by default.
    artifact_dir : str, optional
        Folder of model artifacts; ``<home>/artifacts`` by default.
    host, port : str, int
        Where the server listens (``host`` also decides whether keys are required).
    auth : {"auto", "on", "off"}
        ``auto``: keys are required as soon as the registry holds an active key, and
        always when ``host`` is not loopback. ``on``: always. ``off``: never (loopback
        only; refused on any other address).
    max_rows : int
        Most rows in one predict request (413 beyond).
    max_body_mb : float
        Largest predict body accepted (413 beyond).
    max_models, max_cache_mb : int, float
        Bounds of the loaded-model cache (least recently used evicted first).
    refresh_s : float
        How often the registry is checked for new versions and moved aliases.
    batch_max_rows, batch_wait_ms : int, float
        Coalescing of concurrent predictions (see ``fleetlearn.serving._batch``).
    stats_window_s, stats_flush_s : float
        Width of a statistics window, and how often windows are written to the registry.
    preload : list of str
        Model references loaded at start; ``/readyz`` waits for them.
    upload_max_mb : float
        Largest dataset upload.
    data_dir : str, optional
        Where uploaded datasets are stored; ``<home>/data`` by default.
    ray_address : str, optional
        Ray cluster for runs started through the API; embedded local Ray by default.
    """

    registry_url: str | None = None
    artifact_dir: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    auth: str = "auto"
    max_rows: int = 10_000
    max_body_mb: float = 32.0
    max_models: int = 32
    max_cache_mb: float = 2048.0
    refresh_s: float = 1.0
    batch_max_rows: int = 1024
    batch_wait_ms: float = 2.0
    stats_window_s: float = 10.0
    stats_flush_s: float = 10.0
    preload: list[str] = field(default_factory=list)
    upload_max_mb: float = 512.0
    data_dir: str | None = None
    ray_address: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            env = os.environ.get(f"FLEETLEARN_SERVE_{f.name.upper()}")
            default = [] if f.name == "preload" else f.default
            if env is None or getattr(self, f.name) != default:
                continue  # an explicit value (CLI option) wins over the environment
            try:
                if f.name == "preload":
                    value: object = [p for p in env.split(",") if p.strip()] or self.preload
                elif isinstance(f.default, bool):
                    value = env.lower() in ("1", "true", "yes")
                elif isinstance(f.default, int):
                    value = int(env)
                elif isinstance(f.default, float):
                    value = float(env)
                else:
                    value = env
            except ValueError as exc:
                raise ConfigError(f"FLEETLEARN_SERVE_{f.name.upper()}={env!r} is not valid: "
                                  f"{exc}.") from exc
            setattr(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        if self.auth not in ("auto", "on", "off"):
            raise ConfigError(f"auth must be auto, on or off, got '{self.auth}'.")
        if self.auth == "off" and not is_loopback(self.host):
            raise ConfigError(
                f"Refusing to serve on {self.host} without API keys: anyone who can reach it "
                "could use it. Create a key with 'fleetlearn keys create --role predict' and "
                "drop --no-auth, or serve on 127.0.0.1."
            )
        for name in ("max_rows", "max_models", "batch_max_rows"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("max_body_mb", "max_cache_mb", "refresh_s", "stats_window_s",
                     "stats_flush_s", "upload_max_mb"):
            if float(getattr(self, name)) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.batch_wait_ms < 0:
            raise ConfigError(f"batch_wait_ms must be >= 0, got {self.batch_wait_ms}.")
        if not 0 < int(self.port) < 65536:
            raise ConfigError(f"port must be 1-65535, got {self.port}.")

    @property
    def data_path(self) -> Path:
        from fleetlearn.config import fleetlearn_home

        return Path(self.data_dir) if self.data_dir else fleetlearn_home() / "data"
