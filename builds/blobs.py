"""Read blobs (an image's config and layers) from a registry's HTTP API.

`docker buildx imagetools` (``builds.registry``) reads manifests but has no command that gives a
blob, and the architecture guardrail needs an image's config and the layer holding its
entrypoint. The rules are those of ``builds.registry``: the reference's registry passes the
outbound guard first; every connection (the registry, its token realm, a blob redirect) goes
through the portal's egress proxy, which checks each host and pins the address it checked; the
login is the one the docker CLI would use (``auths`` of the same DOCKER_CONFIG; a credential
helper is not run, so such a registry is read anonymously); the Authorization header is never
sent on to a redirect's host; every blob is checked against its digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from builds import egress, registry
from builds.proc import ProcessStopped
from portal import outbound
from portal.grammar.reference import DEFAULT_DOMAIN, ImageRef

Tick = Callable[[], bool] | None
TIMEOUT = 60
CHUNK = 1 << 20
MAX_CONFIG = 4 << 20
MAX_LAYER = 4 << 30
DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class _Opener:
    """urllib through the egress proxy, with the registry's login for its challenges."""

    def __init__(self, ref: ImageRef) -> None:
        self.ref = ref
        proxy = egress.proxy_env()["HTTP_PROXY"]
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": proxy, "https": proxy}),
            urllib.request.HTTPSHandler(context=ssl.create_default_context()),
        )
        self.authorization = ""
        host, port = outbound.registry_address(ref.domain)
        self.hosts = [f"https://{host}:{port}"]
        if host == "localhost" or host.startswith("127.") or host == "::1":
            # As the docker CLI does: a registry on this host may speak plain HTTP.
            self.hosts.append(f"http://{host}:{port}")

    def open(self, path: str, accept: str = "") -> IO[bytes]:
        last: Exception | None = None
        for base in list(self.hosts):
            try:
                return self._open(f"{base}{path}", accept)
            except urllib.error.HTTPError:
                raise
            except (ssl.SSLError, urllib.error.URLError) as exc:
                if not isinstance(getattr(exc, "reason", exc), ssl.SSLError):
                    raise
                last = exc
                self.hosts.remove(base)  # spoke TLS to a plain-HTTP registry: not again
        raise registry.RegistryError(f"{registry.UNREACHABLE} ({last})")

    def _open(self, url: str, accept: str) -> IO[bytes]:
        for attempt in range(2):
            request = urllib.request.Request(url)
            if accept:
                request.add_header("Accept", accept)
            if self.authorization:
                request.add_unredirected_header("Authorization", self.authorization)
            try:
                response: IO[bytes] = self.opener.open(request, timeout=TIMEOUT)
                return response
            except urllib.error.HTTPError as exc:
                if exc.code != 401 or attempt:
                    raise
                self.authorization = self._authorize(exc.headers.get("WWW-Authenticate", ""))
                if not self.authorization:
                    raise
        raise AssertionError("unreachable")

    def _login(self) -> str:
        """Basic credentials ("user:password" base64) from the docker config's `auths`."""
        folder = registry.DOCKER_CONFIG.get() or os.environ.get("DOCKER_CONFIG", "")
        path = Path(folder or Path.home() / ".docker") / "config.json"
        try:
            auths = json.loads(path.read_text()).get("auths") or {}
        except (OSError, ValueError, AttributeError):
            return ""
        keys = DOCKER_HUB_KEYS if self.ref.domain == DEFAULT_DOMAIN else (self.ref.domain,)
        for key in [*keys, *(f"https://{k}" for k in keys)]:
            entry = auths.get(key)
            if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
                return str(entry["auth"])
        return ""

    def _authorize(self, challenge: str) -> str:
        scheme, _, params = challenge.partition(" ")
        login = self._login()
        if scheme.lower() == "basic":
            return f"Basic {login}" if login else ""
        if scheme.lower() != "bearer":
            return ""
        fields = dict(_CHALLENGE.findall(params))
        realm = fields.pop("realm", "")
        if not realm.startswith(("https://", "http://")):
            return ""
        fields.setdefault("scope", f"repository:{self.ref.path}:pull")
        request = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(fields)}")
        if login:
            request.add_unredirected_header("Authorization", f"Basic {login}")
        try:
            with self.opener.open(request, timeout=TIMEOUT) as response:
                data = json.loads(response.read(1 << 20))
        except (OSError, ValueError) as exc:
            raise registry.RegistryError("unauthorized: no token from the registry") from exc
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else ""
        return f"Bearer {token}" if token else ""


def _copy(ref: ImageRef, digest: str, out: IO[bytes], limit: int, tick: Tick) -> None:
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise registry.RegistryError(f"not a sha256 digest: {digest}")
    registry.check_registry(ref.domain, shown=ref.repository)
    hasher, size = hashlib.sha256(), 0
    try:
        with _Opener(ref).open(f"/v2/{ref.path}/blobs/{digest}") as response:
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise registry.RegistryError(f"blob {digest} is larger than {limit} bytes")
                hasher.update(chunk)
                out.write(chunk)
                if tick is not None and tick():
                    raise ProcessStopped()
    except urllib.error.HTTPError as exc:
        said = "not found" if exc.code == 404 else f"HTTP {exc.code}"
        if exc.code in (401, 403):
            said = "unauthorized: the registry refused the login (or anonymous access)"
        raise registry.RegistryError(f"reading blob {digest}: {said}") from exc
    except (OSError, urllib.error.URLError) as exc:
        raise registry.RegistryError(f"reading blob {digest}: {registry.UNREACHABLE}") from exc
    if "sha256:" + hasher.hexdigest() != digest:
        raise registry.RegistryError(f"registry served other bytes for {digest}")


class _Buffer(list[bytes]):
    def write(self, chunk: bytes) -> None:
        self.append(chunk)


def read_json(ref: ImageRef, digest: str, tick: Tick = None) -> dict[str, Any]:
    """A small JSON blob (an image config)."""
    buffer = _Buffer()
    _copy(ref, digest, buffer, MAX_CONFIG, tick)  # type: ignore[arg-type]
    data = json.loads(b"".join(buffer))
    if not isinstance(data, dict):
        raise registry.RegistryError(f"blob {digest} is not a JSON object")
    return data


def download(ref: ImageRef, digest: str, dest: Path, tick: Tick = None) -> Path:
    """A layer, written to `dest` (removed again when it was not the blob asked for)."""
    try:
        with dest.open("wb") as out:
            _copy(ref, digest, out, MAX_LAYER, tick)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest
