"""Grammars for values users type that end up on a buildx or git command line.

Image references follow github.com/distribution/reference (`reference`); platforms follow
containerd's `platforms` normalisation, restricted to the Linux targets the builders can run
(`platform`); git URLs and refs are restricted to what cannot be mistaken for an option or a
transport helper (`git`). Every function either returns the canonical value or raises
`InvalidValue` with a message fit to show in a form.

Hand-written on purpose: they are small, they are the first line against argument injection,
and no maintained Python library implements distribution's or containerd's rules.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

__all__ = ["InvalidValue", "check_text", "unique_values"]


class InvalidValue(ValueError):
    """A user-supplied value does not follow its grammar. str() is the form message."""

    def __init__(self, kind: str, value: object, reason: str) -> None:
        self.kind = kind
        self.value = value
        self.reason = reason
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        super().__init__(f"Invalid {kind} {shown}: {reason}.")


def check_text(kind: str, text: object, max_length: int) -> str:
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


def unique_values(
    kind: str, raw: object, values: Iterable[str], *, most: int, noun: str, empty: str
) -> list[str]:
    """`values` (already canonical) without repeats, first kept; 1 to `most` of them."""
    result = list(dict.fromkeys(values))
    if not result:
        raise InvalidValue(kind, raw, empty)
    if len(result) > most:
        raise InvalidValue(kind, raw, f"at most {most} {noun}")
    return result
