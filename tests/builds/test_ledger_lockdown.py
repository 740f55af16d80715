"""manage.py ledger_lockdown on the real PostgreSQL, as a deployment would use it.

A throwaway database owned by a throwaway LOGIN role (the portal's "app role") is migrated as
that role, so it owns every table and the public schema, as after a real `manage.py migrate`.
Then the command hands the ledger to an owner role of its own, and the app role, connecting as
itself, must fail to rewrite, empty, unprotect or drop it, while a build run by the real worker
code as that role still appends its record. One migrated database serves the whole module."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from django.core.management import CommandError, call_command
from psycopg import sql

from builds.management.commands.ledger_lockdown import GUARD, connect_params

ROOT = Path(__file__).resolve().parents[2]
TABLE = "builds_manifestrecord"

# The worker as a deployment runs it: a build is queued and run (the fake backend is the one
# seam), and its pushed index is recorded through the model, as the app role.
WORKER = """
import django
django.setup()
from django.contrib.auth import get_user_model
from django.utils import timezone
from builds.models import BuilderNode, ManifestRecord
from builds.services import queue_build
from builds.worker import work_once
from fakes import FakeBackend, PLATFORM_DIGESTS
from portal.models import Membership, Project, Team

team, _ = Team.objects.get_or_create(slug="alpha", name="Alpha")
user = get_user_model().objects.filter(username="alice").first()
if user is None:
    user = get_user_model().objects.create_user("alice", password="alice-password-1")
    Membership.objects.create(user=user, team=team, role=Membership.Role.ADMIN)
    BuilderNode.objects.create(
        name="local", endpoint="unix:///var/run/docker.sock", reachable=True,
        native_platforms=list(PLATFORM_DIGESTS), last_checked_at=timezone.now(),
    )
project, _ = Project.objects.get_or_create(
    team=team, name="hello", git_url="file:///srv/git/hello.git", ref="main",
    image="localhost:5000/alpha/hello", platforms=list(PLATFORM_DIGESTS), language="go",
    options={}, created_by=user,
)
queue_build(project, user, tags=["v1", "latest"])
build = work_once("w1", FakeBackend())
build.refresh_from_db()
print(build.state, ManifestRecord.objects.filter(build=build).count())
"""


@dataclass
class Throwaway:
    admin_url: str  # the superuser, to the throwaway database
    app_role: str
    owner_role: str
    app: dict[str, Any]  # psycopg parameters of the app role
    env: dict[str, str]  # a portal process running as the app role

    def as_app(self) -> psycopg.Connection[Any]:
        return psycopg.connect(**self.app)

    def as_admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(**connect_params(self.admin_url), autocommit=True)

    def portal(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )

    def lockdown(self, **options: Any) -> None:
        call_command(
            "ledger_lockdown",
            database_url=self.admin_url,
            app_role=self.app_role,
            owner_role=self.owner_role,
            **options,
        )


def _server_url() -> str:
    """The PostgreSQL the test run uses (the scale-out run's), else the one test.sh starts."""
    url = os.environ.get("DATABASE_URL", "")
    if urlsplit(url).scheme in ("postgres", "postgresql", "pgsql", "psql"):
        return url
    return os.environ.get("CROSSPORT_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")


def _reach(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(**connect_params(url), autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no PostgreSQL at the test URL: {exc}")
        pytest.skip(f"no PostgreSQL reachable for the lockdown test: {exc}")


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Throwaway]:
    url = _server_url()
    admin = _reach(url)
    name = f"hledger_{secrets.token_hex(4)}"
    owner, password = f"{name}_owner", secrets.token_urlsafe(16)
    server = connect_params(url)
    host, port = server.get("host", "127.0.0.1"), server.get("port", 5432)
    try:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(name)
            )
        )
        app_url = f"postgres://{name}:{quote(password)}@{host}:{port}/{name}"
        data = tmp_path_factory.mktemp("portal")
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PYTHONPATH")}
        env |= {
            "DATABASE_URL": app_url,
            "PORTAL_DATA_DIR": str(data),
            "PORTAL_OUTBOUND_ALLOW": "localhost:5000",
            "PORTAL_GIT_FILE_ROOTS": "/srv/git",
            "PORTAL_BASE_IMAGE_MIRROR": "localhost:5000/library",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
        }
        admin_url = urlsplit(url)._replace(path=f"/{name}").geturl()
        box = Throwaway(admin_url, name, owner, connect_params(app_url), env)
        migrated = box.portal("manage.py", "migrate", "--noinput", "-v0")
        assert migrated.returncode == 0, migrated.stderr
        box.lockdown()
        yield box
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        for role in (owner, name):
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.close()


@pytest.fixture(scope="module")
def ledger(pg: Throwaway) -> list[tuple[Any, ...]]:
    """The rows a build appended as the app role, after the lockdown."""
    run = pg.portal("-c", WORKER)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["succeeded", "2"], run.stdout + run.stderr
    with pg.as_app() as conn:
        return conn.execute(f"SELECT id, reference, digest FROM {TABLE} ORDER BY id").fetchall()


def test_builds_still_append_and_read(pg: Throwaway, ledger: list[tuple[Any, ...]]) -> None:
    assert [ref for _, ref, _ in ledger] == [
        "localhost:5000/alpha/hello:v1",
        "localhost:5000/alpha/hello:latest",
    ]
    with pg.as_admin() as conn:
        owner = conn.execute(
            f"SELECT relowner::regrole::text FROM pg_class WHERE oid = '{TABLE}'::regclass"
        )
        assert owner.fetchone() == (pg.owner_role,)


ATTACKS = [
    f"UPDATE {TABLE} SET digest = 'sha256:forged'",
    f"DELETE FROM {TABLE}",
    f"TRUNCATE {TABLE}",
    f"ALTER TABLE {TABLE} DISABLE TRIGGER builds_manifestrecord_append_only",
    f"ALTER TABLE {TABLE} DISABLE TRIGGER ALL",
    "SET session_replication_role = replica",
    f"ALTER TABLE {TABLE} OWNER TO CURRENT_USER",
    # GRANT only warns ("no privileges were granted"): what counts is the UPDATE after it.
    f"GRANT UPDATE, DELETE ON {TABLE} TO CURRENT_USER; UPDATE {TABLE} SET digest = 'x'",
    f"CREATE TRIGGER forge BEFORE INSERT ON {TABLE} FOR EACH ROW EXECUTE FUNCTION crossport_ledger_append_only()",
    "CREATE OR REPLACE FUNCTION crossport_ledger_append_only() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql",
    # The app role owns the public schema, and a schema's owner may drop what is in it.
    f"DROP TABLE {TABLE}",
    "DROP FUNCTION crossport_ledger_append_only() CASCADE",
    "DROP SCHEMA public CASCADE",
    # ... and the guard itself is the superuser's.
    "ALTER EVENT TRIGGER crossport_ledger_guard DISABLE",
    "DROP EVENT TRIGGER crossport_ledger_guard",
    "DROP SCHEMA crossport_ledger_guard CASCADE",
    f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), 1)",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_the_app_role_cannot_change_the_ledger(
    pg: Throwaway, ledger: list[tuple[Any, ...]], attack: str
) -> None:
    with pg.as_app() as conn:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(attack)
        conn.rollback()
    # Refused for want of privilege, or by the guard: not for a typo in the attack.
    assert isinstance(refused.value, psycopg.errors.InsufficientPrivilege) or (
        "append-only" in str(refused.value)
    ), refused.value
    with pg.as_app() as conn:
        rows = conn.execute(f"SELECT id, reference, digest FROM {TABLE} ORDER BY id").fetchall()
    assert rows == ledger
    with pg.as_admin() as conn:
        trigger = conn.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'builds_manifestrecord_append_only'"
        )
        assert trigger.fetchall() == [("O",)]
        guard = conn.execute("SELECT evtenabled FROM pg_event_trigger WHERE evtname = %s", [GUARD])
        assert guard.fetchall() == [("O",)]


def test_the_app_role_still_drops_its_own_objects(pg: Throwaway) -> None:
    """The guard against dropping the ledger must not stand in the way of other migrations."""
    with pg.as_app() as conn:
        conn.execute("CREATE TABLE hledger_scratch (id int)")
        conn.execute("CREATE INDEX hledger_scratch_id ON hledger_scratch (id)")
        conn.execute("DROP INDEX hledger_scratch_id")
        conn.execute("DROP TABLE hledger_scratch")


def test_migrate_still_runs_as_the_app_role(pg: Throwaway) -> None:
    migrated = pg.portal("manage.py", "migrate", "--noinput", "-v0")
    assert migrated.returncode == 0, migrated.stderr


def test_writes_through_other_roles_and_columns_are_revoked(pg: Throwaway) -> None:
    writers = f"{pg.app_role}_writers"
    with pg.as_admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(writers)))
        try:
            conn.execute(f"GRANT UPDATE, TRUNCATE ON {TABLE} TO {writers}")
            conn.execute(f"GRANT {writers} TO {pg.app_role}")
            conn.execute(f"GRANT UPDATE (digest) ON {TABLE} TO {pg.app_role}")
            conn.execute(f"GRANT DELETE ON {TABLE} TO PUBLIC")
            pg.lockdown()
            with pg.as_app() as app:
                for attack in [f"UPDATE {TABLE} SET digest = 'x'", f"DELETE FROM {TABLE}"]:
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        app.execute(attack)
                    app.rollback()
        finally:
            conn.execute(f"REVOKE ALL ON {TABLE} FROM {writers}")
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(writers)))


def test_rerunning_changes_nothing(
    pg: Throwaway, ledger: list[tuple[Any, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pg.as_admin() as conn:
        before = conn.execute(
            f"SELECT relowner, relacl::text FROM pg_class WHERE oid = '{TABLE}'::regclass"
        ).fetchone()
    pg.lockdown()
    assert "unchanged" in capsys.readouterr().out
    with pg.as_admin() as conn:
        after = conn.execute(
            f"SELECT relowner, relacl::text FROM pg_class WHERE oid = '{TABLE}'::regclass"
        ).fetchone()
        privileges = conn.execute(
            "SELECT has_table_privilege(%s, %s, 'SELECT'), has_table_privilege(%s, %s, 'INSERT'),"
            " has_any_column_privilege(%s, %s, 'UPDATE'), has_table_privilege(%s, %s, 'DELETE')",
            [pg.app_role, TABLE] * 4,
        ).fetchone()
    assert after == before and privileges == (True, True, False, False)


def test_a_superuser_app_role_is_refused(pg: Throwaway) -> None:
    with pg.as_admin() as conn:
        (superuser,) = conn.execute("SELECT current_user").fetchone()  # type: ignore[misc]
        before = conn.execute(f"SELECT relacl::text FROM pg_class WHERE oid = '{TABLE}'::regclass")
        acl = before.fetchone()
    with pytest.raises(CommandError, match="superuser bypasses"):
        call_command(
            "ledger_lockdown",
            database_url=pg.admin_url,
            app_role=superuser,
            owner_role=pg.owner_role,
        )
    with pg.as_admin() as conn:
        after = conn.execute(f"SELECT relacl::text FROM pg_class WHERE oid = '{TABLE}'::regclass")
        assert after.fetchone() == acl


def test_an_app_role_that_can_become_the_owner_is_refused(pg: Throwaway) -> None:
    grant = sql.SQL("GRANT {} TO {}").format(
        sql.Identifier(pg.owner_role), sql.Identifier(pg.app_role)
    )
    with pg.as_admin() as conn:
        conn.execute(grant)
    try:
        with pytest.raises(CommandError, match="SET ROLE"):
            pg.lockdown()
    finally:
        with pg.as_admin() as conn:
            conn.execute(
                sql.SQL("REVOKE {} FROM {}").format(
                    sql.Identifier(pg.owner_role), sql.Identifier(pg.app_role)
                )
            )


def test_release_lets_a_migration_alter_the_ledger_then_lock_again(
    pg: Throwaway, ledger: list[tuple[Any, ...]]
) -> None:
    pg.lockdown(release=True)
    try:
        with pg.as_app() as conn:  # what a migration of the ledger does, rolled back
            conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN hledger_note text")
            conn.rollback()
    finally:
        pg.lockdown()
    with pg.as_app() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN hledger_note text")


def test_no_ledger_table_is_refused(pg: Throwaway) -> None:
    empty = urlsplit(pg.admin_url)._replace(path="/postgres").geturl()
    with pytest.raises(CommandError, match="migrate"):
        call_command("ledger_lockdown", database_url=empty, app_role=pg.app_role)


def test_sqlite_is_refused_with_what_protects_it_instead(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="PostgreSQL only.*SQLite.*triggers"):
        call_command("ledger_lockdown", database_url=f"sqlite:///{tmp_path / 'portal.sqlite3'}")
