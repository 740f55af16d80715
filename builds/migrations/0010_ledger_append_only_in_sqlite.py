"""On SQLite too the database itself refuses UPDATE and DELETE on the manifest ledger, as 0004
does on PostgreSQL, so a raw SQL session cannot rewrite history either.

SQLite drops a table's triggers with the table: a later migration that alters this table there
(Django copies it into a new one) must create these triggers again. The ledger tests notice."""

from __future__ import annotations

from typing import Any

from django.db import migrations

TABLE = "builds_manifestrecord"
FORBID = [
    f"""CREATE TRIGGER IF NOT EXISTS {TABLE}_no_{op.lower()}
    BEFORE {op} ON {TABLE}
    BEGIN
        SELECT RAISE(ABORT, 'the manifest ledger is append-only ({op} refused)');
    END"""
    for op in ("UPDATE", "DELETE")
]
ALLOW = [f"DROP TRIGGER IF EXISTS {TABLE}_no_{op}" for op in ("update", "delete")]


def forbid(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "sqlite":
        for sql in FORBID:
            schema_editor.execute(sql, params=None)


def allow(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "sqlite":
        for sql in ALLOW:
            schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("builds", "0009_node_image_store")]
    operations = [migrations.RunPython(forbid, allow)]
