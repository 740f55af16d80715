"""The Redis channel layer as the portal configures it: a live-log websocket sits idle between
BuildKit's lines, and an idle receive must keep waiting, not fail."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings


async def test_an_idle_receive_outlasts_the_servers_blocking_pop() -> None:
    """channels-redis waits in a 5 s BZPOPMIN; with redis-py 8's default 5 s socket timeout the
    read gave up first, the consumer raised and daphne closed the websocket with 1011."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    config: dict[str, Any] = {
        **settings.CHANNEL_LAYERS["default"]["CONFIG"],
        "prefix": f"test-{uuid.uuid4().hex}",
    }
    layer = RedisChannelLayer(**config)
    channel = await layer.new_channel()
    try:
        with pytest.raises(TimeoutError):  # ours: nothing came, and nothing failed meanwhile
            await asyncio.wait_for(layer.receive(channel), timeout=layer.brpop_timeout + 3)
    finally:
        await layer.close_pools()
