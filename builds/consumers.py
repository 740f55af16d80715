"""Live build pages: a websocket per build sends the backlog, then every new line and status.

No gap, no duplicate: the consumer subscribes to the build's events (`builds.fanout`, one
channel-layer subscription per process) *before* it reads the backlog, so lines published
meanwhile wait in its queue; anything with seq <= the last line sent is dropped, and a gap (a
queue that overflowed) is filled from the database.
The page (htmx ws extension) gets HTML fragments swapped out-of-band; `?format=json` gets JSON.
An event's JSON text and HTML are made once and shared by every watcher that is caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from builds import events, fanout
from builds.buildlog import lines_html
from builds.models import Build, LogLine
from portal import counters

log = logging.getLogger(__name__)

NOT_FOUND = 4404  # close code: the build does not exist or is outside the user's teams
BACKLOG_CHUNK = 500


class BuildConsumer(AsyncWebsocketConsumer):
    build_id: int
    group: str
    last_seq: int
    as_json: bool
    inbox: asyncio.Queue[dict[str, Any]] | None = None
    pump: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.build_id = int(self.scope["url_route"]["kwargs"]["pk"])
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.as_json = query.get("format", [""])[0] == "json"
        after = query.get("after", ["0"])[0]
        self.last_seq = int(after) if after.isascii() and after.isdecimal() else 0
        self.group = ""
        if not await self.allowed():
            await self.accept()
            await self.close(code=NOT_FOUND)
            return
        self.group = events.build_group(self.build_id)
        self.inbox = await fanout.subscribe(self.channel_layer, self.group)
        await self.accept()
        await sync_to_async(counters.add)(counters.WATCHERS)
        while True:
            lines = await self.backlog()
            await self.send_lines(lines)
            if len(lines) < BACKLOG_CHUNK:
                break
        await self.send_status(await self.status())
        self.pump = asyncio.create_task(self.follow(self.inbox))

    async def disconnect(self, code: int) -> None:
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pump
        if self.inbox is not None:
            await fanout.unsubscribe(self.group, self.inbox)
            await sync_to_async(counters.add)(counters.WATCHERS, -1)

    async def follow(self, inbox: asyncio.Queue[dict[str, Any]]) -> None:
        """The build's events, one after the other, for as long as the client stays."""
        handlers = {events.LINES: self.build_lines, events.STATUS: self.build_status}
        while True:
            event = await inbox.get()
            try:
                await handlers[event["type"]](event)
            except Exception:
                log.exception("websocket for build %s: event %s", self.build_id, event["type"])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Clients only listen; anything they send is ignored."""

    # group events -------------------------------------------------------------------------
    async def build_lines(self, event: dict[str, Any]) -> None:
        lines = [line for line in event["lines"] if line["seq"] > self.last_seq]
        if lines and lines[0]["seq"] > self.last_seq + 1:
            # The channel layer dropped events (full channel, expiry): fill the gap from the
            # database so the client still sees every line once, in order.
            while missing := await self.backlog(before=lines[0]["seq"]):
                await self.send_lines(missing)
        fresh = [line for line in lines if line["seq"] > self.last_seq]
        if fresh and len(fresh) == len(event["lines"]):
            await self.send_lines(fresh, shared=event)
        else:
            await self.send_lines(fresh)

    async def build_status(self, event: dict[str, Any]) -> None:
        status = {k: v for k, v in event.items() if k != "type" and not k.startswith("text.")}
        await self.send_status(status, shared=event)

    # sending ------------------------------------------------------------------------------
    async def send_lines(
        self, lines: list[dict[str, Any]], shared: dict[str, Any] | None = None
    ) -> None:
        """Send `lines`; `shared` is the event they all came from (see `send_shared`)."""
        if not lines:
            return
        self.last_seq = lines[-1]["seq"]

        async def text() -> str:
            if self.as_json:
                return json.dumps({"type": "lines", "lines": lines})
            return render_to_string(
                "builds/build_detail.html#ws_lines", {"lines_html": lines_html(lines)}
            )

        await self.send_shared(text, shared)

    async def send_status(
        self, status: dict[str, Any], shared: dict[str, Any] | None = None
    ) -> None:
        async def text() -> str:
            if self.as_json:
                return json.dumps({"type": "status", **status})
            return str(await database_sync_to_async(self.render_status)(status))

        await self.send_shared(text, shared)

    async def send_shared(
        self, make: Callable[[], Awaitable[str]], shared: dict[str, Any] | None
    ) -> None:
        """Send the text `make` returns; with `shared` (a group event every watcher of this
        process receives), it is made once per format and kept on the event."""
        key = "text.json" if self.as_json else "text.html"
        text = shared.get(key) if shared is not None else None
        if text is None:
            text = await make()
            if shared is not None:
                shared[key] = text
        await self.send(text_data=text)

    # database -----------------------------------------------------------------------------
    @database_sync_to_async
    def allowed(self) -> bool:
        from portal.access import teams_for

        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return False
        return Build.objects.filter(pk=self.build_id, project__team__in=teams_for(user)).exists()

    @database_sync_to_async
    def backlog(self, before: int | None = None) -> list[dict[str, Any]]:
        rows = LogLine.objects.filter(build_id=self.build_id, seq__gt=self.last_seq)
        if before is not None:
            rows = rows.filter(seq__lt=before)
        return [line.to_api() for line in rows.order_by("seq")[:BACKLOG_CHUNK]]

    @database_sync_to_async
    def status(self) -> dict[str, Any]:
        return events.status_payload(Build.objects.get(pk=self.build_id))

    def render_status(self, status: dict[str, Any]) -> str:
        build = Build.objects.select_related("project").get(pk=self.build_id)
        return render_to_string(
            "builds/build_detail.html#ws_status",
            {
                "build": build,
                "status": status,
                "platforms": build.platform_states.select_related("node"),
                "manifest": build.manifests.order_by("pk").first(),
            },
        )
