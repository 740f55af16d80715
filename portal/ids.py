"""The `<id:pk>` path converter: a row id the database can hold, else the URL does not match.

`<int:...>` takes any number of digits, and a 20-digit id reaches the database, which cannot
compare it with a 64-bit key (PostgreSQL raises, SQLite overflows): a 500 instead of a 404.
"""

from __future__ import annotations

from django.urls import register_converter


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
