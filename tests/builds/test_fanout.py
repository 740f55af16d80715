"""Many watchers of one build share one channel-layer subscription per server process, and a
watcher that falls behind still gets every line once, in order (from the database)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections

from builds import events, fanout
from builds.buildlog import BuildLog
from builds.models import Build
from portal.asgi import application
from portal.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_the_sync_threads_connection() -> Any:
    yield
    await sync_to_async(connections.close_all)()


async def _watch(build: Build, token: str, query: str = "format=json") -> WebsocketCommunicator:
    comm = WebsocketCommunicator(
        application,
        f"/ws/builds/{build.pk}/?{query}",
        headers=[(b"authorization", f"Bearer {token}".encode())],
    )
    assert (await comm.connect())[0]
    if "format=json" in query:
        while json.loads(await comm.receive_from(timeout=5))["type"] != "status":
            pass  # the backlog, then the status
    else:
        assert "platform" in await comm.receive_from(timeout=5)  # the status fragment
    return comm


async def _seqs(comm: WebsocketCommunicator, until: int) -> list[int]:
    seqs: list[int] = []
    while not seqs or seqs[-1] < until:
        message = json.loads(await comm.receive_from(timeout=5))
        if message["type"] == "lines":
            seqs += [line["seq"] for line in message["lines"]]
    return seqs


async def test_three_watchers_one_subscription_each_line_once(
    queued_build: Build, alice: Any
) -> None:
    _, token = await sync_to_async(ApiToken.issue)(alice, "t")
    group = events.build_group(queued_build.pk)
    watchers = [await _watch(queued_build, token) for _ in range(3)]
    assert fanout.hubs() == {group: 3}
    layer = get_channel_layer()
    if hasattr(layer, "groups"):  # the in-memory layer shows its members
        assert len(layer.groups[group]) == 1

    log = await sync_to_async(BuildLog)(queued_build)
    for n in range(1, 4):
        await sync_to_async(log.write)([(None, 0, f"line {n}")])
    for comm in watchers:
        assert await _seqs(comm, 3) == [1, 2, 3]
        assert await comm.receive_nothing(timeout=0.2)

    for comm in watchers[:2]:
        await comm.disconnect()
    assert fanout.hubs() == {group: 1}
    await sync_to_async(log.write)([(None, 0, "line 4")])
    assert await _seqs(watchers[2], 4) == [4]
    await watchers[2].disconnect()
    assert fanout.hubs() == {}
    if hasattr(layer, "groups"):
        assert not layer.groups.get(group)


async def test_the_json_and_html_texts_are_made_once_per_event(
    queued_build: Build, alice: Any
) -> None:
    _, token = await sync_to_async(ApiToken.issue)(alice, "t")
    as_json = [await _watch(queued_build, token) for _ in range(2)]
    as_html = [await _watch(queued_build, token, "") for _ in range(2)]
    log = await sync_to_async(BuildLog)(queued_build)
    await sync_to_async(log.write)([(None, 0, "<b>bold</b>")])
    json_texts = {await comm.receive_from(timeout=5) for comm in as_json}
    html_texts = {await comm.receive_from(timeout=5) for comm in as_html}
    assert len(json_texts) == 1 and json.loads(json_texts.pop())["lines"][0]["seq"] == 1
    [html] = html_texts
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>" not in html
    for comm in as_json + as_html:
        await comm.disconnect()


async def test_a_watcher_whose_queue_overflowed_reads_the_gap_from_the_database(
    queued_build: Build, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "QUEUE_EVENTS", 2)
    _, token = await sync_to_async(ApiToken.issue)(alice, "t")
    comm = await _watch(queued_build, token)
    group = events.build_group(queued_build.pk)
    [queue] = fanout._hubs[group].queues
    # The watcher's pump stalls (a client that reads nothing): its queue takes two events and
    # the rest are dropped.
    stalled = asyncio.Event()
    original_get = queue.get

    async def stalled_get() -> Any:
        await stalled.wait()
        return await original_get()

    monkeypatch.setattr(queue, "get", stalled_get)
    log = await sync_to_async(BuildLog)(queued_build)
    for n in range(1, 7):
        await sync_to_async(log.write)([(None, 0, f"line {n}")])
    await asyncio.sleep(0.3)  # every event reached the hub
    assert queue.qsize() == 2
    stalled.set()
    # The first event the pump had already taken, two queued ones, then the gap read back.
    await sync_to_async(log.write)([(None, 0, "line 7")])
    assert await _seqs(comm, 7) == [1, 2, 3, 4, 5, 6, 7]
    await comm.disconnect()
