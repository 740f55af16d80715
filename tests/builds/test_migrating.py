"""Three processes that start at once on an empty database all come up: one migrates under the
lock (builds/migrating.py), the others wait and find nothing left to do."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import django
django.setup()
from builds.migrating import migrate
migrate()
from django.db.migrations.executor import MigrationExecutor
from django.db import connection
executor = MigrationExecutor(connection)
assert not executor.migration_plan(executor.loader.graph.leaf_nodes()), "unapplied migrations"
print("up")
"""


@pytest.fixture
def empty_database(tmp_path: Path, db: Any) -> Any:
    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    settings = connection.settings_dict
    name = f"crossport_migrate_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        dbname="postgres",
        autocommit=True,
    )
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT'] or 5432}/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def test_processes_starting_together_all_come_up(empty_database: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": empty_database,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    env.pop("REDIS_URL", None)
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for process in starts:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0 and out.strip() == "up", err[-3000:]
