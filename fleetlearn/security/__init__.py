"""Security: API keys and their roles; a cluster's CA and certificates; Ray TLS and
token authentication (the variables, the token file, a driver's bounded preflight).

Keys are random 256-bit tokens shown once at creation; the registry keeps only
their sha256. Roles are ordered: each one can do what the roles before it can.

>>> role_allows("train", "predict"), role_allows("read", "predict")
(True, False)
"""

from __future__ import annotations

from fleetlearn.security._certs import (
    CA_CERT,
    CA_KEY,
    CERT_DAYS,
    DEFAULT_SANS,
    NODE_CERT,
    NODE_KEY,
    SERVER_CERT,
    SERVER_KEY,
    WARN_DAYS,
    CertInfo,
    cert_status,
    certs_due,
    cluster_sans,
    ensure_certs,
    has_ca,
    init_certs,
    network_sans,
    rotate_certs,
)
from fleetlearn.security._keys import (
    KEY_PREFIX,
    ROLES,
    check_role,
    generate_key,
    hash_key,
    role_allows,
)
from fleetlearn.security._ray_auth import (
    AUTH_ENV,
    PREFLIGHT_TIMEOUT_S,
    TLS_ENV,
    check_tls,
    ensure_token,
    preflight_ray,
    ray_client_env,
    ray_security_env,
    read_token,
    security_summary,
    security_vars,
    use_ray_security,
)
from fleetlearn.security._throttle import AuthThrottle

__all__ = ["AUTH_ENV", "CA_CERT", "CA_KEY", "CERT_DAYS", "DEFAULT_SANS", "KEY_PREFIX",
           "NODE_CERT", "NODE_KEY", "PREFLIGHT_TIMEOUT_S", "ROLES", "SERVER_CERT",
           "SERVER_KEY", "TLS_ENV", "WARN_DAYS", "AuthThrottle", "CertInfo", "cert_status",
           "certs_due", "check_role", "check_tls", "cluster_sans", "ensure_certs", "ensure_token",
           "generate_key", "has_ca", "hash_key", "init_certs", "network_sans", "preflight_ray",
           "ray_security_env",
           "ray_client_env", "read_token", "role_allows", "rotate_certs", "security_summary",
           "security_vars", "use_ray_security"]
