"""Row ids as users write them: the `<id:pk>` path converter, and ids from forms and queries.

Any number of digits is not an id: a 20-digit one reaches the database, which cannot compare
it with a 64-bit key (PostgreSQL raises, SQLite overflows), a 500 instead of a 404. Up to 18
ASCII digits (below 2**63) is the one rule, whether the id comes in a path, a form or a query.
"""

from __future__ import annotations

from django.urls import register_converter

MAX_DIGITS = 18


def parse_id(text: str) -> int | None:
    """The row id `text` writes, or None when it cannot name a row."""
    if text.isascii() and text.isdecimal() and len(text) <= MAX_DIGITS:
        return int(text)
    return None


class IdConverter:
    regex = f"[0-9]{{1,{MAX_DIGITS}}}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
