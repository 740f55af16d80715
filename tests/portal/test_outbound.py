"""The outbound guard: what a team member names is never a way into the portal's own network.

Every test that could make the portal connect listens on 127.0.0.1 itself and checks that no
connection arrived; nothing here sends traffic anywhere else (literal public addresses are only
classified, never contacted).
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builds import egress, gitsource, registry
from builds.gitsource import SourceError
from portal import outbound
from portal.outbound import REFUSED, Refused

# Every spelling of an internal address the issue lists, and more.
INTERNAL = [
    "localhost",
    "LOCALHOST",
    "localhost.",
    "127.0.0.1",
    "127.1",
    "127.255.255.254",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "0.0.0.0",
    "0",
    "::1",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::",
    "169.254.169.254",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "100.64.0.1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "255.255.255.255",
    "240.0.0.1",
    "198.18.0.1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.fixture
def listener() -> Iterator[tuple[int, list[socket.socket]]]:
    """A port on 127.0.0.1 that records every connection made to it (and hangs up at once, so
    a client that got through fails fast)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("host", INTERNAL)
def test_every_spelling_of_an_internal_address_is_refused(host: str) -> None:
    with pytest.raises(Refused) as caught:
        outbound.resolve(host, 443)
    assert REFUSED in str(caught.value)


@pytest.mark.parametrize("host", PUBLIC)
def test_public_addresses_pass_and_are_pinned(host: str) -> None:
    where = outbound.resolve(host, 443)
    assert where.port == 443
    assert outbound.is_public(outbound.ipaddress.ip_address(where.address))


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "127.0.0.1",
        "[::1]",
        "10.1.2.3",
        "::ffff:7f00:1",
        "127.1",
        "0",
        "2130706433",
        "0x7f.1",
    ],
)
def test_saving_refuses_what_no_dns_answer_could_make_public(host: str) -> None:
    assert outbound.refused_without_lookup(host, 443)


def test_saving_leaves_names_to_the_connection_time_check() -> None:
    assert not outbound.refused_without_lookup("git.example.com", 443)
    assert not outbound.refused_without_lookup("8.8.8.8", 443)
    assert not outbound.refused_without_lookup("134744072", 443)  # 8.8.8.8 as one number
    assert not outbound.refused_without_lookup("1.example", 443)


def test_a_name_resolving_inside_is_refused_and_unknown_names_read_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {"rebind.example.com": ["8.8.8.8", "10.0.0.7"], "inside.example.com": ["10.0.0.7"]}

    def lookup(host: str, port: int, **kwargs: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(outbound, "getaddrinfo", lookup)
    messages = set()
    for host in ("rebind.example.com", "inside.example.com", "nosuch.example.com"):
        with pytest.raises(Refused) as caught:
            outbound.resolve(host, 443, shown="X")
        messages.add(str(caught.value))
    assert len(messages) == 1  # one answer, whatever the reason


def test_the_allow_list_takes_hosts_ports_and_networks(settings: Any) -> None:
    settings.PORTAL_OUTBOUND_ALLOW = ["localhost:5000", "127.0.0.2", "10.9.0.0/16", "[::1]:8443"]
    assert outbound.resolve("localhost", 5000).address == "127.0.0.1"
    assert outbound.resolve("LocalHost.", 5000).address == "127.0.0.1"
    with pytest.raises(Refused):
        outbound.resolve("localhost", 5001)  # the port is part of the entry
    with pytest.raises(Refused):
        outbound.resolve("127.0.0.1", 5000)  # another spelling is another host
    assert outbound.resolve("127.0.0.2", 22).address == "127.0.0.2"
    assert outbound.resolve("10.9.3.4", 443).address == "10.9.3.4"
    with pytest.raises(Refused):
        outbound.resolve("10.8.3.4", 443)
    assert outbound.resolve("::1", 8443).address == "::1"


# --- git ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:{port}/x.git",
        "https://localhost:{port}/x.git",
        "https://127.1:{port}/x.git",
        "https://2130706433:{port}/x.git",
        "https://[::ffff:127.0.0.1]:{port}/x.git",
        "ssh://git@127.0.0.1:{port}/x.git",
        "ssh://git@localhost:{port}/x.git",
    ],
)
def test_detect_never_connects_inside_and_answers_the_same_for_open_and_closed_ports(
    url: str, alice: Any, api: Any, listener: tuple[int, list[socket.socket]]
) -> None:
    port, accepted = listener
    client = api(alice)
    answers = []
    for target in (port, _closed_port()):
        answer = client.post(
            "/api/v1/detect", {"team": "alpha", "git_url": url.format(port=target)}
        )
        assert answer.status_code == 400
        answers.append(answer.json()["error"].replace(str(target), "PORT"))
    assert answers[0] == answers[1] and REFUSED in answers[0]
    assert accepted == []


def test_registration_refuses_internal_git_hosts_and_file_urls_outside_the_roots(
    alice: Any, api: Any, settings: Any, listener: tuple[int, list[socket.socket]]
) -> None:
    port, accepted = listener
    settings.PORTAL_GIT_FILE_ROOTS = ["/srv/git"]
    body = {
        "team": "alpha",
        "name": "x",
        "language": "go",
        "ref": "main",
        "image": "localhost:5000/alpha/x",
        "platforms": ["linux/amd64"],
    }
    client = api(alice)
    for url in (f"https://127.0.0.1:{port}/x.git", f"ssh://git@[::1]:{port}/x", "file:///etc"):
        answer = client.post("/api/v1/projects", body | {"git_url": url})
        assert answer.status_code == 400, url
        assert "git_url" in answer.json()["fields"]
    assert client.get("/api/v1/projects").json()["projects"] == []
    inside = client.post(
        "/api/v1/projects",
        body | {"git_url": "https://git.example.com/x.git", "image": "10.0.0.5/x"},
    )
    assert inside.status_code == 400 and "image" in inside.json()["fields"]
    assert accepted == []


def test_git_connects_to_the_checked_address_not_a_second_lookup(
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    listener: tuple[int, list[socket.socket]],
) -> None:
    """A name only the guard can resolve: if git reaches the listener, it used the pinned
    address (the system resolver does not know the name)."""
    port, accepted = listener
    settings.PORTAL_OUTBOUND_ALLOW = ["127.0.0.0/8"]

    def lookup(host: str, p: int, **kwargs: Any) -> list[Any]:
        assert host == "pinned.invalid"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))]

    monkeypatch.setattr(outbound, "getaddrinfo", lookup)
    with pytest.raises(SourceError) as caught:
        gitsource.fetch(f"https://pinned.invalid:{port}/x.git", "main", tmp_path / "src")
    assert len(accepted) >= 1
    # Not git's transport text (which would tell a TLS server from a closed port).
    message = str(caught.value)
    for raw in ("gnutls", "handshake", "refused", "127.0.0.1", "Failed to connect"):
        assert raw not in message


def test_git_ssh_connects_to_the_checked_address(
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    listener: tuple[int, list[socket.socket]],
) -> None:
    port, accepted = listener
    settings.PORTAL_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    monkeypatch.setattr(
        outbound,
        "getaddrinfo",
        lambda host, p, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))],
    )
    with pytest.raises(SourceError) as caught:
        gitsource.fetch(f"ssh://git@pinned.invalid:{port}/x.git", "main", tmp_path / "src")
    assert len(accepted) >= 1
    assert "127.0.0.1" not in str(caught.value) and "pinned.invalid" not in str(caught.value)


def test_git_failures_of_allowed_hosts_do_not_quote_transport_errors(
    settings: Any, tmp_path: Path
) -> None:
    settings.PORTAL_OUTBOUND_ALLOW = ["127.0.0.1"]
    with pytest.raises(SourceError) as caught:
        gitsource.fetch(f"https://127.0.0.1:{_closed_port()}/x.git", "main", tmp_path / "a")
    assert str(caught.value) == (
        "git fetch failed: the git server could not be reached, or did not answer as a git server"
    )


# --- registries --------------------------------------------------------------------------


def test_registry_calls_are_refused_before_the_cli_runs(
    settings: Any, tmp_path: Path, listener: tuple[int, list[socket.socket]]
) -> None:
    port, accepted = listener
    marker = tmp_path / "ran"
    script = tmp_path / "docker"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    settings.PORTAL_DOCKER_CLI = str(script)
    for reference in (f"127.0.0.1:{port}/a/b:t", f"localhost:{port}/a/b:t", "[::1]:5000/a:t"):
        with pytest.raises(Refused):
            registry.imagetools("inspect", "--raw", "--", reference)
        with pytest.raises(Refused):
            registry.imagetools("create", f"--tag={reference}", "--", "localhost:5000/a/b:t")
    assert not marker.exists() and accepted == []


def test_the_cli_gets_the_egress_proxy(settings: Any, tmp_path: Path) -> None:
    record = tmp_path / "env"
    script = tmp_path / "docker"
    script.write_text(f"#!/bin/sh\nenv > {record}\n")
    script.chmod(0o755)
    settings.PORTAL_DOCKER_CLI = str(script)
    registry.imagetools("inspect", "--raw", "--", "localhost:5000/a/b:t")
    env = dict(line.split("=", 1) for line in record.read_text().splitlines() if "=" in line)
    assert env["HTTPS_PROXY"].startswith("http://127.0.0.1:") and env["NO_PROXY"] == ""


def _through_proxy(request: bytes) -> bytes:
    url = egress.proxy_env()["HTTPS_PROXY"]
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(request)
        return sock.recv(4096)


def test_the_proxy_pins_allowed_names_and_refuses_the_rest(
    settings: Any, monkeypatch: pytest.MonkeyPatch, listener: tuple[int, list[socket.socket]]
) -> None:
    port, accepted = listener
    settings.PORTAL_OUTBOUND_ALLOW = [f"pinned.invalid:{port}"]
    monkeypatch.setattr(
        outbound,
        "getaddrinfo",
        lambda host, p, **kw: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))],
    )
    # A realm or redirect to an internal address: refused, nothing contacted.
    for target in (f"127.0.0.1:{port}", f"other.invalid:{port}", "169.254.169.254:80"):
        answer = _through_proxy(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 403"), target
    assert accepted == []
    answer = _through_proxy(f"CONNECT pinned.invalid:{port} HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 200")
    for _ in range(50):
        if accepted:
            break
        threading.Event().wait(0.05)
    assert len(accepted) == 1


def test_a_login_for_an_internal_registry_is_refused(alice: Any, api: Any) -> None:
    client = api(alice)
    for host in ("127.0.0.1:2375", "169.254.169.254", "[::1]:5000", "localhost:6379"):
        answer = client.post(
            "/api/v1/credentials",
            {"team": "alpha", "registry": host, "username": "u", "password": "p"},
        )
        assert answer.status_code == 400 and REFUSED in answer.json()["error"], host


def test_merges_from_internal_registries_connect_nowhere(
    alice: Any, api: Any, listener: tuple[int, list[socket.socket]]
) -> None:
    port, accepted = listener
    answer = api(alice).post(
        "/api/v1/merges",
        {
            "team": "alpha",
            "target": f"127.0.0.1:{port}/alpha/m:1",
            "sources": [f"127.0.0.1:{port}/alpha/m:amd64"],
        },
    )
    assert answer.status_code == 400
    assert accepted == []


def test_the_stack_allows_only_its_own_registries() -> None:
    out = subprocess.run(
        ["bash", "scripts/teststack.sh", "env"], capture_output=True, text=True, check=False
    ).stdout
    line = next(ln for ln in out.splitlines() if "PORTAL_OUTBOUND_ALLOW" in ln)
    entries = line.split("=", 1)[1].strip("'\"").split(",")
    assert "localhost:5000" in entries
    assert all("/" not in e for e in entries)  # names with ports, no networks
