"""Finding the binary an image runs in its layers: whiteouts, symlinks in any component, PATH,
shells and interpreter scripts; and reading blobs from a registry over HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from builds import blobs, imagefiles, registry
from portal.grammar.reference import parse_reference

ELF_DATA = Path(__file__).parent / "data" / "elf"
ARM64_HEAD = (ELF_DATA / "busybox-arm64.head").read_bytes()
AMD64_HEAD = (ELF_DATA / "busybox-amd64.head").read_bytes()


def layer(path: Path, entries: list[tuple[str, str, bytes | str]]) -> Path:
    """A gzipped layer tar: (name, "file"|"dir"|"symlink"|"hardlink", content or target)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, value in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = str(value)
                tar.addfile(info)
            else:
                data = value if isinstance(value, bytes) else value.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def debian_like(tmp_path: Path) -> imagefiles.ImageTree:
    """Merged /usr (/bin -> usr/bin), python3 -> python3.11, an app script, later layers that
    delete and hide things."""
    tree = imagefiles.ImageTree()
    tree.add_layer(
        layer(
            tmp_path / "0.tgz",
            [
                ("bin", "symlink", "usr/bin"),
                ("usr/bin/", "dir", b""),
                ("usr/bin/python3.11", "file", ARM64_HEAD),
                ("usr/bin/python3", "symlink", "python3.11"),
                ("usr/bin/sh", "file", ARM64_HEAD),
                ("usr/bin/env", "file", ARM64_HEAD),
                ("opt/old/tool", "file", AMD64_HEAD),
                ("etc/alternatives/java", "symlink", "/usr/lib/jvm/bin/java"),
                ("usr/lib/jvm/bin/java", "file", ARM64_HEAD),
                ("usr/bin/java", "symlink", "/etc/alternatives/java"),
                ("usr/local/bin/hello", "hardlink", "usr/bin/python3.11"),
            ],
        )
    )
    tree.add_layer(
        layer(
            tmp_path / "1.tgz",
            [
                ("./app/run", "file", "#!/usr/bin/env python3\nprint('hi')\n"),
                ("app/.wh.secret", "file", b""),
                ("opt/old/.wh..wh..opq", "file", b""),
            ],
        )
    )
    return tree


def config(entrypoint: list[str] | None = None, cmd: list[str] | None = None, **extra: Any) -> Any:
    return {"config": {"Entrypoint": entrypoint, "Cmd": cmd, **extra}}


@pytest.mark.parametrize(
    ("cfg", "named", "real"),
    [
        (config(["python3", "-m", "app"]), "/usr/bin/python3", "/usr/bin/python3.11"),
        (config(None, ["/bin/python3"]), "/bin/python3", "/usr/bin/python3.11"),
        (config(["java", "-jar", "/app/app.jar"]), "/usr/bin/java", "/usr/lib/jvm/bin/java"),
        (
            config(["/bin/sh", "-c", "exec java -jar /a.jar"]),
            "/usr/bin/java",
            "/usr/lib/jvm/bin/java",
        ),
        (
            config(["/usr/bin/env", "-i", "A=1", "python3"]),
            "/usr/bin/python3",
            "/usr/bin/python3.11",
        ),
        # a script: its interpreter (#!/usr/bin/env python3) is what runs
        (config(None, ["./run"], WorkingDir="/app"), "/usr/bin/python3", "/usr/bin/python3.11"),
        (config(["python3"], Env=["PATH=/nowhere:/bin"]), "/bin/python3", "/usr/bin/python3.11"),
    ],
)
def test_the_program_is_found_through_path_links_and_interpreters(
    debian_like: imagefiles.ImageTree, cfg: Any, named: str, real: str
) -> None:
    found = imagefiles.find_binary(debian_like, cfg)
    assert isinstance(found, imagefiles.Found), found
    assert (found.named, found.real, found.head) == (named, real, ARM64_HEAD)


def test_whiteouts_hide_files_of_lower_layers(
    debian_like: imagefiles.ImageTree, tmp_path: Path
) -> None:
    assert debian_like.resolve("/opt/old/tool") is None  # opaque folder
    debian_like.add_layer(layer(tmp_path / "2.tgz", [("usr/bin/.wh.python3.11", "file", b"")]))
    assert imagefiles.find_binary(debian_like, config(["python3"])) == "python3 is not in the image"


def test_hard_links_are_read_through(debian_like: imagefiles.ImageTree) -> None:
    found = imagefiles.find_binary(debian_like, config(["/usr/local/bin/hello"]))
    assert isinstance(found, imagefiles.Found) and found.head == ARM64_HEAD


def test_nothing_to_check(debian_like: imagefiles.ImageTree, tmp_path: Path) -> None:
    assert imagefiles.find_binary(debian_like, config()) == "the image names no ENTRYPOINT or CMD"
    loop = imagefiles.ImageTree()
    loop.add_layer(layer(tmp_path / "l.tgz", [("a", "symlink", "b"), ("b", "symlink", "a")]))
    assert loop.resolve("/a") is None


# --- blobs over HTTP ----------------------------------------------------------------------------

BLOB = json.dumps({"architecture": "arm64", "os": "linux"}).encode()
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


class _Registry(BaseHTTPRequestHandler):
    """A registry that wants a bearer token from its realm (which wants the team's login)."""

    seen: list[tuple[str, str]] = []  # noqa: RUF012 - one test server at a time

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        auth = self.headers.get("Authorization", "")
        self.seen.append((self.path, auth))
        host = self.headers["Host"]
        if self.path.startswith("/token?"):
            ok = auth == "Basic dGVhbTpzM2NyZXQ="  # team:s3cret
            return self._send(200 if ok else 401, b'{"token": "t0k"}' if ok else b"")
        if auth != "Bearer t0k":
            challenge = f'Bearer realm="http://{host}/token",service="test"'
            return self._send(401, b"", {"WWW-Authenticate": challenge})
        if self.path == f"/v2/alpha/hello/blobs/{BLOB_DIGEST}":
            return self._send(200, BLOB)
        if self.path.endswith("/blobs/sha256:" + "0" * 64):
            return self._send(200, b"other bytes")
        return self._send(404, b"")


@pytest.fixture
def http_registry(tmp_path: Path, settings: Any) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    domain = f"127.0.0.1:{server.server_address[1]}"
    settings.PORTAL_OUTBOUND_ALLOW = [domain]
    folder = tmp_path / "docker-config"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"auths": {domain: {"auth": "dGVhbTpzM2NyZXQ="}}})
    )
    _Registry.seen = []
    with registry.using_config(str(folder)):
        yield domain
    server.shutdown()


def test_a_blob_is_read_with_the_teams_login_and_checked(http_registry: str) -> None:
    ref = parse_reference(f"{http_registry}/alpha/hello")
    assert blobs.read_json(ref, BLOB_DIGEST) == {"architecture": "arm64", "os": "linux"}
    token_requests = [s for s in _Registry.seen if s[0].startswith("/token?")]
    assert token_requests and "scope=repository%3Aalpha%2Fhello%3Apull" in token_requests[0][0]
    with pytest.raises(registry.RegistryError, match="other bytes"):
        blobs.read_json(ref, "sha256:" + "0" * 64)
    with pytest.raises(registry.RegistryError, match="not found"):
        blobs.read_json(ref, "sha256:" + "1" * 64)


def test_a_refused_registry_is_not_contacted(http_registry: str, settings: Any) -> None:
    from portal.outbound import Refused

    settings.PORTAL_OUTBOUND_ALLOW = []
    with pytest.raises(Refused):
        blobs.read_json(parse_reference(f"{http_registry}/alpha/hello"), BLOB_DIGEST)
    assert _Registry.seen == []


def test_a_layer_tarfile_cannot_open_is_not_checked(monkeypatch: Any, tmp_path: Path) -> None:
    from builds import guardrails

    manifest = {
        "config": {"digest": "sha256:" + "c" * 64},
        "layers": [{"digest": "sha256:" + "d" * 64}],
    }
    monkeypatch.setattr(registry, "fetch_manifest", lambda *a, **k: json.dumps(manifest).encode())
    monkeypatch.setattr(blobs, "read_json", lambda *a, **k: {"config": {"Cmd": ["/app"]}})

    def download(ref: Any, digest: str, dest: Path, tick: Any = None) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"\x28\xb5\x2f\xfd" + b"zstd frame")  # a zstd layer
        return dest

    monkeypatch.setattr(blobs, "download", download)
    ref = parse_reference("localhost:5000/alpha/hello")
    check = guardrails.check_architecture(ref, "linux/arm64", "sha256:" + "e" * 64, tmp_path / "w")
    assert check.ok is None and check.note.startswith("not checked: a layer could not be read")
    assert not (tmp_path / "w").exists()
