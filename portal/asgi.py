"""ASGI entry point: HTTP through Django, websockets through Channels with session or token auth."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from builds.routing import websocket_urlpatterns  # noqa: E402
from portal.wsauth import SameOrigin, TokenOrSessionAuth  # noqa: E402

websockets = URLRouter(websocket_urlpatterns)
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TokenOrSessionAuth(
            token_app=websockets,
            session_app=SameOrigin(AuthMiddlewareStack(websockets)),
        ),
    }
)
