"""Browser websockets ride on the session cookie, which any page on the same host name sends
(cookies are not bound to a port or scheme): the Origin must be the page's own origin, scheme,
host and port, or a trusted one. Token clients carry no ambient credential and are not checked."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client

from builds.models import Build
from portal.asgi import application
from portal.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

HOST = "127.0.0.1:8000"


@pytest.fixture(autouse=True)
async def _close_the_sync_threads_connection() -> Any:
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def session_cookie(alice: Any) -> str:
    client = Client()
    client.force_login(alice)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def _connect(
    build: Build,
    origin: str | None,
    *,
    cookie: str = "",
    host: str = HOST,
    scheme: str = "ws",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> tuple[bool, WebsocketCommunicator]:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    comm = WebsocketCommunicator(
        application, f"/ws/builds/{build.pk}/?format=json", headers=headers + (extra or [])
    )
    # The scope is read when the application first runs, which is at connect().
    comm.scope["scheme"] = scheme
    connected, _ = await comm.connect(timeout=5)
    return connected, comm


async def _gets_the_build(comm: WebsocketCommunicator) -> None:
    """Accepted as the session's user: the consumer's access check passed and it streams."""
    first = await comm.receive_json_from(timeout=5)
    assert first["type"] == "status"
    await comm.disconnect()


async def test_the_pages_own_origin_is_accepted(queued_build: Build, session_cookie: str) -> None:
    connected, comm = await _connect(queued_build, f"http://{HOST}", cookie=session_cookie)
    assert connected
    await _gets_the_build(comm)


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9000",  # another port of the same host: another site
        "http://127.0.0.1",  # port 80
        "https://127.0.0.1:8000",  # another scheme
        "http://localhost:8000",  # another (allowed) host name
        "http://evil.example:8000",
        "null",  # opaque origins (sandboxed frames, file://)
        "http://127.0.0.1:8000@evil.example",
        "",
    ],
)
async def test_other_origins_are_refused_before_accept(
    queued_build: Build, session_cookie: str, origin: str
) -> None:
    connected, comm = await _connect(queued_build, origin, cookie=session_cookie)
    assert not connected  # closed before accept: the server answers the handshake with 403
    await comm.disconnect()


async def test_without_origin_a_session_socket_is_refused(
    queued_build: Build, session_cookie: str
) -> None:
    connected, comm = await _connect(queued_build, None, cookie=session_cookie)
    assert not connected
    await comm.disconnect()


async def test_a_host_outside_allowed_hosts_is_refused(
    queued_build: Build, session_cookie: str
) -> None:
    """DNS rebinding: a page at evil.example:8000 resolved to the portal is "same origin"
    with itself; Django refuses such a Host for HTTP, and so does the websocket."""
    connected, comm = await _connect(
        queued_build, "http://evil.example:8000", cookie=session_cookie, host="evil.example:8000"
    )
    assert not connected
    await comm.disconnect()


async def test_default_ports_and_case_compare_equal(
    queued_build: Build, session_cookie: str
) -> None:
    connected, comm = await _connect(
        queued_build, "HTTP://LOCALHOST:80", cookie=session_cookie, host="localhost"
    )
    assert connected
    await _gets_the_build(comm)


async def test_wss_is_the_https_page(queued_build: Build, session_cookie: str) -> None:
    connected, comm = await _connect(
        queued_build, "https://localhost", cookie=session_cookie, host="localhost", scheme="wss"
    )
    assert connected
    await _gets_the_build(comm)
    connected, comm = await _connect(
        queued_build, "http://localhost", cookie=session_cookie, host="localhost", scheme="wss"
    )
    assert not connected
    await comm.disconnect()


async def test_behind_a_tls_proxy_the_proxy_header_gives_the_scheme(
    queued_build: Build, session_cookie: str, settings: Any
) -> None:
    """As request.is_secure() does for HTTP: SECURE_PROXY_SSL_HEADER names the header the
    proxy sets; without that setting the header is not believed."""
    forwarded = [(b"x-forwarded-proto", b"https")]
    connected, comm = await _connect(
        queued_build, "https://localhost", cookie=session_cookie, host="localhost", extra=forwarded
    )
    assert not connected
    await comm.disconnect()
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    connected, comm = await _connect(
        queued_build, "https://localhost", cookie=session_cookie, host="localhost", extra=forwarded
    )
    assert connected
    await _gets_the_build(comm)


async def test_trusted_origins_are_accepted_exactly(
    queued_build: Build, session_cookie: str, settings: Any
) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://crossport.example.com"]
    connected, comm = await _connect(
        queued_build, "https://crossport.example.com", cookie=session_cookie
    )
    assert connected
    await _gets_the_build(comm)
    for other in ("https://crossport.example.com:8443", "http://crossport.example.com"):
        connected, comm = await _connect(queued_build, other, cookie=session_cookie)
        assert not connected, other
        await comm.disconnect()


async def test_token_sockets_need_no_origin(queued_build: Build, alice: Any) -> None:
    _, token = await sync_to_async(ApiToken.issue)(alice, "t")
    bearer = [(b"authorization", f"Bearer {token}".encode())]
    connected, comm = await _connect(queued_build, "http://evil.example", extra=bearer)
    assert connected
    await _gets_the_build(comm)
