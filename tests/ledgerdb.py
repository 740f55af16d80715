"""Writing to the ledger table past its append-only triggers, as only a database superuser
could: for tests that tamper with it, and for emptying it after a test that commits rows."""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

TABLE = "builds_manifestrecord"


def past_the_trigger(sql: str, params: list[Any] | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(sql, params or [])
            return
        # SQLite: the triggers go for the one statement and come back (DROP TRIGGER is not
        # undone with the test's transaction here).
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='trigger' AND tbl_name=%s", [TABLE]
        )
        triggers = cursor.fetchall()
        for name, _ in triggers:
            cursor.execute(f'DROP TRIGGER "{name}"')
        cursor.execute(sql, params or [])
        for _, create in triggers:
            cursor.execute(create)
