"""Which of a local cluster's Ray ports are reachable from where, read from the
sockets its processes listen on (psutil), not from what was asked for.

What ``fleetlearn serve`` says at start, one line each: the dashboard (and the Jobs
API, which the dashboard serves), the Prometheus metrics ports, the dashboard agent's
HTTP port, and the GCS (TLS and token or not).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import psutil

from fleetlearn.cluster._state import ClusterState, NodeRecord, read_state
from fleetlearn.errors import ClusterError
from fleetlearn.security import security_summary

__all__ = ["listening", "exposure_lines", "reach"]

#: The head's autoscaler and dashboard metrics servers (Ray's variables and defaults).
AUTOSCALER_METRIC_PORT_ENV = "AUTOSCALER_METRIC_PORT"
DASHBOARD_METRIC_PORT_ENV = "DASHBOARD_METRIC_PORT"


def reach(ip: str) -> str:
    """Where a socket bound to ``ip`` can be reached from.

    Examples
    --------
    >>> reach("127.0.0.1"), reach("0.0.0.0")
    ('this machine only', 'every interface: other machines too')
    """
    if ip in ("", "0.0.0.0", "::"):
        return "every interface: other machines too"
    try:
        if ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback:
            return "this machine only"
    except ValueError:
        pass
    return f"the network of {ip}: other machines too"


def _session(node: NodeRecord) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid == node.pid or os.getsid(proc.pid) == node.pid:
                out.append(proc)
        except (OSError, psutil.Error):
            continue
    return out


def listening(node: NodeRecord) -> dict[int, set[str]]:
    """Port -> the IPs the node's processes listen on it (TCP)."""
    out: dict[int, set[str]] = {}
    for proc in _session(node):
        try:
            conns = proc.net_connections(kind="inet")
        except (psutil.Error, OSError):
            continue
        for conn in conns:
            if conn.status == psutil.CONN_LISTEN:
                out.setdefault(conn.laddr.port, set()).add(conn.laddr.ip)
    return out


def _shown(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _line(what: str, binds: list[tuple[str, set[str]]]) -> str:
    if not binds:
        return f"Ray {what}: not listening"
    ips = sorted({ip for _, found in binds for ip in found})
    reaches = sorted({reach(ip) for ip in ips})
    nodes = ", ".join(name for name, _ in binds)
    return (f"Ray {what} ({nodes}): listening on {', '.join(_shown(ip) for ip in ips)}: "
            f"{'; '.join(reaches)}")


def _node_ports(state: ClusterState) -> dict[str, Any]:
    found: dict[str, Any] = {"metrics": [], "agent": [], "dashboard": None, "gcs": set()}
    for node in state.nodes:
        socks = listening(node)
        if not socks:
            continue
        metrics = [node.ports.get("metrics-export-port"), node.ports.get("autoscaler-metrics"),
                   node.ports.get("dashboard-metrics")]
        ips = set().union(*(socks.get(p, set()) for p in metrics if p))
        if ips:
            found["metrics"].append((node.name, ips))
        agent = socks.get(node.ports.get("dashboard-agent-listen-port", -1))
        if agent:
            found["agent"].append((node.name, agent))
        if node.role == "head":
            found["dashboard"] = socks.get(node.ports.get("dashboard-port", 8265))
            found["gcs"] = socks.get(state.port, set())
    return found


def exposure_lines(address: str | None, folder: str | None = None) -> list[str]:
    """One line per Ray port group of the cluster at ``address``: reachable from where.

    Only a cluster recorded on this machine (``fleetlearn cluster up``, ``folder`` or
    the default folder) can be read; for any other a line says so.
    """
    if address is None:
        return ["Ray: no cluster (training starts an embedded Ray: no dashboard, no Jobs "
                "API, its metrics on 127.0.0.1)"]
    try:
        state = read_state(folder)
    except ClusterError:
        state = None
    if state is None or state.address != address:
        return [f"Ray at {address}: not started by 'fleetlearn cluster up' here; its "
                "dashboard, Jobs API and metrics ports are the deployment's to close"]
    ports = _node_ports(state)
    on = security_summary(state.env)
    gcs_ips = sorted(ports["gcs"]) or ["?"]
    lines = [f"Ray GCS {address} (listening on {', '.join(_shown(ip) for ip in gcs_ips)}: "
             f"{'; '.join(sorted({reach(ip) for ip in gcs_ips}))}): TLS "
             f"{'on' if on['tls'] else 'OFF'}, token {'on' if on['token'] else 'OFF'}"]
    if ports["dashboard"]:
        lines.append(_line("dashboard and Jobs API", [("head", ports["dashboard"])]))
    else:
        lines.append("Ray dashboard and Jobs API: not started (reachable from nowhere)")
    lines.append(_line("metrics", ports["metrics"]))
    lines.append(_line("dashboard agent HTTP", ports["agent"]))
    return lines
