"""Counts every portal process adds to and `/metrics` reads (builds/metrics.py): login and token
failures, open build websockets. They live in the Django cache, which is Redis when there are
several processes and memory in the embedded one, so they need no per-process files. They never
expire; a counter a Redis restart resets reads as a counter reset, which Prometheus's rate()
handles. A process killed with sockets open leaves the watchers gauge high by those sockets."""

from __future__ import annotations

from django.core.cache import cache

PREFIX = "metrics:"
LOGIN_FAILURES = "login_failures"
TOKEN_FAILURES = "token_failures"
WATCHERS = "websocket_watchers"
NAMES = (LOGIN_FAILURES, TOKEN_FAILURES, WATCHERS)


def add(name: str, amount: int = 1) -> None:
    key = PREFIX + name
    cache.add(key, 0, timeout=None)
    try:
        cache.incr(key, amount)
    except ValueError:  # evicted between add and incr
        cache.add(key, max(amount, 0), timeout=None)


def read() -> dict[str, int]:
    values = cache.get_many([PREFIX + name for name in NAMES])
    return {name: max(int(values.get(PREFIX + name, 0)), 0) for name in NAMES}
