"""On PostgreSQL the database itself refuses UPDATE and DELETE on the manifest ledger, so not
even a raw SQL session or another client can rewrite history. (TRUNCATE, an administrator's
tool, is not a row operation and stays possible, e.g. for test database teardown.)"""

from __future__ import annotations

from typing import Any

from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION crossport_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the manifest ledger is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER builds_manifestrecord_append_only
    BEFORE UPDATE OR DELETE ON builds_manifestrecord
    FOR EACH ROW EXECUTE FUNCTION crossport_ledger_append_only();
"""
ALLOW = """
DROP TRIGGER IF EXISTS builds_manifestrecord_append_only ON builds_manifestrecord;
DROP FUNCTION IF EXISTS crossport_ledger_append_only();
"""


def forbid(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORBID, params=None)


def allow(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ALLOW, params=None)


class Migration(migrations.Migration):
    dependencies = [("builds", "0003_manifest_previous_digest")]
    operations = [migrations.RunPython(forbid, allow)]
