"""The one module that owns websocket group names and event shapes.

Workers publish with `publish_lines` / `publish_status`; `consumers.BuildConsumer` handles the
event types below. In the embedded configuration the worker is a thread of the server process and
the in-memory channel layer lives on the server's event loop, so events are handed to that loop
(asyncio queues are not thread-safe); otherwise `async_to_sync` talks to Redis directly.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

if TYPE_CHECKING:
    from builds.models import Build, LogLine

log = logging.getLogger(__name__)

LINES = "build.lines"
STATUS = "build.status"

_server_loop: asyncio.AbstractEventLoop | None = None


# Builds were queued in this process: its worker (the embedded one, in `manage.py serve`) need
# not wait for its next poll. Separate workers still find them by polling the database.
QUEUED = threading.Event()


def wake_workers() -> None:
    QUEUED.set()


def set_server_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Route events through the server's loop (embedded worker thread)."""
    global _server_loop
    _server_loop = loop


def build_group(build_id: int) -> str:
    return f"build.{build_id}"


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if _server_loop is not None and _server_loop.is_running():
            future = asyncio.run_coroutine_threadsafe(
                layer.group_send(group, message), _server_loop
            )
            future.result(timeout=10)
        else:
            async_to_sync(layer.group_send)(group, message)
    except Exception:
        # Live updates are best effort: the database holds every line and the page reloads the
        # backlog, so a lost event must never fail a build.
        log.exception("could not publish %s to %s", message.get("type"), group)


def publish_lines(build_id: int, lines: Iterable[LogLine]) -> None:
    payload = [line.to_api() for line in lines]
    if payload:
        _send(build_group(build_id), {"type": LINES, "lines": payload})


def status_payload(build: Build) -> dict[str, Any]:
    return {
        "state": build.state,
        "reason": build.reason,
        "reason_line": build.reason_line,
        "digest": build.digest,
        "platforms": [
            {
                "platform": p.platform,
                "state": p.state,
                "done": p.done,
                "total": p.total,
                "percent": p.percent,
                "digest": p.digest,
                "failed_step": p.failed_step,
                "step": p.step,
                "started_at": p.started_at.isoformat() if p.started_at else None,
                "size_bytes": p.size_bytes,
            }
            for p in build.platform_states.all()
        ],
    }


def publish_status(build: Build) -> None:
    _send(build_group(build.pk), {"type": STATUS, **status_payload(build)})
