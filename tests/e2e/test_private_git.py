"""Private repositories on real servers, all on 127.0.0.1: an sshd made here (git-shell, only
the keys the test authorizes) and `git http-backend` behind a small TLS server with basic auth.
A portal of its own runs with a HOME full of the wrong credentials (an ssh key the sshd
accepts, an ssh-agent holding it, a git credential store with the right token): a project
reaches its repository with its deploy key or token, and nothing else grants anything.

The https server borrows the stack's TLS name (crossport-registry.test, 127.0.0.1 in
/etc/hosts) and certificate, which the system store trusts."""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fakes import write_hello
from stack import Sshd, free_port, registry_index, unique_image, wait_finished

TLS_NAME = "crossport-registry.test"  # the stack's name for 127.0.0.1, with a trusted cert
TOKEN_USER = "ci-bot"
TOKEN = f"canary-{uuid.uuid4().hex}"
GIT = ["git", "-c", "user.name=E2E", "-c", "user.email=e2e@example.invalid"]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def fingerprint_of(pub: str, where: Path) -> str:
    (where / "fp.pub").write_text(pub + "\n")
    out = subprocess.run(["ssh-keygen", "-lf", str(where / "fp.pub")], capture_output=True)
    return out.stdout.decode().split()[1]


class GitSshd(Sshd):
    """sshd serving bare repositories through git-shell to the keys in authorized_keys."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.authorized = root / "authorized_keys"
        self.authorized.write_text("")

    def start(self, host_key: Path, config: str = "", timeout: float = 20) -> None:
        super().start(
            host_key,
            f"AuthorizedKeysFile {self.authorized}\nPidFile none\n"
            "AllowAgentForwarding no\nAllowTcpForwarding no\n"
            'ForceCommand /usr/bin/git-shell -c "$SSH_ORIGINAL_COMMAND"\n' + config,
            timeout,
        )


def _http_handler(repos: Path) -> type[BaseHTTPRequestHandler]:
    """git http-backend as CGI, behind basic auth for TOKEN_USER:TOKEN."""
    expected = "Basic " + base64.b64encode(f"{TOKEN_USER}:{TOKEN}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            env = {
                "PATH": os.environ["PATH"],
                "GIT_PROJECT_ROOT": str(repos),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(length),
                "REMOTE_USER": TOKEN_USER,
                "REMOTE_ADDR": "127.0.0.1",
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            body = self.rfile.read(length) if length else b""
            out = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            ).stdout
            head, _, content = out.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass
class World:
    root: Path
    sshd: GitSshd
    host_keys: list[Path]
    home_key_pub: str
    https_port: int
    portal: Any
    persona: Any

    @property
    def ssh_url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.sshd.port}{self.root / 'repos' / 'hello.git'}"

    @property
    def https_url(self) -> str:
        return f"https://{TLS_NAME}:{self.https_port}/hello.git"

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.portal.api(method, path, self.persona.token, body)

    def project(self, name: str, url: str) -> tuple[int, str]:
        image = unique_image(name)
        status, project = self.api(
            "POST",
            "/api/v1/projects",
            {
                "team": self.persona.team,
                "name": f"{name}-{uuid.uuid4().hex[:6]}",
                "language": "go",
                "git_url": url,
                "image": image,
                "platforms": ["linux/amd64"],
            },
        )
        assert status == 201, project
        return project["id"], image

    def detect(self, url: str, **extra: Any) -> tuple[int, Any]:
        body = {"team": self.persona.team, "git_url": url, "ref": "main", **extra}
        return self.api("POST", "/api/v1/detect", body)

    def build(self, project_id: int) -> dict[str, Any]:
        status, build = self.api("POST", f"/api/v1/projects/{project_id}/builds", {})
        assert status == 201, build
        return wait_finished(self.portal, self.persona.token, build["id"], 900)


@pytest.fixture(scope="module")
def world(portal_with: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("private-git")
    tls_dir = Path(os.environ.get("PORTAL_TEST_AUTH_PASSWORD_FILE", "/nonexistent")).parent
    if not (tls_dir / "server.crt").exists():
        pytest.skip("the stack's TLS name and certificate (scripts/teststack.sh up) are missing")
    # The repository: the Go hello world, bare, served over ssh and https.
    work = root / "work"
    write_hello(work)
    subprocess.run([*GIT, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*GIT, "-C", str(work), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(work), "commit", "-q", "-m", "hello"], check=True)
    (root / "repos").mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "repos/hello.git")])
    # The portal's HOME, full of credentials no project may borrow.
    home = root / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    home_key_pub = _keygen(home / ".ssh" / "id_ed25519")
    sshd = GitSshd(root)
    https_port = free_port()
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    (home / ".git-credentials").write_text(
        f"https://{TOKEN_USER}:{TOKEN}@{TLS_NAME}:{https_port}\n"
    )
    agent_sock = root / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(agent_sock)], stdout=subprocess.DEVNULL)
    host_keys = [root / "host_key_a", root / "host_key_b"]
    for key in host_keys:
        _keygen(key)
    server = ThreadingHTTPServer(("127.0.0.1", https_port), _http_handler(root / "repos"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_dir / "server.crt", tls_dir / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for _ in range(50):
            if agent_sock.exists():
                break
            time.sleep(0.1)
        subprocess.run(
            ["ssh-add", "-q", str(home / ".ssh" / "id_ed25519")],
            env={**os.environ, "SSH_AUTH_SOCK": str(agent_sock)},
            check=True,
        )
        sshd.start(host_keys[0])
        allow = f"localhost:5000,127.0.0.1:{sshd.port},{TLS_NAME}:{https_port}"
        extra = {"PORTAL_OUTBOUND_ALLOW": allow, "HOME": str(home)}
        extra["SSH_AUTH_SOCK"] = str(agent_sock)
        with portal_with.running(root / "portal", root, extra) as portal:
            persona = portal_with.persona(portal, "pia", "private")
            yield World(root, sshd, host_keys, home_key_pub, https_port, portal, persona)
    finally:
        server.shutdown()
        sshd.stop()
        agent.terminate()
        agent.wait(timeout=10)


def test_ssh_deploy_key_detects_and_builds_and_nothing_else_grants_access(
    world: World,
) -> None:
    project_id, image = world.project("private-ssh", world.ssh_url)
    status, key = world.api("GET", f"/api/v1/projects/{project_id}/deploy-key")
    assert status == 200 and key["public_key"].startswith("ssh-ed25519 ")
    assert key["fingerprint"] == fingerprint_of(key["public_key"], world.root)

    # (d) The sshd accepts the key in the portal's own ~/.ssh (and its agent): that grants
    # this project nothing. (c) The error says what to do, not what git said.
    world.sshd.authorized.write_text(world.home_key_pub + "\n")
    status, answer = world.detect(world.ssh_url, project=project_id)
    assert status == 422, answer
    assert "read-only deploy key" in answer["error"] and key["fingerprint"] in answer["error"]
    assert "Permission denied" not in answer["error"]
    failed = world.build(project_id)
    assert failed["state"] == "failed" and "read-only deploy key" in failed["reason"]

    # (a) With its deploy key authorized, the project is detected and built.
    world.sshd.authorized.write_text(world.home_key_pub + "\n" + key["public_key"] + "\n")
    status, answer = world.detect(world.ssh_url, project=project_id)
    assert status == 200, answer
    assert answer["language"] == "go"
    build = world.build(project_id)
    assert build["state"] == "succeeded", build
    digest, index = registry_index(image, "latest")
    assert digest == build["manifest"]["digest"]

    # (e) The server's host key changes: refused, naming the host and both fingerprints.
    pinned = fingerprint_of(world.host_keys[0].with_suffix(".pub").read_text(), world.root)
    offered = fingerprint_of(world.host_keys[1].with_suffix(".pub").read_text(), world.root)
    world.sshd.stop()
    world.sshd.start(world.host_keys[1])
    status, answer = world.detect(world.ssh_url, project=project_id)
    assert status == 422, answer
    for text in (f"127.0.0.1:{world.sshd.port}", pinned, offered):
        assert text in answer["error"], answer
    refused = world.build(project_id)
    assert refused["state"] == "failed" and offered in refused["reason"], refused
    assert pinned in refused["reason"] and refused["manifest"] is None
    # Back to the pinned key: fetches work again.
    world.sshd.stop()
    world.sshd.start(world.host_keys[0])
    assert world.detect(world.ssh_url, project=project_id)[0] == 200


def test_https_token_detects_and_builds_and_nothing_else_grants_access(world: World) -> None:
    project_id, image = world.project("private-https", world.https_url)
    # (c) Without a token (the portal's own credential store holds the right one): refused,
    # saying what to do.
    status, answer = world.detect(world.https_url, project=project_id)
    assert status == 422, answer
    assert "set a git token" in answer["error"]
    failed = world.build(project_id)
    assert failed["state"] == "failed" and "set a git token" in failed["reason"]
    # A new project's detection may carry a one-off token; it is not stored.
    status, answer = world.detect(world.https_url, git_username=TOKEN_USER, git_token=TOKEN)
    assert status == 200 and answer["language"] == "go", answer
    assert TOKEN not in str(answer)
    # (b) The project's token: detected and built.
    status, _ = world.api(
        "PUT",
        f"/api/v1/projects/{project_id}/git-token",
        {"username": TOKEN_USER, "token": TOKEN},
    )
    assert status == 204
    status, answer = world.detect(world.https_url, project=project_id)
    assert status == 200 and answer["language"] == "go", answer
    build = world.build(project_id)
    assert build["state"] == "succeeded", build
    assert registry_index(image, "latest")[0] == build["manifest"]["digest"]
    # The token is in no log, page or answer of the portal.
    status, log = world.api("GET", f"/api/v1/builds/{build['id']}/log")
    assert TOKEN not in str(log)
    for name in os.listdir(world.portal.data_dir):
        if name.endswith(".log"):
            assert TOKEN not in (world.portal.data_dir / name).read_text(errors="replace")
    assert shutil.which("git")
