"""Loaded by every Python process of a ``fleetlearn cluster`` node (its PYTHONPATH
starts with this folder): Ray binds its Prometheus metrics servers (the dashboard
agent's ``--metrics-export-port``, the head's autoscaler and dashboard metrics) to
every interface unless the node's IP is exactly 127.0.0.1, and has no option to say
otherwise. A bind of a port named in ``FLEETLEARN_LOOPBACK_PORTS`` to the wildcard
address goes to loopback instead; every other bind is left alone.
"""

import os

_PORTS = {int(p) for p in os.environ.get("FLEETLEARN_LOOPBACK_PORTS", "").split(",")
          if p.strip().isdigit()}

if _PORTS:
    import socket

    _bind = socket.socket.bind

    def _loopback_bind(self, address):  # type: ignore[no-untyped-def]
        if (isinstance(address, tuple) and len(address) >= 2 and address[1] in _PORTS
                and address[0] in ("", "0.0.0.0", "::")):
            host = "::1" if self.family == socket.AF_INET6 else "127.0.0.1"
            address = (host, *address[1:])
        return _bind(self, address)

    socket.socket.bind = _loopback_bind
