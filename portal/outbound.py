"""The outbound guard: the one rule for every connection the portal opens to a host a user named.

A team member names hosts (a git URL, an image repository, a registry login), and the portal
then connects there from inside the operator's network. Without a rule that makes the portal a
proxy into that network: cloud metadata at 169.254.169.254, databases on 10.x, the Docker
socket on 127.0.0.1. So before connecting, the name is resolved once and every address it
gives must be public (not loopback, link-local, private, unique-local, unspecified, multicast,
reserved, or an IPv4-mapped / NAT64 / 6to4 spelling of one of those); the connection is then
made to that checked address (`Destination.address`), never through a second lookup that could
answer differently. Operators allow what they need with `PORTAL_OUTBOUND_ALLOW`: `host`,
`host:port` or a CIDR, comma-separated.

Every refusal has one message, whatever the reason and whether or not anything listens there,
so the answers cannot be used to map the network. Builder nodes are not checked here: only
staff register them.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings

from portal.grammar import InvalidValue
from portal.grammar.reference import DEFAULT_DOMAIN

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

REFUSED = (
    "the portal does not connect to this host: it is not a public address and "
    "PORTAL_OUTBOUND_ALLOW does not list it"
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The one name lookup (a module attribute, so tests can answer for names no DNS knows).
getaddrinfo = socket.getaddrinfo


class Refused(InvalidValue):
    """A destination the guard does not allow. The message never says why (see module doc)."""

    def __init__(self, kind: str, value: object) -> None:
        super().__init__(kind, value, REFUSED)


@dataclass(frozen=True)
class Destination:
    """A checked destination: connect to `address`, speak to `host` (TLS name, Host header)."""

    host: str
    port: int
    address: str


@dataclass(frozen=True)
class Allowed:
    hosts: frozenset[tuple[str, int | None]]
    networks: tuple[Network, ...]

    def host(self, host: str, port: int) -> bool:
        return (host, None) in self.hosts or (host, port) in self.hosts

    def address(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 spelling stands for (mapped, NAT64, 6to4, IPv4-compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d, the deprecated "compatible" form
        return ipaddress.IPv4Address(int(ip))
    return None


def is_public(ip: IPAddress) -> bool:
    """True for an address on the public internet; False for every kind of internal one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public(embedded)
    return not (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or not ip.is_global
    )


def parse_allow(entries: Iterable[str]) -> Allowed:
    """`host`, `host:port`, `[v6]:port` or a CIDR (`10.1.2.0/24`, `fd00::/8`)."""
    hosts: set[tuple[str, int | None]] = set()
    networks: list[Network] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        if "/" in entry:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        host, port = split_host_port(entry)
        hosts.add((host, port))
    return Allowed(frozenset(hosts), tuple(networks))


def split_host_port(text: str) -> tuple[str, int | None]:
    """ "host", "host:port", "[::1]:port" -> (host without brackets, port or None)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if port and not (port.isascii() and port.isdecimal() and 0 < int(port) < 65536):
        raise ValueError(f"bad port in {text!r}")
    return host, int(port) if port else None


@lru_cache(maxsize=8)
def _allowed(entries: tuple[str, ...]) -> Allowed:
    return parse_allow(entries)


def allowed() -> Allowed:
    return _allowed(tuple(settings.PORTAL_OUTBOUND_ALLOW))


# The numeric IPv4 spellings the C resolver accepts (inet_aton): `127.1`, `2130706433`,
# `0x7f.1`, `0`. No DNS name looks like this, so they are addresses, not names.
_INET_ATON = re.compile(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _INET_ATON.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def refused_without_lookup(host: str, port: int) -> bool:
    """What is refused whatever DNS says: `localhost` and literal internal addresses.

    Used where a value is saved (a project, a login), so an obviously internal destination is
    refused at once; the full check (`resolve`) runs again at every connection.
    """
    host = canonical_host(host)
    if allowed().host(host, port):
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = _literal(host)
    return ip is not None and not is_public(ip) and not allowed().address(ip)


def canonical_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def resolve(host: str, port: int, *, kind: str = "host", shown: object = None) -> Destination:
    """Resolve `host` once and check every address; the one to connect to, or `Refused`.

    A name the operator listed is allowed at whatever address it resolves to (still pinned);
    otherwise each address must be public or inside a listed CIDR. A name that does not resolve
    is refused with the same message: "no such name" would tell internal names apart.
    """
    name = canonical_host(host)
    shown = host if shown is None else shown
    rules = allowed()
    try:
        infos = getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Refused(kind, shown) from exc
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise Refused(kind, shown)
    if not rules.host(name, port) and not all(
        is_public(ip) or rules.address(ip) for ip in addresses
    ):
        raise Refused(kind, shown)
    return Destination(host=name, port=port, address=str(addresses[0]))


# --- where user-named destinations are --------------------------------------------------------

DEFAULT_PORTS = {"https": 443, "ssh": 22}


def git_address(url: str) -> tuple[str, int] | None:
    """(host, port) an https:// or ssh:// git URL is fetched from; None for file://."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return None
    return parts.hostname or "", parts.port or DEFAULT_PORTS.get(scheme, 443)


def registry_address(domain: str) -> tuple[str, int]:
    """Where a reference's domain is served: Docker Hub's API host, else host[:port]."""
    if domain == DEFAULT_DOMAIN:
        return "registry-1.docker.io", 443
    host, port = split_host_port(domain)
    return host, port or 443


def file_url_problem(url: str) -> str | None:
    """file:// reads the portal host's disk: only below PORTAL_GIT_FILE_ROOTS (none by default),
    so one team cannot clone the portal's own or another team's repositories."""
    if not url.lower().startswith("file://"):
        return None
    path = Path(unquote(urlsplit(url).path)).resolve()
    roots = [Path(root).resolve() for root in settings.PORTAL_GIT_FILE_ROOTS]
    if any(path == root or root in path.parents for root in roots):
        return None
    where = ", ".join(map(str, roots)) if roots else "none configured"
    return f"file:// repositories are allowed only below PORTAL_GIT_FILE_ROOTS ({where})"


def check_git_url(url: str) -> None:
    """The checks that need no network, for when a git URL is saved: file:// roots, and hosts
    refused whatever DNS says (localhost, literal internal addresses)."""
    problem = file_url_problem(url)
    if problem:
        raise InvalidValue("git URL", url, problem)
    address = git_address(url)
    if address is not None and refused_without_lookup(*address):
        raise Refused("git URL", url)
