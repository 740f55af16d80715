"""Websocket auth: API token (`Authorization: Bearer ...`) or the browser session.

A bearer token is not an ambient credential, so token clients skip the Origin check; browser
connections ride on the session cookie and must come from an allowed host (no cross-site use).
Token guesses count with the API's (portal/throttle.py): a locked-out address is told so and
closed with 4429, HTTP's 429 as an application close code (the consumer closes with 4404).
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from portal import throttle
from portal.apiview import bearer_token

LOCKED_OUT = 4429


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
