"""Sizes in and out, and one status record per node (Ray's view joined with ours)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psutil

from fleetlearn.cluster._state import ClusterState, NodeRecord
from fleetlearn.cluster._view import ClusterView, NodeView
from fleetlearn.errors import CertificateError, ConfigError
from fleetlearn.security import cert_status, security_summary

__all__ = ["security_record", "parse_size", "format_size", "status_record", "node_rows"]

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6,
          "mib": 2**20, "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12,
          "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int, option: str = "memory_per_node") -> int:
    """``"2GiB"``, ``"512MiB"``, ``"1.5G"`` or a byte count → bytes.

    Examples
    --------
    >>> parse_size("2GiB")
    2147483648
    >>> parse_size("100MB")
    100000000
    """
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ConfigError(f"The '{option}' option must be a size like 2GiB, 512MiB or a "
                          f"number of bytes. Got {text!r} instead.")
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(n: float | None, short: bool = False) -> str:
    """Bytes as a binary size (``short``: one letter, no space, for tables).

    Examples
    --------
    >>> format_size(2 * 2**30)
    '2.0 GiB'
    >>> format_size(100 * 2**20, short=True)
    '100M'
    >>> format_size(0)
    '0 B'
    """
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            break
        value /= 1024
    if short:
        text = f"{value:.0f}" if unit == "B" or value >= 10 else f"{value:.1f}"
        return text + ("" if unit == "B" else unit[0])
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def _used_of(resource: dict[str, float]) -> str:
    return (f"{format_size(resource['used'], short=True)}/"
            f"{format_size(resource['total'], short=True)}")


def _rss(node: NodeRecord | None) -> int | None:
    """Resident memory of the node's process tree, when it runs here."""
    if node is None:
        return None
    try:
        root = psutil.Process(node.pid)
        if abs(root.create_time() - node.started_at) > 1.0:
            return None
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return None


def _match(view: ClusterView,
           state: ClusterState | None) -> list[tuple[NodeView, NodeRecord | None]]:
    records = list(state.nodes) if state else []
    out = []
    for node in view.nodes:
        rec = next((r for r in records if r.node_id and r.node_id == node.node_id), None)
        if rec is None and node.alive:
            rec = next((r for r in records if r.ip == node.ip), None)
        out.append((node, rec))
    return out


def status_record(view: ClusterView, state: ClusterState | None = None) -> dict[str, Any]:
    """The JSON of ``fleetlearn cluster status --json``: the view, every node with
    its recorded name, PID and resident memory when this machine started it."""
    data = view.to_dict()
    nodes = []
    for node, rec in _match(view, state):
        item = next(d for d in data["nodes"] if d["node_id"] == node.node_id)
        item["name"] = rec.name if rec else None
        item["pid"] = rec.pid if (rec and node.alive) else None
        item["rss"] = _rss(rec) if node.alive else None
        nodes.append(item)
    data["nodes"] = nodes
    if state is not None:
        data["dir"] = state.dir
        data["redis_url"] = state.redis_url
        data["security"] = security_record(state)
    return data


def security_record(state: ClusterState) -> dict[str, Any]:
    """TLS and token auth of a recorded cluster, and a warning per certificate that
    ends within 30 days (or cannot be read)."""
    on = security_summary(state.env)
    warnings = []
    if state.certs_dir:
        try:
            warnings = [f"{Path(c.file).name} {c.warning}" for c in cert_status(state.certs_dir)
                        if c.warning]
        except CertificateError as exc:
            warnings = [str(exc)]
    return {"tls": on["tls"], "token": on["token"], "certs_dir": state.certs_dir,
            "token_file": state.token_file, "warnings": warnings}


def node_rows(record: dict[str, Any]) -> list[dict[str, str]]:
    """Table rows for the terminal, one per node."""
    rows = []
    for n in record["nodes"]:
        res = n["resources"]
        rows.append({
            "ip": n["ip"],
            "id": n["node_id"][:8],
            "role": "head" if n["is_head"] else "worker",
            "state": "alive" if n["alive"] else "dead",
            "pid": str(n["pid"] or ""),
            "cpus": f"{res['cpus']['used']:g}/{res['cpus']['total']:g}",
            "memory": _used_of(res["memory"]),
            "objects": _used_of(res["object_store"]),
            "rss": format_size(n.get("rss"), short=True),
        })
    return rows
