"""The build websocket: access check, backlog then live lines, no gap, no duplicate."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from builds import events
from builds.buildlog import BuildLog
from builds.models import Build, LogLine
from portal.asgi import application
from portal.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_the_sync_threads_connection() -> Any:
    """The consumer reaches the database from asgiref's sync thread; close that connection
    after each test, or dropping the PostgreSQL test database finds it still in use."""
    yield
    await sync_to_async(connections.close_all)()


def _communicator(build: Build, token: str, query: str = "format=json") -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application,
        f"/ws/builds/{build.pk}/?{query}",
        headers=[(b"authorization", f"Bearer {token}".encode())],
    )


async def _receive(comm: WebsocketCommunicator) -> dict[str, Any]:
    return json.loads(await comm.receive_from(timeout=5))


async def test_backlog_then_live_without_gap_or_duplicate(queued_build: Build, alice: Any) -> None:
    _, token = await sync_to_async(ApiToken.issue)(alice, "t")
    log = await sync_to_async(BuildLog)(queued_build)
    await sync_to_async(log.write)(
        [(None, 0, "one"), ("linux/arm64", 1, "two"), (None, 1, "three")]
    )

    comm = _communicator(queued_build, token)
    connected, _ = await comm.connect()
    assert connected
    first = await _receive(comm)
    assert first["type"] == "lines"
    assert [(line["seq"], line["text"]) for line in first["lines"]] == [
        (1, "one"),
        (2, "two"),
        (3, "three"),
    ]
    assert first["lines"][1]["platform"] == "linux/arm64"
    status = await _receive(comm)
    assert status["type"] == "status" and status["state"] == "queued"

    await sync_to_async(log.write)([(None, 1, "four")])
    live = await _receive(comm)
    assert [line["seq"] for line in live["lines"]] == [4]

    # A line published twice (e.g. a redelivered event) is not sent twice.
    rows = await sync_to_async(list)(LogLine.objects.filter(build=queued_build, seq__lte=4))
    await sync_to_async(events.publish_lines)(queued_build.pk, rows)
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


async def test_reconnect_after_a_seq_gets_only_newer_lines(queued_build: Build, alice: Any) -> None:
    _, token = await sync_to_async(ApiToken.issue)(alice, "t")
    log = await sync_to_async(BuildLog)(queued_build)
    await sync_to_async(log.write)([(None, 0, f"line {n}") for n in range(1, 6)])
    comm = _communicator(queued_build, token, "format=json&after=3")
    assert (await comm.connect())[0]
    first = await _receive(comm)
    assert [line["seq"] for line in first["lines"]] == [4, 5]
    await comm.disconnect()


async def test_html_fragments_for_htmx(queued_build: Build, alice: Any) -> None:
    _, token = await sync_to_async(ApiToken.issue)(alice, "t")
    log = await sync_to_async(BuildLog)(queued_build)
    await sync_to_async(log.write)([("linux/arm/v7", 1, "<script>alert(1)</script>")])
    comm = _communicator(queued_build, token, "")
    assert (await comm.connect())[0]
    html = await comm.receive_from(timeout=5)
    assert 'id="log" hx-swap-oob="beforeend"' in html
    assert 'data-seq="1"' in html and "[linux/arm/v7]" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    status = await comm.receive_from(timeout=5)
    assert 'id="build-status" hx-swap-oob="true"' in status and 'data-state="queued"' in status
    assert "localhost:5000/alpha/hello:latest" in status
    # No CSRF token can be rendered here (no request): the cancel button posts through htmx,
    # which sends the token from <body hx-headers>.
    assert f'hx-post="/builds/{queued_build.pk}/cancel"' in status and "<form" not in status
    await comm.disconnect()


async def test_outside_the_team_the_socket_answers_not_found(
    queued_build: Build, charlie: Any
) -> None:
    _, token = await sync_to_async(ApiToken.issue)(charlie, "t")
    comm = _communicator(queued_build, token)
    connected, _ = await comm.connect()
    assert connected
    closed = await comm.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4404}


async def test_without_credentials_the_socket_answers_not_found(queued_build: Build) -> None:
    comm = _communicator(queued_build, "cp_wrong")
    await comm.connect()
    closed = await comm.receive_output(timeout=5)
    assert closed["code"] == 4404


async def test_open_sockets_are_counted_for_the_metrics(queued_build: Build, alice: Any) -> None:
    from portal import counters

    def watchers() -> int:
        return counters.read()[counters.WATCHERS]

    _, token = await sync_to_async(ApiToken.issue)(alice, "t")
    before = await sync_to_async(watchers)()
    first, second = _communicator(queued_build, token), _communicator(queued_build, token)
    assert (await first.connect())[0] and (await second.connect())[0]
    await _receive(first)  # the consumer counts once the socket is accepted and joined
    await _receive(second)
    assert await sync_to_async(watchers)() == before + 2
    await first.disconnect()
    await second.disconnect()
    assert await sync_to_async(watchers)() == before
    refused = _communicator(queued_build, "not-a-token")  # never joined: never counted
    await refused.connect()
    await refused.disconnect()
    assert await sync_to_async(watchers)() == before
