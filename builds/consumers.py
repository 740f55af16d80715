"""Live build pages: a websocket per build sends the backlog, then every new line and status.

No gap, no duplicate: the consumer joins the build's group *before* it reads the backlog, so
lines published meanwhile wait in its channel; anything with seq <= the last line sent is dropped.
The page (htmx ws extension) gets HTML fragments swapped out-of-band; `?format=json` gets JSON.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from builds import events
from builds.buildlog import lines_html
from builds.models import Build
from portal import counters

NOT_FOUND = 4404  # close code: the build does not exist or is outside the user's teams
BACKLOG_CHUNK = 500


class BuildConsumer(AsyncWebsocketConsumer):
    build_id: int
    group: str
    last_seq: int
    as_json: bool

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
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await sync_to_async(counters.add)(counters.WATCHERS)
        while True:
            lines = await self.backlog()
            if not lines:
                break
            await self.send_lines(lines)
        await self.send_status(await self.status())

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await sync_to_async(counters.add)(counters.WATCHERS, -1)

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
        await self.send_lines([line for line in lines if line["seq"] > self.last_seq])

    async def build_status(self, event: dict[str, Any]) -> None:
        await self.send_status({k: v for k, v in event.items() if k != "type"})

    # sending ------------------------------------------------------------------------------
    async def send_lines(self, lines: list[dict[str, Any]]) -> None:
        if not lines:
            return
        self.last_seq = lines[-1]["seq"]
        if self.as_json:
            await self.send_json({"type": "lines", "lines": lines})
        else:
            html = render_to_string(
                "builds/build_detail.html#ws_lines", {"lines_html": lines_html(lines)}
            )
            await self.send(text_data=html)

    async def send_status(self, status: dict[str, Any]) -> None:
        if self.as_json:
            await self.send_json({"type": "status", **status})
        else:
            html = await database_sync_to_async(self.render_status)(status)
            await self.send(text_data=html)

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))

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
        rows = Build.objects.get(pk=self.build_id).log_lines.filter(seq__gt=self.last_seq)
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
