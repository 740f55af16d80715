from __future__ import annotations

from django.urls import path

from builds.consumers import BuildConsumer

websocket_urlpatterns = [
    path("ws/builds/<int:pk>/", BuildConsumer.as_asgi()),
]
