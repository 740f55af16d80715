"""Guessing: failed logins and bad API tokens are counted, and past a limit refused for a while.

A window opens at the first failure for an account or address and lasts its setting's seconds.
Once `limit` failures are in it, every attempt from there is refused, the right password or a
good token included (else the lockout would tell a guesser when they hit), until the window
closes; Retry-After counts down to that moment. A fixed window keeps the cache work to `add`
and `incr`, atomic on Redis; its price is that a guesser who waits for a window's end can try
up to twice the limit close together, though never more than the limit in one window.

The counts live in Django's cache (Redis when REDIS_URL is set), so every portal process sees
the same ones; a module global would let each process grant its own limit.

The address is REMOTE_ADDR as the server saw it; X-Forwarded-For is not read, since any client
can send one. Behind a proxy, operators must make the server set REMOTE_ADDR from the proxy's
header (e.g. daphne's --proxy-headers). IPv6 clients count per /64, the block one host
usually holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import math
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from portal import counters
from portal.models import ApiToken

log = logging.getLogger("crossport.security")

TOKEN_REFUSAL = "too many bad API tokens from this address; retry in {wait} seconds"


@dataclass(frozen=True)
class Taken:
    """One counted attempt: its window's count now, this one included, and the seconds left."""

    count: int
    key: str
    left: int

    def give_back(self) -> None:
        with contextlib.suppress(ValueError):  # the window has closed: nothing to give back
            cache.decr(self.key)


@dataclass(frozen=True)
class Rule:
    """At most `limit` failures per window for one name (an account, an address)."""

    scope: str
    limit_setting: str
    window_setting: str

    # Read when used, so a changed setting (or a test's) applies at once.
    @property
    def limit(self) -> int:
        return int(getattr(settings, self.limit_setting))

    @property
    def window(self) -> int:
        return int(getattr(settings, self.window_setting))

    def _key(self, name: str) -> str:
        # Hashed: any user name makes a short key of safe characters.
        return f"throttle:{self.scope}:{hashlib.sha256(name.encode()).hexdigest()[:32]}"

    def _left(self, start: float) -> int:
        return max(1, math.ceil(start + self.window - time.time()))

    def wait(self, name: str) -> int:
        """Seconds until `name` may try again; 0: it may now."""
        key = self._key(name)
        start = cache.get(key)
        if start is None or cache.get(f"{key}:{start}", 0) < self.limit:
            return 0
        return self._left(start)

    def take(self, name: str) -> Taken:
        """Count one attempt in `name`'s current window, opening one if none is open."""
        key = self._key(name)
        now = time.time()
        # The key holds the window's start; add() lets one process open it when several race.
        cache.add(key, now, timeout=self.window)
        start = cache.get(key, now)
        # The count is named after its window's start, so it can never carry over into the
        # next window, even though the two keys expire a moment apart.
        count = f"{key}:{start}"
        cache.add(count, 0, timeout=self.window)
        try:
            return Taken(int(cache.incr(count)), count, self._left(start))
        except ValueError:  # the window closed between add() and incr(): count in the next
            return self.take(name)

    def clear(self, name: str) -> None:
        cache.delete(self._key(name))


LOGIN_ACCOUNT = Rule(
    "login-account", "PORTAL_LOGIN_FAILURES_PER_USER", "PORTAL_LOGIN_WINDOW_SECONDS"
)
LOGIN_ADDRESS = Rule(
    "login-address", "PORTAL_LOGIN_FAILURES_PER_ADDRESS", "PORTAL_LOGIN_WINDOW_SECONDS"
)
TOKEN_ADDRESS = Rule(
    "token-address", "PORTAL_TOKEN_FAILURES_PER_ADDRESS", "PORTAL_TOKEN_WINDOW_SECONDS"
)


def client_address(remote_addr: str | None) -> str:
    """The name an address is counted under (see the module's note on proxies)."""
    try:
        ip = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return remote_addr or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _account(username: str) -> str:
    # As Django's login form reads it (NFKC), and case-blind, so "Alice" guesses count for alice.
    return unicodedata.normalize("NFKC", username).casefold()


def _shown(username: str) -> str:
    # repr() in the log: a user name with a newline cannot forge a log line.
    return repr(username[:150])


# --- logins --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginAttempt:
    """A login attempt, counted before its password is checked: else parallel guesses could all
    pass a check made before any of them had failed. One that was no wrong password is given
    back."""

    username: str
    address: str
    wait: int = 0  # > 0: refused for this many seconds, and nothing counted
    taken: tuple[Taken, ...] = ()

    def failed(self) -> None:
        account, address = self.taken
        counters.add(counters.LOGIN_FAILURES)
        log.warning(
            "failed login for %s from %s (%d for the account, %d from the address in this window)",
            _shown(self.username),
            self.address,
            account.count,
            address.count,
        )

    def void(self) -> None:
        """No password was judged wrong (say, a field was missing)."""
        for taken in self.taken:
            taken.give_back()

    def succeeded(self) -> None:
        """The owner knew the password: their account's count starts again. The address's
        count stays, or a guesser could wash their address clean with a login of their own."""
        self.void()
        LOGIN_ACCOUNT.clear(_account(self.username))


def login_attempt(username: str, address: str) -> LoginAttempt:
    """Let an attempt in and count it, or refuse it (`wait`) while the account or the address
    is locked out."""
    rules = ((LOGIN_ACCOUNT, _account(username)), (LOGIN_ADDRESS, address))
    # Reads first, so a flood of refused attempts costs no writes.
    wait = max(rule.wait(name) for rule, name in rules)
    if not wait:
        taken = tuple(rule.take(name) for rule, name in rules)
        over = [t.left for (rule, _), t in zip(rules, taken, strict=True) if t.count > rule.limit]
        if not over:
            return LoginAttempt(username, address, taken=taken)
        for t in taken:  # a parallel attempt took the last place
            t.give_back()
        wait = max(over)
    log.info("login refused for %s from %s: locked out for %ds", _shown(username), address, wait)
    return LoginAttempt(username, address, wait=wait)


# --- API tokens ----------------------------------------------------------------------------


def token_user(raw: str | None, address: str) -> tuple[Any | None, int]:
    """The user a bearer token names (None for none or a bad one), and the seconds the address
    must still wait (then the token is not looked at). `raw` None: no bearer token was sent,
    which is no guess. Unlike a password, a token (256 random bits) is beyond guessing: this
    count is against noise and abuse, so a bad token is counted after it is judged and a good
    one costs two reads (parallel requests may overshoot the limit by those in flight)."""
    if wait := TOKEN_ADDRESS.wait(address):
        log.info("API token refused from %s: locked out for %ds", address, wait)
        return None, wait
    if raw is None:
        return None, 0
    user = ApiToken.authenticate(raw)
    if user is None:
        count = TOKEN_ADDRESS.take(address).count
        counters.add(counters.TOKEN_FAILURES)
        log.warning("bad API token from %s (%d in this window)", address, count)
    return user, 0
