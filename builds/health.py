"""Liveness and readiness for load balancers and orchestrators, no login, plain JSON.

- `/healthz`: the process answers (nothing else is asked, so a slow database never gets a
  healthy process restarted).
- `/readyz`: the database answers, the channel layer carries a message, and at least one
  enabled builder node passed its last check; 503 names each failing part, never why (an
  address or an error text is for the operator's logs, not for whoever can reach the port).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from builds.models import BuilderNode

log = logging.getLogger(__name__)
LAYER_TIMEOUT = 2.0  # seconds; the Redis layer's own socket waits without a bound


def _database() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


async def _send_to_nobody() -> None:
    """A group send to a group with no members: a full round trip to the layer (a Lua script
    on Redis) that leaves no message behind, however often a probe asks."""
    layer = get_channel_layer()
    assert layer is not None
    await asyncio.wait_for(
        layer.group_send(f"readyz-{uuid.uuid4().hex}", {"type": "readyz"}), LAYER_TIMEOUT
    )


def _channel_layer() -> bool:
    async_to_sync(_send_to_nobody)()
    return True


def _builder_node() -> bool:
    return BuilderNode.objects.filter(enabled=True, reachable=True).exists()


CHECKS = {"database": _database, "channel_layer": _channel_layer, "builder_node": _builder_node}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    failing = []
    for name, check in CHECKS.items():
        try:
            ok = check()
        except Exception:  # any failure of a part is that part not ready, not a 500
            log.exception("readiness: %s failed", name)
            ok = False
        if not ok:
            failing.append(name)
    if failing:
        return JsonResponse({"status": "unavailable", "failing": failing}, status=503)
    return JsonResponse({"status": "ok"})
