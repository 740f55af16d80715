"""Grammars for values users type that end up on a buildx or git command line.

Image references follow github.com/distribution/reference (regexp.go, normalize.go);
platforms follow containerd's `platforms` normalisation, restricted to the Linux targets
the builders can run; git URLs and refs are restricted to what cannot be mistaken for an
option or a transport helper. Every function either returns the canonical value or raises
`InvalidValue` with a message fit to show in a form.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = [
    "ImageRef",
    "InvalidValue",
    "normalize_platform",
    "normalize_platforms",
    "parse_reference",
    "parse_repository",
    "validate_git_ref",
    "validate_git_url",
    "validate_tag",
]


class InvalidValue(ValueError):
    """A user-supplied value does not follow its grammar. str() is the form message."""

    def __init__(self, kind: str, value: object, reason: str) -> None:
        self.kind = kind
        self.value = value
        self.reason = reason
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        super().__init__(f"Invalid {kind} {shown}: {reason}.")


def _check_text(kind: str, text: object, max_length: int) -> str:
    if not isinstance(text, str):
        raise InvalidValue(kind, text, "expected text")
    if not text:
        raise InvalidValue(kind, text, "it is empty")
    if len(text) > max_length:
        raise InvalidValue(kind, text, f"it is longer than {max_length} characters")
    for char in text:
        if char.isspace():
            raise InvalidValue(kind, text, "it contains whitespace")
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise InvalidValue(kind, text, "it contains control or invisible characters")
    return text


# --- image references ---------------------------------------------------------------------
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
    _check_text(kind, text, 4096)
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
    _check_text("tag", text, 128)
    if not _TAG.fullmatch(text):
        raise InvalidValue("tag", text, _TAG_RULE)
    return text


# --- platforms ----------------------------------------------------------------------------
# Canonical containerd names, and for each architecture the variants it accepts (mapped to
# their canonical form; "" = no variant). Only Linux: that is what the builders run.

_ARCH_ALIASES = {
    "amd64": "amd64",
    "x86_64": "amd64",
    "x86-64": "amd64",
    "arm64": "arm64",
    "aarch64": "arm64",
    "arm": "arm",
    "386": "386",
    "i386": "386",
    "i686": "386",
    "x86": "386",
    "ppc64le": "ppc64le",
    "ppc64el": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
# Aliases that carry a variant of their own.
_ARCH_WITH_VARIANT = {
    "armhf": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv7l": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv6": ("arm", "v6"),
    "armv6l": ("arm", "v6"),
}
_VARIANTS = {
    "amd64": {"": "", "v1": "", "v2": "v2", "v3": "v3", "v4": "v4"},
    "arm64": {"": "", "v8": "", "8": ""},
    "arm": {"": "v7", "v7": "v7", "7": "v7", "v6": "v6", "6": "v6", "v5": "v5", "5": "v5"},
}
_KNOWN_OS = {"linux"}
MAX_PLATFORMS = 8


def normalize_platform(text: str) -> str:
    """`os/arch[/variant]` or an alias ("aarch64", "armhf", "x86_64") -> "linux/arm64"..."""
    kind = "platform"
    _check_text(kind, text, 64)
    parts = text.lower().split("/")
    if len(parts) > 3 or "" in parts:
        raise InvalidValue(kind, text, "expected os/arch[/variant], e.g. linux/arm64")
    if parts[0] in _KNOWN_OS:
        os_name, rest = parts[0], parts[1:]
        if not rest:
            raise InvalidValue(kind, text, "the architecture is missing, e.g. linux/arm64")
    elif len(parts) == 3:
        raise InvalidValue(kind, text, f"unknown operating system {parts[0]!r} (only linux)")
    else:
        os_name, rest = "linux", parts  # "arm64" or "arm/v7": the OS is implied
    arch_text = rest[0]
    variant = rest[1] if len(rest) > 1 else ""
    if arch_text in _ARCH_WITH_VARIANT:
        arch, implied = _ARCH_WITH_VARIANT[arch_text]
        if variant and variant != implied:
            raise InvalidValue(kind, text, f"{arch_text!r} already means {arch}/{implied}")
        variant = implied
    elif arch_text in _ARCH_ALIASES:
        arch = _ARCH_ALIASES[arch_text]
    elif len(parts) == 2 and parts[0] not in _KNOWN_OS:
        raise InvalidValue(kind, text, f"unknown operating system {parts[0]!r} (only linux)")
    else:
        raise InvalidValue(kind, text, f"unknown architecture {arch_text!r}")
    allowed = _VARIANTS.get(arch, {"": ""})
    if variant not in allowed:
        raise InvalidValue(kind, text, f"{arch} has no variant {variant!r}")
    canonical = f"{os_name}/{arch}"
    if allowed[variant]:
        canonical += f"/{allowed[variant]}"
    return canonical


def normalize_platforms(items: Iterable[str] | str) -> list[str]:
    """Normalise a comma/whitespace separated string or a list of platforms.

    Duplicates (after normalisation) are dropped, keeping the first; 1 to 8 platforms.
    """
    items = [items] if isinstance(items, str) else list(items)
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidValue("platform", item, "expected text")
        for word in re.split(r"[,\s]+", item):
            if word:
                platform = normalize_platform(word)
                if platform not in result:
                    result.append(platform)
    if not result:
        raise InvalidValue("platform list", items, "choose at least one platform")
    if len(result) > MAX_PLATFORMS:
        raise InvalidValue("platform list", items, f"at most {MAX_PLATFORMS} platforms")
    return result


# --- git ----------------------------------------------------------------------------------

MAX_GIT_URL_LENGTH = 2000
MAX_GIT_REF_LENGTH = 255
_GIT_SCHEMES = ("https", "ssh", "file")
_HOST_PORT = re.compile(
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
# Something a program could read as an option: a dash at the start or after a separator.
_OPTION_LIKE = re.compile(r"(?:^|[/@:=?&;,+])-")


# Everything up to the LAST "@" before the path: "https://a@b:c@host/" hides "a@b:c".
_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?P<userinfo>[^/?#]*)@")
_SSH_USER = re.compile(r"[A-Za-z0-9._-]{1,64}")


def validate_git_url(text: str) -> str:
    """An https://, ssh:// or file:// URL that git cannot mistake for an option or helper.

    Refused: other schemes (http, git, scp-like "host:path", "ext::cmd" transports),
    whitespace or control characters (raw or percent-encoded), a dash at the start or right
    after a separator (how "--upload-pack=..." and "-oProxyCommand=..." get in), "::"
    outside a bracketed IPv6 host, a host-less https/ssh URL, and a file URL that is not
    "file:///absolute/path".
    """
    kind = "git URL"
    userinfo = _USERINFO.match(text) if isinstance(text, str) else None
    if userinfo:
        # Checked first, and the value is never echoed: whatever sits before the last "@" may
        # be a secret (a password, or a token used as a user name).
        user = unquote(userinfo.group("userinfo"))
        if not (text.lower().startswith("ssh://") and _SSH_USER.fullmatch(user)):
            raise InvalidValue(
                kind,
                "(hidden: it contains credentials)",
                "credentials do not belong in the URL; only ssh:// URLs may name a plain user",
            )
    _check_text(kind, text, MAX_GIT_URL_LENGTH)
    decoded = unquote(text, errors="replace")
    if decoded != text:
        try:
            _check_text(kind, decoded, MAX_GIT_URL_LENGTH)
        except InvalidValue:
            raise InvalidValue(kind, text, "it encodes whitespace or control characters") from None
    if _OPTION_LIKE.search(text) or _OPTION_LIKE.search(decoded):
        raise InvalidValue(kind, text, "no part of it may start with '-'")
    scheme, sep, _ = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _GIT_SCHEMES:
        raise InvalidValue(kind, text, "use an https://, ssh:// or file:// URL")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise InvalidValue(kind, text, "the host is malformed") from exc
    host_port = parts.netloc.rpartition("@")[2]
    outside_host = text.replace(host_port, "", 1) if host_port.startswith("[") else text
    if "::" in outside_host:
        raise InvalidValue(kind, text, "'::' transport syntax is not allowed")
    if scheme == "file":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise InvalidValue(kind, text, "a file URL must be file:///absolute/path")
        return text
    if not _HOST_PORT.fullmatch(host_port):
        raise InvalidValue(kind, text, "it needs a host name, e.g. https://git.example.com/repo")
    try:
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError as exc:
        raise InvalidValue(kind, text, "the port is out of range") from exc
    if parts.path in ("", "/"):
        raise InvalidValue(kind, text, "it needs a repository path after the host")
    return text


def validate_git_ref(text: str) -> str:
    """A branch, tag or commit name valid for `git check-ref-format --allow-onelevel`,
    and not starting with "-"."""
    kind = "git branch, tag or commit"
    _check_text(kind, text, MAX_GIT_REF_LENGTH)
    problem = _ref_problem(text)
    if problem:
        raise InvalidValue(kind, text, problem)
    return text


def _ref_problem(text: str) -> str | None:
    if text.startswith("-"):
        return "it must not start with '-'"
    if text == "@":
        return "'@' alone is not a name"
    bad = sorted({char for char in text if char in "~^:?*[\\"})
    if bad:
        return "it must not contain " + " ".join(repr(char) for char in bad)
    if ".." in text:
        return "it must not contain '..'"
    if "@{" in text:
        return "it must not contain '@{'"
    if text.startswith("/") or text.endswith("/") or "//" in text:
        return "slashes must separate non-empty parts"
    if text.endswith("."):
        return "it must not end with '.'"
    for component in text.split("/"):
        if component.startswith("."):
            return "no part may start with '.'"
        if component.endswith(".lock"):
            return "no part may end with '.lock'"
    return None
