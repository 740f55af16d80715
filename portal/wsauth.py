"""Websocket auth: API token (`Authorization: Bearer ...`) or the browser session.

A bearer token is not an ambient credential, so token clients skip the Origin check; browser
connections ride on the session cookie and must come from an allowed host (no cross-site use).
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from portal.models import ApiToken


class TokenOrSessionAuth:
    def __init__(self, token_app: Any, session_app: Any) -> None:
        self.token_app = token_app
        self.session_app = session_app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers", []))
        scheme, _, raw = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer":
            user = await database_sync_to_async(ApiToken.authenticate)(raw.strip())
            scope = {**scope, "user": user or AnonymousUser()}
            return await self.token_app(scope, receive, send)
        return await self.session_app(scope, receive, send)
