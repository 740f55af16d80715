"""A small forward proxy on 127.0.0.1 that the docker CLI's registry calls go through.

`docker buildx imagetools` connects to more hosts than the reference names: the token realm a
registry's 401 points to, and blob redirects. The portal checks the reference before running the
CLI, but only a proxy sees the rest, and only a proxy can make the CLI connect to the address
that was checked (the CLI would look the name up again). Every connection through here goes
through `outbound.resolve` and then to the address it checked.

Hand-written because it is small (CONNECT for https, one absolute-form request for http) and
runs inside each portal and worker process on an ephemeral port; a proxy framework would add a
second event loop and a dependency for ~100 lines. Go's proxy support skips the proxy for
`localhost` and literal loopback addresses; those are refused before the CLI runs unless the
operator listed them, and a registry that points its token realm at a literal loopback address
is the one case this cannot see.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import socketserver
import threading
from urllib.parse import urlsplit

from portal import outbound

logger = logging.getLogger(__name__)
MAX_HEAD = 16 * 1024
CONNECT_TIMEOUT = 15
IDLE_TIMEOUT = 300

_lock = threading.Lock()
_server: socketserver.ThreadingTCPServer | None = None


def proxy_env() -> dict[str, str]:
    """Environment that sends a Go program's HTTP(S) traffic through the proxy."""
    url = f"http://127.0.0.1:{_port()}"
    return {
        "HTTPS_PROXY": url,
        "HTTP_PROXY": url,
        "https_proxy": url,
        "http_proxy": url,
        "NO_PROXY": "",
        "no_proxy": "",
    }


def _port() -> int:
    global _server
    with _lock:
        if _server is None:
            server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name="egress", daemon=True).start()
            _server = server
        return int(_server.server_address[1])


def _answer(sock: socket.socket, status: str) -> None:
    with contextlib.suppress(OSError):
        head = f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode())


class _Handler(socketserver.BaseRequestHandler):
    request: socket.socket

    def handle(self) -> None:
        client = self.request
        client.settimeout(CONNECT_TIMEOUT)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk or len(head) > MAX_HEAD:
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, _, remainder = lines[0].partition(" ")
        target = remainder.rpartition(" ")[0]
        try:
            if method == "CONNECT":
                host, port = outbound.split_host_port(target)
                first = rest
            else:  # absolute-form request for a plain-http registry
                parts = urlsplit(target)
                if parts.scheme != "http" or not parts.hostname:
                    raise ValueError(target)
                host, port = parts.hostname, parts.port
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                headers = [
                    line
                    for line in lines[1:]
                    if not line.lower().startswith(("proxy-", "connection:"))
                ]
                first = (
                    "\r\n".join([f"{method} {path} HTTP/1.1", *headers, "Connection: close"])
                    + "\r\n\r\n"
                ).encode("latin-1") + rest
            where = outbound.resolve(host, port or (443 if method == "CONNECT" else 80))
        except (ValueError, outbound.Refused):
            logger.warning("egress: refused %s %s", method, target[:200])
            _answer(client, "403 Forbidden")
            return
        try:
            upstream = socket.create_connection((where.address, where.port), CONNECT_TIMEOUT)
        except OSError:
            _answer(client, "502 Bad Gateway")
            return
        with upstream:
            client.settimeout(IDLE_TIMEOUT)
            upstream.settimeout(IDLE_TIMEOUT)
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            if first:
                upstream.sendall(first)
            _splice(client, upstream)


def _splice(a: socket.socket, b: socket.socket) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        while True:
            ready = selector.select(IDLE_TIMEOUT)
            if not ready:
                return
            for key, _ in ready:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = source.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                except OSError:
                    return
