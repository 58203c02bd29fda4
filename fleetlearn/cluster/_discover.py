"""Which cluster a process is part of, without importing Ray.

In order: an address given explicitly (``fleetlearn serve``'s settings), then
``$RAY_ADDRESS`` (a ``host:port``; ``local`` and ``auto`` mean no cluster here), then
the cluster of a Ray already connected in this process (a Ray Serve replica), then
the one ``fleetlearn cluster up`` recorded in the default cluster folder.
"""

from __future__ import annotations

import os
import sys

from fleetlearn.cluster._state import default_cluster_dir, read_state
from fleetlearn.errors import ClusterError

__all__ = ["discover_address", "recorded_security_env"]


def _in_process_ray() -> str | None:
    ray = sys.modules.get("ray")  # never imported here: only asked if already loaded
    if ray is None or not ray.is_initialized():
        return None
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # not connected after all
        return None


def discover_address(explicit: str | None = None) -> tuple[str | None, str | None]:
    """``(address, where it came from)``, or ``(None, None)`` when no cluster is known.

    Examples
    --------
    >>> discover_address("127.0.1.1:6380")
    ('127.0.1.1:6380', 'settings')
    """
    if explicit and explicit not in ("local", "auto"):
        return explicit, "settings"
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env not in ("local", "auto") and not env.startswith("ray://"):
        return env, "RAY_ADDRESS"
    in_process = _in_process_ray()
    if in_process:
        return in_process, "ray"
    try:
        state = read_state(default_cluster_dir())
    except ClusterError:
        state = None
    if state is not None:
        return state.address, "state file"
    return None, None


def recorded_security_env(address: str, folder: str | None = None) -> dict[str, str] | None:
    """The TLS and token variables of the cluster ``fleetlearn cluster up`` recorded at
    ``address`` (in ``folder``, default the default cluster folder), or None when that
    folder records another cluster or none: how a driver or CLI on the cluster's
    machine (same FLEETLEARN_HOME) finds its certificates and token by itself.

    Examples
    --------
    >>> recorded_security_env("10.9.9.9:1", folder="/nonexistent") is None
    True
    """
    try:
        state = read_state(folder or default_cluster_dir())
    except ClusterError:
        return None
    if state is None or not _same(state.address, address):
        return None
    return state.security_env


def _same(a: str, b: str) -> bool:
    return a.strip().replace("localhost:", "127.0.0.1:") == \
        b.strip().replace("localhost:", "127.0.0.1:")
