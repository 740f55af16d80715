"""A user name and a password or token: the one rule for every secret login a team saves
(registry logins, git tokens). Values are never echoed back in the error."""

from __future__ import annotations

from portal.grammar import InvalidValue


def validate_login(username: object, password: object) -> tuple[str, str]:
    if not isinstance(username, str) or not username or len(username) > 255:
        raise InvalidValue("username", "(hidden)", "give a user name of at most 255 characters")
    if any(c in username for c in ":\r\n\0"):
        raise InvalidValue("username", "(hidden)", "no ':' or control characters")
    if not isinstance(password, str) or not password or len(password) > 4096:
        raise InvalidValue("password", "(hidden)", "give a password or token (at most 4096)")
    if any(c in password for c in "\r\n\0"):
        raise InvalidValue("password", "(hidden)", "no line breaks or NUL characters")
    return username, password
