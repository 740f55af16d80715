"""What every log line about a build says about it: the build id, project and team.

The worker runs a build inside `about_build(...)`; a filter on the portal's log handler copies
the context onto each record, so JSON lines (PORTAL_LOG_FORMAT=json, through python-json-logger)
carry `build_id`, `project` and `team` without each call passing them. A
context variable, so two builds in two threads or tasks never mix their fields.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

FIELDS = ("build_id", "project", "team")
_current: ContextVar[dict[str, object] | None] = ContextVar("crossport_build", default=None)


@contextlib.contextmanager
def about_build(build_id: int, project: str, team: str) -> Iterator[None]:
    token = _current.set({"build_id": build_id, "project": project, "team": team})
    try:
        yield
    finally:
        _current.reset(token)


class BuildFields(logging.Filter):
    """Adds the current build's fields to every record (None outside a build)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _current.get() or {}
        for field in FIELDS:
            if not hasattr(record, field):
                setattr(record, field, current.get(field))
        return True
