"""Security: API keys and their roles (certificates and Ray TLS come later).

Keys are random 256-bit tokens shown once at creation; the registry keeps only
their sha256. Roles are ordered: each one can do what the roles before it can.

>>> role_allows("train", "predict"), role_allows("read", "predict")
(True, False)
"""

from __future__ import annotations

from fleetlearn.security._keys import (
    KEY_PREFIX,
    ROLES,
    check_role,
    generate_key,
    hash_key,
    role_allows,
)
from fleetlearn.security._throttle import AuthThrottle

__all__ = ["KEY_PREFIX", "ROLES", "AuthThrottle", "check_role", "generate_key", "hash_key",
           "role_allows"]
