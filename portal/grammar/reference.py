"""Image references, repositories and tags.

After github.com/distribution/reference (regexp.go, normalize.go).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import InvalidValue, check_text

# Patterns from distribution/reference regexp.go. Python's \w and $ differ from Go's
# (Unicode letters, a trailing newline), hence explicit classes and fullmatch.

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = re.compile(rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
# go-digest's registered algorithms and their encodings.
_DIGEST_ENCODED = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha384": re.compile(r"[a-f0-9]{96}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
}
NAME_TOTAL_LENGTH_MAX = 255
DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
# Docker Hub answers under several names; references call it docker.io.
DOCKER_HUB_ALIASES = (DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, "registry-1.docker.io")
OFFICIAL_REPO_PREFIX = "library/"


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference. domain and path are normalised as docker does:
    "alpine" is domain "docker.io", path "library/alpine"."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> ImageRef:
    """Parse `[domain[:port]/]path[:tag][@digest]` into a normalised `ImageRef`.

    Deliberate differences from distribution: a first component with uppercase letters
    but no "." or ":" ("Alice/app") is refused as an uppercase repository name instead of
    being taken as a registry host called "Alice"; and the host is made canonical (lowercase,
    Docker Hub's other names as docker.io), so one repository has one spelling wherever the
    portal compares repositories (team prefixes, project owners, immutable versions, logins).
    """
    kind = "image reference"
    check_text(kind, text, 4096)
    if _IDENTIFIER.fullmatch(text):
        raise InvalidValue(kind, text, "a bare 64-character hex string is an image ID")
    name, digest = text, None
    if "@" in text:
        name, _, digest = text.partition("@")
        _check_digest(kind, text, digest)
    tag = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidValue(kind, text, _TAG_RULE)
    domain, path = _split_domain(kind, text, name)
    repository = f"{domain}/{path}"
    if len(repository) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidValue(
            kind, text, f"the repository name is longer than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    return ImageRef(domain=domain, path=path, tag=tag, digest=digest)


def _check_digest(kind: str, text: str, digest: str) -> None:
    if not _DIGEST.fullmatch(digest):
        raise InvalidValue(kind, text, "the digest must look like sha256:<64 hex digits>")
    algorithm, _, encoded = digest.partition(":")
    pattern = _DIGEST_ENCODED.get(algorithm)
    if pattern is None:
        raise InvalidValue(kind, text, f"unsupported digest algorithm {algorithm!r}")
    if not pattern.fullmatch(encoded):
        raise InvalidValue(kind, text, f"the {algorithm} digest has the wrong length or case")


def is_registry_host(first: str) -> bool:
    """normalize.go splitDockerDomain: a name's first component is a registry host when it is
    "localhost" or contains "." or ":"; otherwise the name is on Docker Hub."""
    return first == "localhost" or "." in first or ":" in first


def _split_domain(kind: str, text: str, name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and is_registry_host(first):
        domain, path = first, rest
        if not _DOMAIN_AND_PORT.fullmatch(domain):
            raise InvalidValue(kind, text, f"{domain!r} is not a valid registry host[:port]")
        domain = canonical_domain(domain)
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    if not _REMOTE_NAME.fullmatch(path):
        if _REMOTE_NAME.fullmatch(path.lower()):
            raise InvalidValue(kind, text, "the repository name must be lowercase")
        raise InvalidValue(kind, text, _PATH_RULE)
    return domain, path


def canonical_domain(host: str) -> str:
    """Host names are case-insensitive; Docker Hub is docker.io whichever name was used."""
    host = host.lower()
    return DEFAULT_DOMAIN if host in DOCKER_HUB_ALIASES else host


_PATH_RULE = (
    "the repository path is made of lowercase letters and digits, separated by '/', and "
    "inside a component by '.', '_', '__' or dashes, never at the start or end"
)
_TAG_RULE = "a tag is 1 to 128 letters, digits, '_', '.' or '-', and does not start with '.' or '-'"


def parse_repository(text: str) -> ImageRef:
    """Parse an image repository (where a project pushes): a reference without tag or digest."""
    ref = parse_reference(text)
    if ref.tag is not None or ref.digest is not None:
        raise InvalidValue("image repository", text, "leave out the tag and digest")
    return ref


def validate_tag(text: str) -> str:
    check_text("tag", text, 128)
    if not _TAG.fullmatch(text):
        raise InvalidValue("tag", text, _TAG_RULE)
    return text
