"""Hiding secret values in build output: every stored, streamed or answered log line (and a
failed build's reasons) passes through one Redactor.

A value is hidden as itself, line by line (a multi-line file such as a pip.conf is printed a
line at a time), and in base64 (standard and URL-safe, with and without padding), since tools
print credentials encoded (HTTP basic auth, docker's config). Lines are whole by the time they
get here: the rawjson tracker joins a vertex's log chunks up to the newline first.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

MASK = "***"
MIN_PART = 6  # shorter lines of a multi-line value ("[x]", "}") are too common to hide
# Credentials inside the config files secrets usually are, hidden on their own too, since a
# tool may print just that part: URL user:password@, .netrc, Maven's <password>, .npmrc tokens.
EMBEDDED = re.compile(
    r"://[^/@\s:]*:([^/@\s]+)@"
    r"|\bpassword\s+(\S+)"
    r"|<password>([^<]+)</password>"
    r"|_(?:authToken|auth|password)\s*=\s*(\S+)"
)
MIN_EMBEDDED = 4


def _forms(value: str) -> set[str]:
    parts = {value, value.strip()}
    if "\n" in value:
        parts |= {line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_PART}
    for match in EMBEDDED.finditer(value):
        parts |= {g for g in match.groups() if g and len(g) >= MIN_EMBEDDED}
    forms = set(parts)
    for part in parts:
        raw = part.encode()
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            text = encoded.decode("ascii")
            forms |= {text, text.rstrip("=")}
    return {form for form in forms if form}


class Redactor:
    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            if value:
                forms |= _forms(value)
        # Longest first: a value's base64 contains no shorter form's text by accident only.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text
