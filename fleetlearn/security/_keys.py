"""API key material: generation, hashing, and the role order."""

from __future__ import annotations

import hashlib
import secrets

from fleetlearn.errors import ConfigError

__all__ = ["KEY_PREFIX", "ROLES", "generate_key", "hash_key", "role_allows", "check_role"]

#: Every key starts with this, so a leaked key is recognisable (secret scanners, logs).
KEY_PREFIX = "flk_"

#: Ordered from least to most privileged; a role may do everything of the roles before it.
#: read: list and inspect models, runs, stats. predict: + predictions. train: + upload
#: datasets and start runs. admin: + manage keys and aliases.
ROLES: tuple[str, ...] = ("read", "predict", "train", "admin")


def generate_key() -> str:
    """Return a new secret API key (``flk_`` + 43 URL-safe characters, 256 random bits).

    >>> key = generate_key()
    >>> key.startswith("flk_") and len(key) == 47
    True
    """
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Return the sha256 hex digest stored for ``key``.

    A plain sha256 is enough (no salt, no slow hash): keys are 256 random bits, not
    passwords, so neither dictionaries nor brute force apply, and lookups stay O(1).

    >>> len(hash_key("flk_example"))
    64
    """
    return hashlib.sha256(key.encode()).hexdigest()


def check_role(role: str) -> str:
    """Return ``role`` if it is known, else raise ConfigError naming the roles."""
    if role not in ROLES:
        raise ConfigError(f"Unknown role '{role}': use one of {', '.join(ROLES)}.")
    return role


def role_allows(role: str, needed: str) -> bool:
    """Whether a key with ``role`` may do what needs ``needed``.

    >>> role_allows("admin", "read")
    True
    """
    return ROLES.index(role) >= ROLES.index(needed)
