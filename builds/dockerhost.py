"""Builder node endpoints and their TLS material, checked before any connection is made.

An endpoint is what DOCKER_HOST holds: `unix:///path`, `ssh://user@host[:port]` or
`tcp://host:port`. A Docker port without mutual TLS gives root on that machine to anyone who can
reach it, so plain tcp is accepted only on loopback. The TLS material (CA, client certificate
and key, PEM) must parse, belong together and be valid now; cryptography does the X.509 work.
"""

from __future__ import annotations

import ipaddress
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from portal.grammar import InvalidValue

_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_UNIX_PATH = re.compile(r"/[A-Za-z0-9_./-]{1,200}")
OPEN_PORT_RISK = (
    "plain tcp:// is allowed only on loopback: an open Docker port gives root on that machine "
    "to anyone who can reach it; give the node's CA, client certificate and key (mutual TLS)"
)


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str = ""
    port: int = 0
    user: str = ""
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        user = f"{self.user}@" if self.user else ""
        return f"{self.scheme}://{user}{host}{port}"

    @property
    def loopback(self) -> bool:
        if self.scheme == "unix":
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def _host(kind: str, text: str, value: str) -> str:
    if value.startswith("[") and value.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(value[1:-1]))
        except ValueError:
            raise InvalidValue(kind, text, "the address in brackets is not IPv6") from None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(value):
        raise InvalidValue(kind, text, "the host is not a host name or IP address")
    return value.lower()


def _split_port(kind: str, text: str, rest: str, required: bool) -> tuple[str, int]:
    host, port_text = rest, ""
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise InvalidValue(kind, text, "missing ']' after the IPv6 address")
        host, after = rest[: close + 1], rest[close + 1 :]
        if after and not after.startswith(":"):
            raise InvalidValue(kind, text, "unexpected text after the address")
        port_text = after[1:] if after else ""
    elif ":" in rest:
        host, _, port_text = rest.rpartition(":")
    if not port_text:
        if required:
            raise InvalidValue(kind, text, "give a port, as in tcp://host:2376")
        return host, 0
    if not (port_text.isascii() and port_text.isdecimal()) or not 0 < int(port_text) < 65536:
        raise InvalidValue(kind, text, "the port must be a number from 1 to 65535")
    return host, int(port_text)


def parse_endpoint(text: object) -> Endpoint:
    kind = "endpoint"
    if not isinstance(text, str) or not text:
        raise InvalidValue(kind, text, "expected unix://, ssh://user@host or tcp://host:port")
    if len(text) > 300 or not text.isascii() or not text.isprintable() or " " in text:
        raise InvalidValue(kind, text, "only printable ASCII without spaces, at most 300")
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("unix", "ssh", "tcp"):
        raise InvalidValue(kind, text, "the scheme must be unix://, ssh:// or tcp://")
    if scheme == "unix":
        if not _UNIX_PATH.fullmatch(rest) or "/../" in rest + "/" or "//" in rest:
            raise InvalidValue(kind, text, "expected an absolute socket path, as in unix:///x.sock")
        return Endpoint("unix", path=rest)
    if any(c in rest for c in "/?#") and not rest.endswith("/"):
        raise InvalidValue(kind, text, "no path, query or fragment after the host")
    rest = rest.rstrip("/")
    user = ""
    if "@" in rest:
        if scheme != "ssh":
            raise InvalidValue(kind, text, "credentials do not belong in a tcp:// endpoint")
        user, _, rest = rest.rpartition("@")
        if not _USER.fullmatch(user):
            raise InvalidValue(kind, text, "the ssh user name is not valid")
    elif scheme == "ssh":
        raise InvalidValue(kind, text, "give the ssh user, as in ssh://builder@host")
    host_text, port = _split_port(kind, text, rest, required=scheme == "tcp")
    return Endpoint(scheme, host=_host(kind, text, host_text), port=port, user=user)


@dataclass(frozen=True)
class TlsMaterial:
    ca: str
    cert: str
    key: str

    def files(self) -> dict[str, str]:
        """The names the docker CLI expects in DOCKER_CERT_PATH."""
        return {"ca.pem": self.ca, "cert.pem": self.cert, "key.pem": self.key}


@contextmanager
def cert_dir(tls: TlsMaterial | None, parent: Path | None = None) -> Iterator[Path | None]:
    """The material as files (mode 0600) for the length of one connection or build; a build
    puts them in its workspace, which the reaper removes even when its worker was killed."""
    if tls is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="crossport-tls-", dir=parent) as tmp:
        folder = Path(tmp)
        for name, text in tls.files().items():
            path = folder / name
            path.touch(mode=0o600)
            path.write_text(text)
        yield folder


def _load_cert(kind: str, pem: str) -> x509.Certificate:
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise InvalidValue(kind, "(PEM)", "not a PEM certificate") from None
    if len(certs) != 1:
        raise InvalidValue(kind, "(PEM)", "give exactly one certificate")
    return certs[0]


def _check_dates(kind: str, cert: x509.Certificate, now: datetime) -> None:
    if cert.not_valid_after_utc <= now:
        expired = f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        raise InvalidValue(kind, "(PEM)", f"the certificate expired on {expired}")
    if cert.not_valid_before_utc > now:
        raise InvalidValue(kind, "(PEM)", "the certificate is not valid yet")


def validate_tls(data: object, now: datetime | None = None) -> tuple[TlsMaterial, datetime]:
    """Check PEM strings `ca`, `cert` and `key`; returns them and the client cert's expiry."""
    if not isinstance(data, dict):
        raise InvalidValue("tls", "(object)", "expected an object with ca, cert and key (PEM)")
    unknown = set(data) - {"ca", "cert", "key"}
    if unknown:
        raise InvalidValue("tls", sorted(unknown), "unknown fields; expected ca, cert and key")
    for name in ("ca", "cert", "key"):
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidValue(f"tls {name}", "(missing)", "give all of ca, cert and key as PEM")
        if len(value) > 20000:
            raise InvalidValue(f"tls {name}", "(PEM)", "too long for a PEM certificate or key")
    now = now or datetime.now(UTC)
    ca = _load_cert("tls ca", data["ca"])
    cert = _load_cert("tls cert", data["cert"])
    try:
        key = serialization.load_pem_private_key(data["key"].encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidValue("tls key", "(PEM)", "not an unencrypted PEM private key") from None
    _check_dates("tls ca", ca, now)
    _check_dates("tls cert", cert, now)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise InvalidValue("tls key", "(PEM)", "the key does not belong to the client certificate")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise InvalidValue(
            "tls cert", "(PEM)", "the client certificate is not signed by the CA"
        ) from None
    material = TlsMaterial(ca=data["ca"], cert=data["cert"], key=data["key"])
    return material, cert.not_valid_after_utc


def validate_node_endpoint(
    text: object, tls: object
) -> tuple[Endpoint, TlsMaterial | None, datetime | None]:
    """The whole rule: grammar, TLS only for tcp, plain tcp only on loopback. Returns the
    endpoint, the TLS material and when the client certificate expires."""
    endpoint = parse_endpoint(text)
    material, expires = None, None
    if tls not in (None, {}, ""):
        if endpoint.scheme != "tcp":
            raise InvalidValue("tls", "(PEM)", "TLS material applies only to tcp:// endpoints")
        material, expires = validate_tls(tls)
    if endpoint.scheme == "tcp" and material is None and not endpoint.loopback:
        raise InvalidValue("endpoint", str(endpoint), OPEN_PORT_RISK)
    return endpoint, material, expires
