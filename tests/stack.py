"""Helpers for end-to-end tests that talk to the real registry and engine directly,
independent of the portal's own code."""

from __future__ import annotations

import contextlib
import hashlib
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REGISTRY = os.environ.get("PORTAL_TEST_REGISTRY", "localhost:5000")
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]


# What the Go compiler says about the broken_repo fixture's program (tests/e2e/conftest.py).
BROKEN_LINE = "./main.go:4:2: undefined: nosuchfunc"


def unique_image(name: str) -> str:
    return f"{REGISTRY}/e2e/{name}-{uuid.uuid4().hex[:8]}"


def registry_index(repository: str, reference: str) -> tuple[str, dict[str, Any]]:
    """(digest, index JSON) straight from the registry, independent of the portal's code."""
    host, path = repository.split("/", 1)
    request = urllib.request.Request(
        f"http://{host}/v2/{path}/manifests/{reference}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return "sha256:" + hashlib.sha256(body).hexdigest(), json.loads(body)


MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def registry_json(repository: str, kind: str, reference: str) -> dict[str, Any]:
    """A manifest (kind "manifests", by tag or digest) or a JSON blob (kind "blobs") straight
    from the registry."""
    host, path = repository.split("/", 1)
    request = urllib.request.Request(
        f"http://{host}/v2/{path}/{kind}/{reference}", headers={"Accept": MANIFEST_TYPES}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def registry_tags(repository: str) -> list[str]:
    host, path = repository.split("/", 1)
    try:
        with urllib.request.urlopen(f"http://{host}/v2/{path}/tags/list", timeout=30) as response:
            return list(json.loads(response.read()).get("tags") or [])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise


def platform_manifests(index: dict[str, Any]) -> dict[str, str]:
    """platform -> manifest digest of an index, attestation manifests left out."""
    result = {}
    for m in index["manifests"]:
        if m.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        p = m["platform"]
        result["/".join(filter(None, [p["os"], p["architecture"], p.get("variant")]))] = m["digest"]
    return result


def go_project(
    portal: Any, persona: Any, repo: str, name: str, platforms: list[str] = PLATFORMS
) -> tuple[int, str]:
    """Register a Go project (for the three platforms) through the API: (id, image)."""
    image = unique_image(name)
    status, project = portal.api(
        "POST",
        "/api/v1/projects",
        persona.token,
        {
            "team": persona.team,
            "name": f"{name}-{uuid.uuid4().hex[:6]}",
            "language": "go",
            "git_url": repo,
            "image": image,
            "platforms": platforms,
        },
    )
    assert status == 201, project
    return project["id"], image


def run_image(reference: str, platform: str) -> str:
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", f"--platform={platform}", reference],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


EXPECTED_OUTPUT = {
    "linux/amd64": "Hello from linux/amd64",
    "linux/arm64": "Hello from linux/arm64",
    "linux/arm/v7": "Hello from linux/arm",
}


def wait_finished(portal: Any, token: str, build_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, build = portal.api("GET", f"/api/v1/builds/{build_id}", token)
        if build["state"] in ("succeeded", "failed", "cancelled"):
            return build
        time.sleep(0.3)
    raise AssertionError(f"build {build_id} still {build['state']} after {timeout}s")


def start_build(portal: Any, token: str, project: dict[str, Any]) -> dict[str, Any]:
    """Register the project through the portal's API and queue its first build (returned)."""
    status, created = portal.api("POST", "/api/v1/projects", token, project)
    assert status == 201, created
    status, build = portal.api("POST", f"/api/v1/projects/{created['id']}/builds", token, {})
    assert status == 201, build
    return build


def built(
    portal: Any,
    token: str,
    project: dict[str, Any],
    more: Callable[[], str] = str,
    timeout: float = 900,
) -> dict[str, Any]:
    """start_build, then the finished build; the test fails with its reason and last log lines
    (and `more()`) unless it succeeded."""
    build = wait_finished(portal, token, start_build(portal, token, project)["id"], timeout)
    if build["state"] != "succeeded":
        log = portal.api("GET", f"/api/v1/builds/{build['id']}/log", token)[1]
        lines = "\n".join(ln["text"] for ln in log["lines"][-40:])
        raise AssertionError(f"{build['reason']}\n{lines}\n{more()}")
    return build


def buildx_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [
        line for line in out.splitlines() if "buildx build" in line and "--progress=rawjson" in line
    ]


class SecondEngine:
    """A second Docker engine on this machine, made by the test: own data and exec roots, its
    own managed containerd, listening only on 127.0.0.1:<port> with mutual TLS (certificates
    from tests/certs.py). `client_tls` is what the portal registers the node with."""

    def __init__(self, root: Path) -> None:
        from certs import client_tls, issue, make_ca

        self.root = root
        self.port = free_port()
        ca = make_ca("second engine CA")
        server = issue(ca, "127.0.0.1", server=True)
        self.client_tls = client_tls(ca, issue(ca, "crossport portal"))
        self.tls_dir = root / "tls"
        self.tls_dir.mkdir(parents=True)
        (self.tls_dir / "ca.pem").write_text(self.client_tls["ca"])
        (self.tls_dir / "server-cert.pem").write_text(server.cert_pem)
        (self.tls_dir / "server-key.pem").write_text(server.key_pem)
        (self.root / "daemon.json").write_text(
            json.dumps(
                {
                    "features": {"containerd-snapshotter": True},
                    "bridge": "none",
                    "iptables": False,
                    "ip6tables": False,
                }
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> None:
        # Short exec-root: containerd's socket path must fit in sun_path (108 bytes).
        self.exec_root = Path(tempfile.mkdtemp(prefix="cp2-", dir="/run"))
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                "/usr/sbin/dockerd",
                f"--config-file={self.root / 'daemon.json'}",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.exec_root}",
                f"--pidfile={self.root / 'dockerd.pid'}",
                f"--host={self.endpoint}",
                "--tlsverify",
                f"--tlscacert={self.tls_dir / 'ca.pem'}",
                f"--tlscert={self.tls_dir / 'server-cert.pem'}",
                f"--tlskey={self.tls_dir / 'server-key.pem'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while self.docker("info", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.root / "dockerd.log").read_text()[-3000:])
            time.sleep(0.5)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this engine, with the client certificate."""
        client = self.root / "client"
        if not client.exists():
            client.mkdir()
            for name in ("ca", "cert", "key"):
                (client / f"{name}.pem").write_text(self.client_tls[name])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "DOCKER_HOST": self.endpoint,
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(client),
        }
        proc = subprocess.run(
            ["docker", *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def stop(self) -> None:
        """Kill the engine and what it started (its containerd, BuildKit's runs)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None
        # dockerd bind-mounts its roots onto themselves; a killed one leaves them mounted.
        for root in (self.exec_root, self.root / "data"):
            subprocess.run(["umount", "-R", "-l", str(root)], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(self.exec_root)], check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sshd:
    """An sshd of the test's own on 127.0.0.1:<port>: the config lines it is given after the
    listen address, port and host key; start() returns once the port accepts connections."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, host_key: Path, config: str, timeout: float = 20) -> None:
        (self.root / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {host_key}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n" + config
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = open(self.root / "sshd.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.root / "sshd_config")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.root / "sshd.log").read_text()[-2000:])
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class SshNode:
    """An sshd made by the test on 127.0.0.1:<port>, its own host and client keys, in front of
    this machine's engine: what `ssh://user@host` nodes look like. The portal reaches it as
    the operator would set it up, through the ssh client's config: a `Host` block (between
    markers in ~/.ssh/config, removed by stop()) with the key and the known host key."""

    ALIAS = "crossport-ssh-e2e"
    BEGIN = f"# >>> {ALIAS} (tests/stack.py)"
    END = f"# <<< {ALIAS}"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sshd = Sshd(root)
        self.port = self.sshd.port
        self.config = Path.home() / ".ssh" / "config"

    @property
    def endpoint(self) -> str:
        return f"ssh://root@{self.ALIAS}"

    def start(self, timeout: float = 30) -> None:
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / name)],
                check=True,
            )
        (self.root / "authorized_keys").write_text((self.root / "client_key.pub").read_text())
        host_pub = (self.root / "host_key.pub").read_text().split()
        (self.root / "known_hosts").write_text(f"{self.ALIAS} {host_pub[0]} {host_pub[1]}\n")
        self.sshd.start(
            self.root / "host_key", f"AuthorizedKeysFile {self.root / 'authorized_keys'}\n"
        )
        self._write_client_config()
        deadline = time.monotonic() + timeout
        while subprocess.run(
            ["ssh", self.ALIAS, "-l", "root", "true"], capture_output=True, timeout=30
        ).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError((self.root / "sshd.log").read_text()[-2000:])
            time.sleep(0.3)

    def _write_client_config(self) -> None:
        self.config.parent.mkdir(mode=0o700, exist_ok=True)
        block = (
            f"{self.BEGIN}\nHost {self.ALIAS}\n  HostName 127.0.0.1\n  Port {self.port}\n"
            f"  IdentityFile {self.root / 'client_key'}\n  IdentitiesOnly yes\n"
            f"  HostKeyAlias {self.ALIAS}\n  UserKnownHostsFile {self.root / 'known_hosts'}\n"
            f"  StrictHostKeyChecking yes\n  BatchMode yes\n{self.END}\n"
        )
        self.config.write_text(block + self._without_block())
        self.config.chmod(0o600)

    def _without_block(self) -> str:
        text = self.config.read_text() if self.config.exists() else ""
        if self.BEGIN in text:
            head, _, rest = text.partition(self.BEGIN)
            text = head + rest.partition(self.END + "\n")[2]
        return text

    def stop(self) -> None:
        self.sshd.stop()
        if self.config.exists():
            self.config.write_text(self._without_block())


def login_session(portal: Any, persona: Any) -> Any:
    """A logged-in browser session as a function: get(path), or post a form with its CSRF token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(portal.url + "/login/", timeout=30).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    data = urllib.parse.urlencode(
        {"username": persona.username, "password": persona.password, "csrfmiddlewaretoken": csrf}
    ).encode()
    opener.open(
        urllib.request.Request(
            portal.url + "/login/", data=data, headers={"Referer": portal.url + "/login/"}
        ),
        timeout=30,
    )

    def get(path: str, form: dict[str, str] | None = None, htmx: bool = False) -> str:
        """GET, or POST a form with the session's CSRF token (as the page's form does)."""
        if form is None:
            return opener.open(portal.url + path, timeout=60).read().decode()
        token = next(c.value for c in jar if c.name == "csrftoken")
        headers = {"Referer": portal.url + path, "X-CSRFToken": token}
        if htmx:
            headers["HX-Request"] = "true"
        body = urllib.parse.urlencode(form | {"csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(portal.url + path, data=body, headers=headers)
        return opener.open(request, timeout=120).read().decode()

    return get


def commit_all(work: Path, message: str) -> list[str]:
    """`git init` a folder on branch main and commit all of it; the git command it used."""
    git = ["git", "-c", "user.name=E2E", "-c", "user.email=e2e@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", message], check=True)
    return git


def create_database(url_base: str) -> tuple[str, str]:
    """A new, empty PostgreSQL database beside URL_BASE's: its name and URL."""
    import psycopg

    name = f"crossport_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url_base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, url_base.rsplit("/", 1)[0] + "/" + name


def drop_database(url_base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url_base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
