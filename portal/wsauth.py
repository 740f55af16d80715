"""Websocket auth: API token (`Authorization: Bearer ...`) or the browser session.

A bearer token is not an ambient credential, so token clients skip the Origin check; browser
connections ride on the session cookie and must come from the portal's own pages (SameOrigin).
Token guesses count with the API's (portal/throttle.py): a locked-out address is told so and
closed with 4429, HTTP's 429 as an application close code (the consumer closes with 4404).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host

from portal import throttle
from portal.apiview import bearer_token

LOCKED_OUT = 4429

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]  # scheme, host name (lower case), port


class TokenOrSessionAuth:
    def __init__(self, token_app: Any, session_app: Any) -> None:
        self.token_app = token_app
        self.session_app = session_app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers", []))
        raw = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        if raw is None:
            return await self.session_app(scope, receive, send)
        client = scope.get("client") or [None]
        address = throttle.client_address(client[0])
        user, wait = await database_sync_to_async(throttle.token_user)(raw, address)
        if wait:
            return await refuse(receive, send, wait)
        return await self.token_app({**scope, "user": user or AnonymousUser()}, receive, send)


async def refuse(receive: Any, send: Any, wait: int) -> None:
    """Accept, then say why and close: a refused handshake would reach the client as a bare
    403, and daphne drops a close frame's reason, so the wait goes in a message first."""
    if (await receive())["type"] != "websocket.connect":
        return
    text = throttle.TOKEN_REFUSAL.format(wait=wait)
    await send({"type": "websocket.accept"})
    message = {"type": "error", "error": text, "retry_after": wait}
    await send({"type": "websocket.send", "text": json.dumps(message)})
    await send({"type": "websocket.close", "code": LOCKED_OUT, "reason": text})


class SameOrigin:
    """Lets a websocket through only when its Origin is the page's own origin (scheme, host and
    port, from the connection's scheme and Host header) or one of CSRF_TRUSTED_ORIGINS, exactly;
    anything else is closed before accept, which the server answers with 403.

    channels' AllowedHostsOriginValidator compares host names only, but the session cookie is
    sent to every port of the host: a page on another port (another app, anyone's dev server)
    could open the live log as the user. Settings are read per connection (tests change them).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if allowed_origin(scope):
            return await self.app(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def allowed_origin(scope: dict[str, Any]) -> bool:
    headers = {name: value.decode("latin-1") for name, value in scope.get("headers", [])}
    origin = parse_origin(headers.get(b"origin", ""))
    host = headers.get(b"host", "")
    if origin is None or not _allowed_host(host):
        return False
    own = parse_origin(f"{_page_scheme(scope, headers)}://{host}")
    trusted = {parse_origin(value) for value in settings.CSRF_TRUSTED_ORIGINS}
    return origin == own or origin in trusted


def parse_origin(value: str) -> Origin | None:
    """`scheme://host[:port]` normalised (lower case, default port), None for anything else
    ("null", paths, user info)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _allowed_host(host: str) -> bool:
    """Django refuses other Host headers for HTTP (DNS rebinding); the websocket does too."""
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # as HttpRequest.get_host()
    return bool(domain) and validate_host(domain, allowed)


def _page_scheme(scope: dict[str, Any], headers: dict[bytes, str]) -> str:
    """The scheme of the page that opened the socket: wss is https; behind a TLS proxy the
    header SECURE_PROXY_SSL_HEADER names says so, as request.is_secure() reads it."""
    if scope.get("scheme") == "wss":
        return "https"
    if settings.SECURE_PROXY_SSL_HEADER:
        name, secure = settings.SECURE_PROXY_SSL_HEADER
        header = name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        if headers.get(header, "").split(",")[0].strip() == secure:
            return "https"
    return "http"
