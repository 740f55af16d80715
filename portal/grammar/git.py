"""Git URLs and refs, restricted to what git cannot mistake for an option or a transport helper."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from . import InvalidValue, check_text

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


def without_userinfo(url: str) -> str:
    """The URL with everything before its host's last "@" removed (a user, a password, a
    token): what may be shown or stamped into an image."""
    match = _USERINFO.match(url)
    return url[: match.start("userinfo")] + url[match.end() :] if match else url


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
    check_text(kind, text, MAX_GIT_URL_LENGTH)
    decoded = unquote(text, errors="replace")
    if decoded != text:
        try:
            check_text(kind, decoded, MAX_GIT_URL_LENGTH)
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
    check_text(kind, text, MAX_GIT_REF_LENGTH)
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
