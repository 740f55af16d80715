"""Against the registry with htpasswd auth and TLS (scripts/teststack.sh: a CA the engine
trusts): a team login, a merge of two images built apart, a build pushed with the login, a
wrong password's clear error, and the password (the canary) nowhere it must not be: log lines,
pages, API answers, argv of any process while it runs, files left behind."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stack import login_session, platform_manifests, wait_finished

AUTH = os.environ.get("PORTAL_TEST_AUTH_REGISTRY", "crossport-registry.test:5443")
USER = os.environ.get("PORTAL_TEST_AUTH_USER", "crossport")
MIRROR = os.environ.get("PORTAL_BASE_IMAGE_MIRROR", "localhost:5000/library")


@pytest.fixture(scope="module")
def password(stack: None) -> str:
    path = os.environ.get("PORTAL_TEST_AUTH_PASSWORD_FILE", "")
    if not path or not Path(path).is_file():
        pytest.fail("the auth registry's password file is missing (scripts/teststack.sh up)")
    return Path(path).read_text().strip()


def _registry_get(path: str, password: str) -> tuple[str, dict[str, Any]]:
    """An index straight from the registry, with the login (independent of the portal)."""
    ca = "/var/lib/crossport-teststack/auth-registry/ca.crt"
    request = urllib.request.Request(
        f"https://{AUTH}/v2/{path}",
        headers={
            "Accept": "application/vnd.oci.image.index.v1+json",
            "Authorization": "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode(),
        },
    )
    context = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        body = response.read()
    return "sha256:" + hashlib.sha256(body).hexdigest(), json.loads(body)


def _push_apart(image: str, password: str) -> None:
    """Two single-platform images built apart: amd64 a plain manifest, arm64 an index with
    an attestation (what buildx makes by default), as teams have them."""
    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "config"
        config.mkdir()
        token = base64.b64encode(f"{USER}:{password}".encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {AUTH: {"auth": token}}}))
        (Path(work) / "Dockerfile").write_text(
            f"FROM {MIRROR}/alpine:3.20\nRUN uname -m > /arch\nCMD cat /arch\n"
        )
        for platform, tag, extra in (
            ("linux/amd64", "amd64", ["--provenance=false"]),
            ("linux/arm64", "arm64", []),
        ):
            subprocess.run(
                [
                    "docker",
                    "buildx",
                    "build",
                    "--network=host",
                    f"--platform={platform}",
                    f"--tag={image}:{tag}",
                    "--output=type=image,push=",  # one push, as builds.buildx explains
                    *extra,
                    work,
                ],
                env=os.environ | {"DOCKER_CONFIG": str(config)},
                check=True,
                capture_output=True,
            )


class ArgvWatch:
    """Reads every process's argv (and environment) while running; notes any with the secret."""

    def __init__(self, *secrets: str) -> None:
        self.secrets = [s.encode() for s in secrets]
        self.hits: list[str] = []
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                for name in ("cmdline", "environ"):
                    try:
                        data = (proc / name).read_bytes()
                    except OSError:
                        continue
                    if any(secret in data for secret in self.secrets):
                        self.hits.append(f"{proc.name}/{name}: {data[:200]!r}")
            self.scans += 1
            time.sleep(0.05)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _files_containing(root: Path, secret: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and secret in path.read_bytes():
                found.append(str(path))
        except OSError:
            continue
    return found


@pytest.fixture
def watch(password: str) -> Iterator[ArgvWatch]:
    token = base64.b64encode(f"{USER}:{password}".encode()).decode()
    with ArgvWatch(password, token) as w:
        yield w


def test_logins_merges_and_pushes_without_leaking_the_password(
    portal: Any, persona: Any, hello_repo: str, password: str, watch: ArgvWatch
) -> None:
    token = persona.token
    seen: list[str] = []  # every API answer and page, searched for the password at the end

    def api(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, answer = portal.api(method, path, token, body)
        seen.append(json.dumps(answer) if not isinstance(answer, str) else answer)
        return status, answer

    # A wrong password first: saved, tested, refused with a clear message.
    status, login = api(
        "POST",
        "/api/v1/credentials",
        {
            "team": persona.team,
            "registry": AUTH,
            "username": USER,
            "password": "wrong-" + password[:6],
        },
    )
    assert status == 201, login
    status, tested = api("POST", f"/api/v1/credentials/{login['id']}/test")
    assert tested["last_test_ok"] is False, tested
    assert tested["last_test_message"] == f"{AUTH} refused the user name or password.", tested

    image = f"{AUTH}/e2e/hello-{uuid.uuid4().hex[:8]}"
    status, project = api(
        "POST",
        "/api/v1/projects",
        {
            "team": persona.team,
            "name": f"auth-{uuid.uuid4().hex[:6]}",
            "language": "go",
            "git_url": hello_repo,
            "image": image,
            "platforms": ["linux/amd64", "linux/arm64"],
        },
    )
    assert status == 201, project
    status, build = api("POST", f"/api/v1/projects/{project['id']}/builds", {})
    build = wait_finished(portal, token, build["id"], timeout=300)
    assert build["state"] == "failed", build
    assert build["reason"].startswith(f"the registry {AUTH} refused the push with the team's login")
    assert "401 Unauthorized" in build["reason"]

    # The right password: the connection test passes, the build pushes.
    status, login = api(
        "POST",
        "/api/v1/credentials",
        {"team": persona.team, "registry": AUTH, "username": USER, "password": password},
    )
    status, tested = api("POST", f"/api/v1/credentials/{login['id']}/test")
    assert tested["last_test_ok"] is True, tested
    # A release: the git tag v1.0.0 gives the version tags and the OCI version.
    status, build = api(
        "POST",
        f"/api/v1/projects/{project['id']}/builds",
        {"ref": "v1.0.0", "tags": ["{semver}", "{branch}", "{latest}"]},
    )
    build = wait_finished(portal, token, build["id"], timeout=600)
    assert build["state"] == "succeeded", build["reason"]
    assert build["tags"] == ["1.0.0", "1.0", "1", "v1.0.0"]  # no latest: not the default branch
    digest, index = _registry_get(f"{image.split('/', 1)[1]}/manifests/1.0.0", password)
    assert digest == build["manifest"]["digest"]
    assert set(platform_manifests(index)) == {"linux/amd64", "linux/arm64"}
    assert index["annotations"]["org.opencontainers.image.version"] == "1.0.0"
    # A branch named like a release is no release.
    status, branch = api(
        "POST",
        f"/api/v1/projects/{project['id']}/builds",
        {"ref": "v9.9.9", "tags": ["{semver}"]},
    )
    branch = wait_finished(portal, token, branch["id"], timeout=120)
    assert branch["state"] == "failed" and "no tag applies to ref v9.9.9" in branch["reason"]
    _, log = api("GET", f"/api/v1/builds/{build['id']}/log")
    assert any(f"login for {AUTH} (user {USER})" in line["text"] for line in log["lines"])

    # A merge of two images built apart (one of them an index with an attestation).
    merged = f"{AUTH}/e2e/merge-{uuid.uuid4().hex[:8]}"
    _push_apart(merged, password)
    body = {
        "team": persona.team,
        "target": f"{merged}:v1",
        "sources": [f"{merged}:amd64", f"{merged}:arm64"],
    }
    status, preview = api("POST", "/api/v1/merges", body | {"dry_run": True})
    assert status == 200, preview
    assert {m["platform"]["architecture"] for m in preview["index"]["manifests"]} >= {
        "amd64",
        "arm64",
    }
    assert preview["commands"][0].startswith("docker manifest create ")
    status, duplicate = api(
        "POST",
        "/api/v1/merges",
        body
        | {
            "sources": [f"{merged}:amd64", f"{merged}:arm64"],
            "platforms": {f"{merged}:amd64": "linux/arm64"},
        },
    )
    assert status == 400 and "both give linux/arm64" in duplicate["error"], duplicate
    status, record = api("POST", "/api/v1/merges", body)
    assert status == 201, record
    digest, index = _registry_get(f"{merged.split('/', 1)[1]}/manifests/v1", password)
    assert record["digest"] == digest and record["kind"] == "merge"
    platforms = platform_manifests(index)
    assert set(platforms) == {"linux/amd64", "linux/arm64"}
    assert record["platforms"] == platforms
    assert any(
        m.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest"
        for m in index["manifests"]
    ), "the arm64 source's attestation came along"
    status, listed = api("GET", f"/api/v1/manifests?team={persona.team}")
    kinds = {(m["kind"], m["tag"]) for m in listed["manifests"]}
    assert ("merge", f"{merged}:v1") in kinds and ("build", f"{image}:1.0.0") in kinds

    # The same merge from the team's merge page: htmx preview, then push.
    session = login_session(portal, persona)
    form = {
        "target": f"{merged}:v2",
        "sources": f"{merged}:amd64\n{merged}:arm64",
        "platforms": "",
    }
    preview_html = session(f"/teams/{persona.team}/merge/", form | {"action": "preview"}, htmx=True)
    assert 'id="merge-index"' in preview_html and "docker manifest annotate" in preview_html
    assert "<html" not in preview_html, "htmx gets the partial only"
    pushed_html = session(f"/teams/{persona.team}/merge/", form | {"action": "push"})
    assert f"{merged}:v2" in pushed_html and "Merged from" in pushed_html
    assert _registry_get(f"{merged.split('/', 1)[1]}/manifests/v2", password)[0] == digest
    seen += [preview_html, pushed_html]

    # Pages, as a browser gets them.
    for path in (
        f"/builds/{build['id']}/",
        f"/teams/{persona.team}/",
        f"/manifests/{record['id']}/",
        f"/teams/{persona.team}/manifests/?format=csv",
    ):
        seen.append(session(path))

    # As typed, and as a docker config holds it (base64 of user:password).
    token = base64.b64encode(f"{USER}:{password}".encode()).decode()
    assert watch.scans > 10, "the argv watch ran during the builds"
    assert watch.hits == [], watch.hits
    assert not [text for text in seen if password in text or token in text]
    for secret in (password.encode(), token.encode()):
        assert _files_containing(Path(portal.data_dir), secret) == []
        leftovers = [p for p in Path(tempfile.gettempdir()).glob("crossport-*") if p.is_dir()]
        assert not [p for p in leftovers if _files_containing(p, secret)]


def test_a_builders_buildkit_reaches_the_tls_registry_with_no_manual_step(
    portal: Any, portal_with: Any, hello_repo: str, password: str
) -> None:
    """A builder's BuildKit runs in a container of its own, which trusts nothing of the host:
    the stack's CA reaches it through the buildkitd.toml Crossport writes
    (PORTAL_BUILDKIT_REGISTRY_CA, which `scripts/teststack.sh env` sets), the team's login
    through the build's docker config. A `builder:` build pushes to the TLS registry."""
    team = portal_with.persona(portal, "tls-builder", "tlsb")
    staff = portal.manage("portal_user", "tls-ops", "--team", "ops", "--staff").split()[-1]
    _, listed = portal.api("GET", "/api/v1/nodes", staff)
    local = next(n for n in listed["nodes"] if n["name"] == "local")
    name = f"tls-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "nodes": [{"node": local["id"], "platforms": []}]}
    status, made = portal.api("POST", "/api/v1/builders", staff, body)
    assert status == 201, made
    try:
        config = (Path(portal.data_dir) / "buildkit" / f"{name}.toml").read_text()
        assert f'[registry."{AUTH}"]' in config and "ca = [" in config, config
        status, login = portal.api(
            "POST",
            "/api/v1/credentials",
            team.token,
            {"team": team.team, "registry": AUTH, "username": USER, "password": password},
        )
        assert status == 201, login
        image = f"{AUTH}/tlsb/hello-{uuid.uuid4().hex[:8]}"
        status, project = portal.api(
            "POST",
            "/api/v1/projects",
            team.token,
            {
                "team": team.team,
                "name": f"tls-{uuid.uuid4().hex[:6]}",
                "language": "go",
                "git_url": hello_repo,
                "image": image,
                "platforms": ["linux/amd64", "linux/arm64"],
            },
        )
        assert status == 201, project
        status, build = portal.api(
            "POST",
            f"/api/v1/projects/{project['id']}/builds",
            team.token,
            {"strategy": f"builder:{name}"},
        )
        assert status == 201, build
        build = wait_finished(portal, team.token, build["id"], timeout=600)
        assert build["state"] == "succeeded", build["reason"]
        digest, index = _registry_get(f"{image.split('/', 1)[1]}/manifests/latest", password)
        assert digest == build["manifest"]["digest"]
        assert {m["platform"]["architecture"] for m in index["manifests"]} >= {"amd64", "arm64"}
    finally:
        portal.api("DELETE", f"/api/v1/builders/{name}", staff)
