"""One channel-layer subscription per build and server process, shared by its watchers.

channels-redis delivers a group message once per member channel, and a server process pops its
channels' messages one at a time: with 200 browsers on one build, every batch of lines the
worker published became 200 Redis messages for the same process. A hub joins the build's group
once per process and hands each event to the local watchers' queues, so an event costs Redis one
message per server process, whatever the crowd.

A watcher's queue is bounded: a client too slow to keep up loses live events, never the server's
memory; the consumer notices the gap in `seq` and reads the missing lines from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)

QUEUE_EVENTS = 1000


class Hub:
    def __init__(self, layer: Any, group: str) -> None:
        self.layer = layer
        self.group = group
        self.queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self.channel = ""
        self.joined = asyncio.ensure_future(self._join())
        self.pump: asyncio.Task[None] | None = None

    async def _join(self) -> None:
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        self.pump = asyncio.create_task(self._deliver())

    async def _deliver(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except Exception:
                # Redis restarting, say: the group keeps the events meanwhile; try again.
                log.exception("receiving %s for %s", self.channel, self.group)
                await asyncio.sleep(1)
                continue
            for queue in list(self.queues):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(event)

    async def close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
        with contextlib.suppress(Exception):
            await self.joined
            await self.layer.group_discard(self.group, self.channel)


_hubs: dict[str, Hub] = {}


async def subscribe(layer: Any, group: str) -> asyncio.Queue[dict[str, Any]]:
    """A queue that receives every event published to `group` from now on (the group is
    joined before this returns, so a backlog read afterwards misses nothing)."""
    hub = _hubs.get(group)
    if hub is None:
        hub = _hubs[group] = Hub(layer, group)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_EVENTS)
    hub.queues.add(queue)
    try:
        await asyncio.shield(hub.joined)
    except BaseException:
        await unsubscribe(group, queue)
        raise
    return queue


async def unsubscribe(group: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
    hub = _hubs.get(group)
    if hub is None or queue not in hub.queues:
        return
    hub.queues.discard(queue)
    if not hub.queues:
        # Out of the table first: a watcher arriving meanwhile gets a hub (and channel) of its own.
        del _hubs[group]
        await hub.close()


def hubs() -> dict[str, int]:
    """Group -> local watchers (the tests read it)."""
    return {group: len(hub.queues) for group, hub in _hubs.items()}
