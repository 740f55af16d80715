"""Reading the loosely typed fields of BuildKit's rawjson status items.

Every reader takes what the stream holds (any JSON value) and returns a safe default for a
missing or malformed field: a build log must never fail because one status was odd.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any


def dicts(value: Any) -> list[dict[str, Any]]:
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        # Go prints up to 9 fractional digits; older Pythons take at most 6.
        trimmed = re.sub(r"(\.\d{6})\d+", r"\1", value)
        try:
            return datetime.fromisoformat(trimmed)
        except ValueError:
            return None


def duration(started: datetime | None, completed: datetime | None) -> float | None:
    if started is None or completed is None:
        return None
    try:
        return max((completed - started).total_seconds(), 0.0)
    except TypeError:  # naive and aware timestamps mixed
        return None


def done_text(started: datetime | None, completed: Any) -> str:
    seconds = duration(started, timestamp(completed))
    return "DONE" if seconds is None else f"DONE {seconds:.1f}s"


def size_text(count: int) -> str:
    if count < 1000:
        return f"{count}B"
    size = float(count)
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            break
    return f"{size:.2f}{unit}"


def clean_line(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    if text.endswith("\r"):
        text = text[:-1]
    return text.rsplit("\r", 1)[-1]


def b64(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""
