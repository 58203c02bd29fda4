"""Ray's TLS and token authentication for a cluster: the variables and the token file.

Ray reads both from the environment of every node and driver process:
``RAY_USE_TLS=1`` with ``RAY_TLS_SERVER_CERT`` / ``RAY_TLS_SERVER_KEY`` /
``RAY_TLS_CA_CERT`` (mutual TLS on every gRPC channel: each side shows a certificate
signed by the CA), and ``RAY_AUTH_MODE=token`` with ``RAY_AUTH_TOKEN_PATH`` (every
call carries the token). A cluster's folder keeps what its members need::

    <cluster>/certs/   ca.crt ca.key node.crt node.key server.crt server.key
    <cluster>/token    the token, 256 random bits in hex, 0600
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleetlearn.errors import CertificateError
from fleetlearn.security._certs import CA_CERT, NODE_CERT, NODE_KEY, _write_private

__all__ = ["TLS_ENV", "AUTH_ENV", "ray_security_env", "ensure_token", "read_token",
           "security_summary", "preflight_ray", "check_tls", "PREFLIGHT_TIMEOUT_S",
           "ray_client_env", "use_ray_security", "security_vars"]

#: The variables that carry Ray's TLS setup.
TLS_ENV = ("RAY_USE_TLS", "RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY", "RAY_TLS_CA_CERT")
#: The variables that carry Ray's token authentication.
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def ensure_token(path: Path | str) -> Path:
    """The token file at ``path``, made (0600, 256 random bits) when missing."""
    path = Path(path)
    if not path.exists() or not path.read_text().strip():
        _write_private(path, (secrets.token_hex(32) + "\n").encode())
    return path


def read_token(path: Path | str) -> str:
    """The token in ``path`` (stripped); CertificateError when it cannot be read."""
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise CertificateError(f"The Ray token file {path} cannot be read "
                               f"({exc.strerror or exc}).") from exc
    if not text:
        raise CertificateError(f"The Ray token file {path} is empty.")
    return text


def ray_security_env(certs_dir: Path | str | None, token_path: Path | str | None
                     ) -> dict[str, str]:
    """What a node or driver adds to its environment: TLS when ``certs_dir`` is given,
    token auth when ``token_path`` is; ``RAY_AUTH_MODE=disabled`` without a token
    (Ray 2.60 would otherwise make one up for a local instance).

    Examples
    --------
    >>> env = ray_security_env("/c/certs", "/c/token")
    >>> env["RAY_USE_TLS"], env["RAY_TLS_CA_CERT"], env["RAY_AUTH_MODE"]
    ('1', '/c/certs/ca.crt', 'token')
    """
    env: dict[str, str] = {}
    if certs_dir is not None:
        folder = Path(certs_dir)
        env.update(RAY_USE_TLS="1", RAY_TLS_SERVER_CERT=str(folder / NODE_CERT),
                   RAY_TLS_SERVER_KEY=str(folder / NODE_KEY),
                   RAY_TLS_CA_CERT=str(folder / CA_CERT))
    if token_path is not None:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_path))
    else:
        env["RAY_AUTH_MODE"] = "disabled"
    return env


def security_vars(env: Any) -> dict[str, str]:
    """The TLS and token variables of ``env`` (a mapping such as ``os.environ``).

    Examples
    --------
    >>> security_vars({"RAY_USE_TLS": "1", "PATH": "/bin"})
    {'RAY_USE_TLS': '1'}
    """
    return {k: env[k] for k in (*TLS_ENV, *AUTH_ENV) if k in env}


def security_summary(env: dict[str, str] | None = None) -> dict[str, bool]:
    """Which of TLS and token auth ``env`` (default ``os.environ``) turns on.

    Examples
    --------
    >>> security_summary({"RAY_USE_TLS": "1", "RAY_AUTH_MODE": "token"})
    {'tls': True, 'token': True}
    """
    env = os.environ if env is None else env
    return {"tls": env.get("RAY_USE_TLS", "0").lower() in ("1", "true"),
            "token": env.get("RAY_AUTH_MODE", "").lower() == "token"}


# --------------------------------------------------------------- preflight
#: The whole preflight stays under this (``fleetlearn train`` must fail within 30 s).
PREFLIGHT_TIMEOUT_S = 15.0
_FIX_TLS = ("use the cluster's certificates: on its machine 'fleetlearn cluster env' prints "
            "RAY_USE_TLS, RAY_TLS_CA_CERT, RAY_TLS_SERVER_CERT and RAY_TLS_SERVER_KEY to "
            "export (copy its certs/ folder to a remote driver)")
_FIX_TOKEN = ("give this driver the cluster's token: export RAY_AUTH_MODE=token and "
              "RAY_AUTH_TOKEN_PATH=<the cluster folder>/token (see 'fleetlearn cluster env')")


def _tls_context(env: dict[str, str]) -> Any:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Ray's own channels check the chain, not the name (nodes are reached by IP):
    # the chain is what decides here too.
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["h2"])  # gRPC speaks HTTP/2 only
    ca, cert, key = (env.get(k) for k in ("RAY_TLS_CA_CERT", "RAY_TLS_SERVER_CERT",
                                          "RAY_TLS_SERVER_KEY"))
    missing = [k for k, v in (("RAY_TLS_CA_CERT", ca), ("RAY_TLS_SERVER_CERT", cert),
                              ("RAY_TLS_SERVER_KEY", key)) if not v]
    if missing:
        raise CertificateError(f"RAY_USE_TLS is on but {', '.join(missing)} is not set: "
                               f"{_FIX_TLS}.")
    try:
        ctx.load_verify_locations(ca)
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(f"This driver's TLS files cannot be used ({exc}): "
                               f"{_FIX_TLS}.") from exc
    return ctx


def _handshake(host: str, port: int, ctx: Any, timeout: float) -> str:
    """``"ok"``, ``"untrusted"`` (the server's certificate is not signed by our CA),
    ``"refused"`` (the server rejected our certificate), ``"plain"`` (no TLS there)."""
    import socket
    import ssl

    with socket.create_connection((host, port), timeout=timeout) as raw:
        raw.settimeout(timeout)
        try:
            with ctx.wrap_socket(raw) as tls:
                # TLS 1.3: the server judges the client's certificate after the
                # handshake; a refused one shows as an alert or a closed connection
                # instead of the server's first HTTP/2 frame (SETTINGS).
                try:
                    first = tls.recv(9)
                except ssl.SSLError:
                    return "refused"
                except TimeoutError:
                    return "ok"
                return "ok" if first else "refused"
        except ssl.SSLCertVerificationError:
            return "untrusted"
        except ssl.SSLError as exc:
            text = str(exc).lower()
            if "alert" in text and any(w in text for w in ("certificate", "unknown ca",
                                                           "handshake")):
                return "refused"
            return "plain"
        except (ConnectionResetError, BrokenPipeError):
            return "plain"


def _speaks_tls(host: str, port: int, timeout: float) -> bool:
    """True when the server at host:port answers a TLS ClientHello as a TLS server."""
    import socket
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((host, port), timeout=timeout) as raw:
        raw.settimeout(timeout)
        try:
            with ctx.wrap_socket(raw):
                return True
        except ssl.SSLError as exc:
            # A TLS server that refuses us still answers in TLS (an alert).
            return "alert" in str(exc).lower()
        except OSError:
            return False


#: What Ray's C++ GCS client writes to stderr when it is refused ("Failed to get
#: cluster ID from GCS server: Unauthenticated ..."): the refusal the error line names.
_GCS_CLIENT_LOG = "gcs_client.cc:"


@contextlib.contextmanager
def _without_gcs_client_warnings() -> Iterator[None]:
    """Hold this process's stderr (the file descriptor: Ray's C++ logger writes there)
    while the block runs, then write it back without the GCS client's own lines, so a
    refused driver prints one line (fleetlearn's, with the cause and the fix) instead
    of Ray's warning too. Anything else written meanwhile is written back, in order."""
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to hold
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True)
                    if _GCS_CLIENT_LOG.encode() not in line]
            if kept:
                os.write(2, b"".join(kept))


def _token_check(address: str, timeout: float) -> str | None:
    """None when the GCS accepts this process's token setup, else Ray's reason.

    Runs in a daemon thread: Ray's client has its own, longer retries; the driver
    gives up on it after ``timeout`` (and exits, taking the thread along).
    """
    import threading

    result: list[str | None] = []

    def ask() -> None:
        try:
            from ray._raylet import GcsClient

            GcsClient(address=address).check_alive([], timeout=timeout)
            result.append(None)
        except Exception as exc:  # AuthenticationError, RpcError ... by version
            result.append(f"{type(exc).__name__}: {' '.join(str(exc).split())}")

    thread = threading.Thread(target=ask, name="fleetlearn-ray-preflight", daemon=True)
    with _without_gcs_client_warnings():
        thread.start()
        thread.join(timeout)
    if not result:
        return "no answer"
    return result[0]


def check_tls(address: str, env: dict[str, str] | None = None, timeout: float = 5.0,
              who: str = "this driver") -> None:
    """The TLS half of :func:`preflight_ray`: the cluster's TLS and this process's
    (``env``, default ``os.environ``) agree, and each side trusts the other's
    certificate. A few TLS handshakes, no Ray.

    Raises
    ------
    ClusterError
        What disagrees, and the fix.
    """
    from fleetlearn.errors import ClusterError

    env = dict(os.environ if env is None else env)
    host, _, port_text = address.rpartition(":")
    port = int(port_text)
    step = timeout
    mine = security_summary(env)
    try:
        theirs_tls = _speaks_tls(host, port, step)
        if mine["tls"]:
            outcome = _handshake(host, port, _tls_context(env), step)
        else:
            outcome = "none"
    except OSError as exc:
        raise ClusterError(f"Cannot reach the Ray cluster at {address} "
                           f"({exc.strerror or exc}).") from exc
    if not mine["tls"] and theirs_tls:
        raise ClusterError(f"The cluster at {address} requires TLS and {who} has no "
                           f"certificate (RAY_USE_TLS is not set): {_FIX_TLS}.")
    if mine["tls"] and not theirs_tls:
        raise ClusterError(f"The cluster at {address} does not use TLS but {who} has "
                           "RAY_USE_TLS=1: unset RAY_USE_TLS (and RAY_TLS_*) for it.")
    if outcome == "untrusted":
        raise ClusterError(f"The cluster at {address} has a certificate {who}'s CA "
                           f"({env.get('RAY_TLS_CA_CERT')}) did not sign (another CA): "
                           f"{_FIX_TLS}.")
    if outcome == "refused":
        raise ClusterError(f"The cluster at {address} refused {who}'s TLS certificate "
                           f"({env.get('RAY_TLS_SERVER_CERT')}; signed by another CA?): "
                           f"{_FIX_TLS}.")


def preflight_ray(address: str, env: dict[str, str] | None = None,
                  timeout: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Check, in bounded time, that the cluster at ``address`` accepts this process's
    TLS certificate and token before ``ray.init`` (which hangs for a minute or more
    on a refused certificate instead of failing).

    Raises
    ------
    ClusterError
        One sentence naming the cause (another CA, no certificate, TLS expected or not,
        a wrong or missing token) and the fix.
    """
    from fleetlearn.errors import ClusterError

    env = dict(os.environ if env is None else env)
    step = max(1.0, timeout / 3)
    check_tls(address, env, step)
    mine = security_summary(env)
    reason = _token_check(address, step)
    if reason is None:
        return
    low = reason.lower()
    if "auth" in low or "token" in low:
        what = ("has no token (RAY_AUTH_MODE is not 'token')" if not mine["token"]
                else "has a token the cluster does not accept")
        raise ClusterError(f"The cluster at {address} refused this driver: it {what}: "
                           f"{_FIX_TOKEN}.")
    raise ClusterError(f"The Ray cluster at {address} did not answer this driver within "
                       f"{step:g} s ({reason[:200]}).")


_CLIENT_LOCK = threading.RLock()


def _reload_ray_config() -> None:
    """Make this process's Ray client read RAY_USE_TLS / RAY_AUTH_* again (Ray caches
    its config and token per process)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


#: The TLS and token variables this module last made Ray's config read (None: not yet).
_applied: dict[str, str] | None = None


def _current() -> dict[str, str]:
    return {k: os.environ[k] for k in (*TLS_ENV, *AUTH_ENV) if k in os.environ}


def use_ray_security(env: dict[str, str]) -> None:
    """Put ``env``'s TLS and token variables into this process for good (a driver that
    talks to one cluster), unsetting the others of :data:`TLS_ENV` and
    :data:`AUTH_ENV`, and make Ray read them again."""
    global _applied
    with _CLIENT_LOCK:
        for key in (*TLS_ENV, *AUTH_ENV):
            if key in env:
                os.environ[key] = env[key]
            else:
                os.environ.pop(key, None)
        _reload_ray_config()
        _applied = _current()


@contextlib.contextmanager
def ray_client_env(env: dict[str, str] | None) -> Iterator[None]:
    """Within the block, this process's Ray GCS clients use ``env``'s TLS and token
    settings (None: leave the process as it is).

    What ``fleetlearn cluster`` and ``GET /v1/cluster`` need: one process reads
    clusters whose settings differ from its own environment's. Ray's client reads
    them from the environment, once per process, so they are swapped in under a lock
    and Ray made to read them again, and the process's own are put back (and read
    again) when the block ends: a process that holds a Ray connection of its own
    (an embedded Ray, which has a token of its own) would otherwise go on calling its
    GCS with the other cluster's token and certificates, and Ray aborts the process on
    the first refused call. Keep the block to the reads of the other cluster.
    """
    if env is None:
        yield
        return
    wanted = {k: v for k, v in env.items() if k in (*TLS_ENV, *AUTH_ENV)}
    with _CLIENT_LOCK:
        saved = _current()
        loaded = saved if _applied is None else _applied
        if wanted == saved == loaded:
            yield
            return
        try:
            use_ray_security(wanted)
            yield
        finally:
            use_ray_security(saved)
