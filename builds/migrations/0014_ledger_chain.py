"""The ledger's hash chain (builds/chain.py): two columns, '' in the database for a raw INSERT
that names neither. Rows written before this carry no hash and stay outside the chain.

SQLite copies the table to add columns and drops its triggers with the old one: the append-only
triggers of 0010 are created again here."""

from __future__ import annotations

import importlib
from typing import Any

from django.db import migrations, models

sqlite_guard = importlib.import_module("builds.migrations.0010_ledger_append_only_in_sqlite")


def forbid_again(apps: Any, schema_editor: Any) -> None:
    sqlite_guard.forbid(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("builds", "0013_platform_arch_check")]

    operations = [
        migrations.AddField(
            model_name="manifestrecord",
            name="chain_hash",
            field=models.CharField(blank=True, db_default="", editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name="manifestrecord",
            name="chain_previous",
            field=models.CharField(blank=True, db_default="", editable=False, max_length=64),
        ),
        migrations.RunPython(forbid_again, migrations.RunPython.noop),
    ]
