"""Apply migrations (and collect static files) once when several processes start together (a
rolling deploy: two portal processes and the workers at the same moment): the first takes a
lock and migrates, the others wait for it and then find nothing left to do.

The lock is a PostgreSQL session advisory lock on the database every process shares, or, on
SQLite (one machine), an exclusive lock on a file beside the database.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection

LOCK_KEY = 0x43504D49  # "CPMI": Crossport migrations


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
        return
    name = Path(str(settings.DATABASES["default"]["NAME"]))
    lock = name.with_name(name.name + ".migrate.lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(*, collect_static: bool = False) -> None:
    """Migrate; with `collect_static`, also gather the static files into STATIC_ROOT with
    hashed, compressed copies (whitenoise's manifest storage), which the portal's pages need."""
    with _locked():
        call_command("migrate", interactive=False, verbosity=0)
        if collect_static:
            call_command("collectstatic", interactive=False, verbosity=0)
