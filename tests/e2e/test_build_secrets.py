"""Build secrets on the real stack: a Python project whose requirement lives on a
password-protected package index (on 127.0.0.1, reached over the build's host network) builds
with a team secret holding its pip.conf; the password is then searched for, plain and in
base64, in every blob, config, manifest and attestation the registry holds for the image, in the
stored log and in every API answer about the build, and found nowhere. Two teams' identical
secret-reading steps both run: the second team's is not answered from the first one's cache."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import subprocess
import threading
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stack import unique_image, wait_finished

PACKAGE = "crossport-private-dep"
MODULE = "crossport_private_dep"
WHEEL = f"{MODULE}-1.0-py3-none-any.whl"
PLATFORMS = ["linux/amd64", "linux/arm64"]
DEPS_STEP = re.compile(r"#\d+ \[(?:\S+ )?deps \d+/\d+\] RUN ")
INDEX_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def make_wheel() -> bytes:
    """A tiny pure-Python wheel, with a correct RECORD."""
    files = {
        f"{MODULE}.py": b'MESSAGE = "installed from the private index"\n',
        f"{MODULE}-1.0.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 1.0\n".encode()
        ),
        f"{MODULE}-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: crossport-e2e\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{MODULE}-1.0.dist-info/RECORD,,")
    files[f"{MODULE}-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


@dataclass
class PrivateIndex:
    """A PEP 503 simple index behind HTTP basic auth on 127.0.0.1."""

    user: str
    password: str
    wheel: bytes = field(default_factory=make_wheel)
    served: int = 0  # answers to requests with the right login
    refused: int = 0
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def pip_conf(self) -> str:
        return (
            "[global]\n"
            f"index-url = http://{self.user}:{self.password}@127.0.0.1:{self.port}/simple/\n"
            "trusted-host = 127.0.0.1\n"
        )

    def start(self) -> None:
        index = self
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        sha = hashlib.sha256(self.wheel).hexdigest()
        pages = {
            "/simple/": f'<a href="{PACKAGE}/">{PACKAGE}</a>'.encode(),
            f"/simple/{PACKAGE}/": f'<a href="/files/{WHEEL}#sha256={sha}">{WHEEL}</a>'.encode(),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Authorization") != expected:
                    index.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="private"')
                    self.end_headers()
                    return
                if self.path == f"/files/{WHEEL}":
                    body, kind = index.wheel, "application/octet-stream"
                elif self.path in pages:
                    body, kind = pages[self.path], "text/html"
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                index.served += 1
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture(scope="module")
def private_index() -> Iterator[PrivateIndex]:
    index = PrivateIndex(user="robot", password=f"Pw{uuid.uuid4().hex}")
    index.start()
    try:
        yield index
    finally:
        index.stop()


@pytest.fixture(scope="module")
def private_dep_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("private-dep-src")
    (work / "requirements.txt").write_text(f"{PACKAGE}==1.0\n")
    (work / "app.py").write_text(f"import {MODULE}\n\nprint({MODULE}.MESSAGE)\n")
    git = ["git", "-c", "user.name=E2E", "-c", "user.email=e2e@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "private dep"], check=True)
    return f"file://{work}"


def forms(password: str, user: str) -> list[bytes]:
    """The password as it could leak: itself, and base64 of it and of user:password."""
    found = {password.encode()}
    for raw in (password.encode(), f"{user}:{password}".encode()):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(raw)
            found |= {text, text.rstrip(b"=")}
    return sorted(found)


def registry_get(repository: str, what: str, accept: str = INDEX_ACCEPT) -> bytes:
    host, path = repository.split("/", 1)
    request = urllib.request.Request(f"http://{host}/v2/{path}/{what}", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=60) as response:
        return bytes(response.read())


def everything_pushed(repository: str) -> dict[str, bytes]:
    """Every tag's index, each manifest (images and attestations), config and layer blob,
    layers also gunzipped: what anyone who can pull the image can read."""
    found: dict[str, bytes] = {}
    tags = json.loads(registry_get(repository, "tags/list"))["tags"]
    pending = [f"manifests/{tag}" for tag in tags]
    while pending:
        what = pending.pop()
        if what in found:
            continue
        body = found[what] = registry_get(repository, what)
        if what.startswith("blobs/"):
            if body[:2] == b"\x1f\x8b":
                found[what + " (gunzipped)"] = gzip.decompress(body)
            continue
        document = json.loads(body)
        pending += [f"manifests/{m['digest']}" for m in document.get("manifests", [])]
        blobs = [document.get("config", {}), *document.get("layers", [])]
        pending += [f"blobs/{b['digest']}" for b in blobs if b.get("digest")]
    return found


def build_project(portal: Any, token: str, team: str, repo: str, name: str) -> dict[str, Any]:
    status, project = portal.api(
        "POST",
        "/api/v1/projects",
        token,
        {
            "team": team,
            "name": name,
            "language": "python",
            "git_url": repo,
            "image": unique_image(name),
            "platforms": PLATFORMS,
            "options": {"pip_secret": "pipconf"},
        },
    )
    assert status == 201, project
    return project


def run_build(portal: Any, token: str, project: dict[str, Any]) -> tuple[dict[str, Any], list]:
    status, queued = portal.api("POST", f"/api/v1/projects/{project['id']}/builds", token, {})
    assert status == 201, queued
    build = wait_finished(portal, token, queued["id"], timeout=900)
    lines: list[dict[str, Any]] = []
    after, more = 0, True
    while more:
        _, page = portal.api("GET", f"/api/v1/builds/{build['id']}/log?after={after}", token)
        lines += page["lines"]
        after, more = page["next"], page["more"]
    assert build["state"] == "succeeded", (build["reason"], [x["text"] for x in lines][-40:])
    return build, lines


def deps_step_states(lines: list[dict[str, Any]]) -> list[str]:
    """How each platform's secret-reading deps step ended: "CACHED" or "DONE"."""
    texts = [line["text"] for line in lines]
    numbers = {
        text.split(" ", 1)[0]
        for text in texts
        if DEPS_STEP.match(text) and "type=secret,id=pipconf" in text
    }
    assert numbers, "no secret-reading deps step in the log"
    states = []
    for number in sorted(numbers):
        ends = [t.split(" ")[1] for t in texts if t.startswith(f"{number} ")]
        states.append("CACHED" if "CACHED" in ends else "DONE" if "DONE" in ends else "?")
    return states


def test_a_private_index_password_reaches_the_build_and_nothing_else(
    portal: Any, persona: Any, private_index: PrivateIndex, private_dep_repo: str
) -> None:
    token, team = persona.token, persona.team
    status, secret = portal.api(
        "POST",
        f"/api/v1/teams/{team}/secrets",
        token,
        {"name": "pipconf", "value": private_index.pip_conf()},
    )
    assert status == 201, secret
    project = build_project(portal, token, team, private_dep_repo, "private-dep")
    build, lines = run_build(portal, token, project)
    assert private_index.served >= 2  # pip really read the index with the login
    assert deps_step_states(lines) == ["DONE"] * len(PLATFORMS)

    image = project["image"]
    for platform in PLATFORMS:
        out = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", f"--platform={platform}",
             f"{image}:latest"],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert out.stdout.strip() == "installed from the private index", out.stderr

    answers = {
        "build": portal.api("GET", f"/api/v1/builds/{build['id']}", token)[1],
        "log": lines,
        "project": portal.api("GET", f"/api/v1/projects/{project['id']}", token)[1],
        "dockerfile": portal.api("GET", f"/api/v1/projects/{project['id']}/dockerfile", token)[1],
        "manifests": portal.api("GET", f"/api/v1/manifests?project={project['id']}", token)[1],
        "secrets": portal.api("GET", f"/api/v1/teams/{team}/secrets", token)[1],
    }
    places = {f"API {k}": json.dumps(v).encode() for k, v in answers.items()}
    pushed = everything_pushed(image)
    assert any("gunzipped" in k for k in pushed) and len(pushed) > 6, sorted(pushed)
    places |= {f"registry {k}": v for k, v in pushed.items()}
    leaks = [
        (where, form)
        for where, data in places.items()
        for form in forms(private_index.password, private_index.user)
        if form in data
    ]
    assert leaks == []
    used = answers["secrets"]["secrets"][0]
    assert used["name"] == "pipconf" and used["last_used_at"] is not None


def test_another_teams_identical_secret_step_runs_not_cached(
    portal: Any,
    portal_with: Any,
    persona: Any,
    private_index: PrivateIndex,
    private_dep_repo: str,
) -> None:
    # The first team's project exists from the test above when run together; make sure.
    token = persona.token
    portal.api(
        "POST",
        f"/api/v1/teams/{persona.team}/secrets",
        token,
        {"name": "pipconf", "value": private_index.pip_conf()},
    )
    first = build_project(portal, token, persona.team, private_dep_repo, "private-a")
    run_build(portal, token, first)
    # The same team again: the step is the same, and comes from the cache (the control).
    _, again = run_build(portal, token, first)
    assert deps_step_states(again) == ["CACHED"] * len(PLATFORMS)

    other = portal_with.persona(portal, "grace", "e2e-other").token
    status, _ = portal.api(
        "POST",
        "/api/v1/teams/e2e-other/secrets",
        other,
        {"name": "pipconf", "value": private_index.pip_conf()},
    )
    assert status == 201
    second = build_project(portal, other, "e2e-other", private_dep_repo, "private-b")
    served = private_index.served
    _, lines = run_build(portal, other, second)
    assert deps_step_states(lines) == ["DONE"] * len(PLATFORMS)
    assert private_index.served > served  # it read the index with its own secret


def test_a_missing_secret_fails_the_build_before_it_runs(
    portal: Any, persona: Any, private_dep_repo: str
) -> None:
    token = persona.token
    status, project = portal.api(
        "POST",
        "/api/v1/projects",
        token,
        {
            "team": persona.team,
            "name": "private-missing",
            "language": "python",
            "git_url": private_dep_repo,
            "image": unique_image("private-missing"),
            "platforms": ["linux/amd64"],
            "options": {"pip_secret": "nosuchsecret"},
        },
    )
    assert status == 201, project
    status, queued = portal.api("POST", f"/api/v1/projects/{project['id']}/builds", token, {})
    build = wait_finished(portal, token, queued["id"], timeout=300)
    assert build["state"] == "failed"
    assert "secret nosuchsecret does not exist" in build["reason"], build["reason"]
    _, page = portal.api("GET", f"/api/v1/builds/{build['id']}/log?after=0", token)
    assert not any("docker buildx build" in line["text"] for line in page["lines"])
