"""A bounded back-off for clients that keep sending bad API keys."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["AuthThrottle"]


@dataclass
class _Client:
    failures: int = 0  # in a row, since the last success or quiet window
    last: float = 0.0
    blocked_until: float = 0.0


class AuthThrottle:
    """Counts failed authentications per client address and slows down guessers.

    After ``allowed`` failures in a row (none ``window_s`` apart), each further
    failure blocks the address for a doubling pause: 1 s, 2 s, 4 s, ... at most
    ``max_block_s``. A blocked address is answered at once (429 with ``Retry-After``)
    without its key being looked at. A success, or ``window_s`` without failures,
    forgives. At most ``max_clients`` addresses are remembered (the oldest are
    forgotten first), so a flood from many addresses cannot grow memory.

    Examples
    --------
    >>> t = AuthThrottle(allowed=2, max_block_s=8)
    >>> [t.failed("10.0.0.7", now=0.0) for _ in range(4)]
    [0.0, 0.0, 1.0, 2.0]
    >>> t.retry_after("10.0.0.7", now=1.0)
    1.0
    >>> t.succeeded("10.0.0.7"); t.retry_after("10.0.0.7", now=1.0)
    0.0
    """

    def __init__(self, *, allowed: int = 10, window_s: float = 60.0, max_block_s: float = 30.0,
                 max_clients: int = 10_000) -> None:
        self.allowed, self.window_s, self.max_block_s = allowed, window_s, max_block_s
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> float:
        """Seconds ``client`` must wait before its next try (0: it may try now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            state = self._clients.get(client)
            return max(0.0, state.blocked_until - now) if state is not None else 0.0

    def failed(self, client: str, now: float | None = None) -> float:
        """Record a failure of ``client``; return the pause it now has (0: none)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            state = self._clients.pop(client, None) or _Client()
            if now - state.last > self.window_s:
                state.failures = 0
            state.failures += 1
            state.last = now
            over = state.failures - self.allowed
            pause = min(2.0 ** (over - 1), self.max_block_s) if over > 0 else 0.0
            state.blocked_until = now + pause
            self._clients[client] = state
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
            return pause

    def succeeded(self, client: str) -> None:
        """Forget ``client``'s failures."""
        with self._lock:
            self._clients.pop(client, None)
