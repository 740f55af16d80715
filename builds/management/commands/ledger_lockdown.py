"""manage.py ledger_lockdown: on PostgreSQL, hand the manifest ledger to a role of its own, so the
portal's database role can append and read it but never rewrite, empty, unprotect or drop it.

The append-only trigger (migration builds.0004) stops UPDATE and DELETE, but the role that owns a
table may disable its triggers, truncate it or drop it. So the ledger table, its sequence and its
trigger function move to an owner role nobody logs in as, the app role keeps SELECT and INSERT
(and USAGE on the id sequence), and an event trigger refuses DROPs of those objects by anyone but
a superuser or the owner role (the app role owns the schema, and a schema's owner may drop what
is in it). Run it as a superuser; it changes everything in one transaction or nothing, and
running it again changes nothing. `--release` gives the ledger back for a migration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import environ
import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from psycopg import sql

TABLE = "builds_manifestrecord"
ROW_TRIGGER = "builds_manifestrecord_append_only"
ROW_FUNCTION = "crossport_ledger_append_only"
GUARD = "crossport_ledger_guard"  # the event trigger, its schema and function
DEFAULT_OWNER = "crossport_ledger_owner"
# What changes, unprotects or locks the table; the portal itself uses only SELECT and INSERT.
WRITE_PRIVILEGES = ["UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
# Keys of Django's PostgreSQL OPTIONS that are not libpq connection parameters.
DJANGO_ONLY_OPTIONS = {"isolation_level", "server_side_binding", "assume_role", "pool"}

FACTS = """
SELECT c.oid, n.nspname, c.relowner::regrole::text,
       pg_has_role(%(app)s, n.nspowner, 'MEMBER'),
       (SELECT t.oid FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = %(trigger)s),
       to_regprocedure(quote_ident(n.nspname) || '.' || %(function)s || '()')::oid,
       pg_get_serial_sequence(c.oid::regclass::text, 'id'),
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
       current_setting('server_version_num')::int
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%(table)s)
"""
GRANTEES = """
SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
WHERE c.oid = %(oid)s AND a.grantee <> c.relowner
UNION
SELECT DISTINCT a.grantee FROM pg_attribute t, aclexplode(t.attacl) a
WHERE t.attrelid = %(oid)s AND a.grantee <> (SELECT relowner FROM pg_class WHERE oid = %(oid)s)
"""
# Runs for every DROP in the database: it must stay cheap and let unrelated drops through.
GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.refuse_drops() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    dropped record;
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
            OR pg_has_role(current_user, {owner}, 'MEMBER') THEN
        RETURN;
    END IF;
    FOR dropped IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
        IF (dropped.classid, dropped.objid) IN (
                ('pg_class'::regclass, {table}), ('pg_proc'::regclass, {function}),
                ('pg_trigger'::regclass, {trigger})) THEN
            RAISE EXCEPTION 'the manifest ledger is append-only (dropping % refused)',
                dropped.object_identity;
        END IF;
    END LOOP;
END;
$$
"""


@dataclass
class Ledger:
    """What the command found, before it changes anything."""

    oid: int
    schema: str
    owner: str
    app_owns_schema: bool
    trigger: int | None
    function: int | None
    sequence: str | None
    runner_is_superuser: bool
    server_version: int


def connect_params(url: str) -> dict[str, Any]:
    """libpq parameters from a database URL (the DATABASE_URL grammar of django-environ)."""
    return _params(environ.Env.db_url_config(url))


def _params(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("ENGINE") != "django.db.backends.postgresql":
        engine = str(config.get("ENGINE", "")).rsplit(".", 1)[-1]
        raise CommandError(
            "ledger_lockdown is for PostgreSQL only; this database is "
            + ("SQLite" if engine == "sqlite3" else engine)
            + ", where migration builds.0010's triggers refuse UPDATE and DELETE on the ledger."
            " SQLite has no roles: whoever can write the database file can change anything in"
            " it, so keep PORTAL_DATA_DIR readable and writable by the portal's user alone."
        )
    params = {
        "dbname": config.get("NAME"),
        "user": config.get("USER"),
        "password": config.get("PASSWORD"),
        "host": config.get("HOST"),
        "port": config.get("PORT"),
    }
    params |= {
        k: v for k, v in (config.get("OPTIONS") or {}).items() if k not in DJANGO_ONLY_OPTIONS
    }
    return {k: v for k, v in params.items() if v not in (None, "")}


def _role(name: str | None) -> sql.Composable:
    return sql.SQL("PUBLIC") if name is None else sql.Identifier(name)


def _do(conn: psycopg.Connection[Any], template: str, *parts: sql.Composable) -> None:
    """Run one statement whose names are quoted as identifiers (roles, schemas, tables)."""
    conn.execute(sql.SQL(template).format(*parts))


class Command(BaseCommand):
    help = (
        "PostgreSQL: make the manifest ledger owned by a role of its own and leave the portal's"
        " role SELECT and INSERT only (run as a superuser; --release gives it back for migrate)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database-url",
            help="a superuser's connection to the portal's database (default: DATABASE_URL)",
        )
        parser.add_argument(
            "--owner-role",
            default=DEFAULT_OWNER,
            help=f"the role that will own the ledger, created NOLOGIN if missing ({DEFAULT_OWNER})",
        )
        parser.add_argument(
            "--app-role", help="the role the portal logs in as (default: the DATABASE_URL user)"
        )
        parser.add_argument(
            "--release",
            action="store_true",
            help="give the ledger back to the app role, to run a migration that alters it",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["database_url"]
        params = connect_params(url) if url else _params(settings.DATABASES["default"])
        app = options["app_role"] or settings.DATABASES["default"].get("USER")
        if not app:
            raise CommandError("name the portal's database role with --app-role")
        owner = options["owner_role"]
        try:
            # One transaction: on any refusal or error nothing has changed.
            with psycopg.connect(**params, connect_timeout=10) as conn:
                ledger = self.inspect(conn, app)
                if options["release"]:
                    self.release(conn, ledger, app)
                else:
                    self.refuse_unsafe_roles(conn, ledger, app, owner)
                    self.lock(conn, ledger, app, owner)
        except psycopg.OperationalError as exc:
            raise CommandError(f"cannot connect to the database: {exc}") from exc
        except psycopg.Error as exc:
            raise CommandError(
                f"PostgreSQL refused ({exc.diag.message_primary}); nothing was changed."
                " Run ledger_lockdown as a superuser (--database-url)."
            ) from exc

    def inspect(self, conn: psycopg.Connection[Any], app: str) -> Ledger:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [app]).fetchone() is None:
            raise CommandError(f"no role {app!r}: --app-role names the role the portal logs in as")
        row = conn.execute(
            FACTS, {"app": app, "table": TABLE, "trigger": ROW_TRIGGER, "function": ROW_FUNCTION}
        ).fetchone()
        if row is None:
            raise CommandError(f"no ledger table {TABLE} here: run manage.py migrate on it first")
        ledger = Ledger(*row)
        if ledger.trigger is None or ledger.function is None:
            raise CommandError(
                f"the ledger's trigger {ROW_TRIGGER} (migration builds.0004) is missing:"
                " run manage.py migrate first"
            )
        return ledger

    def refuse_unsafe_roles(
        self, conn: psycopg.Connection[Any], ledger: Ledger, app: str, owner: str
    ) -> None:
        """Refuse, before changing anything, an app role that no lockdown could hold."""
        superuser, createrole, can_become_owner = conn.execute(
            "SELECT a.rolsuper, a.rolcreaterole, coalesce(pg_has_role(a.oid, o.oid, 'MEMBER')"
            " OR pg_has_role(a.oid, o.oid, 'MEMBER WITH ADMIN OPTION'), false)"
            " FROM pg_roles a LEFT JOIN pg_roles o ON o.rolname = %s WHERE a.rolname = %s",
            [owner, app],
        ).fetchone() or (False, False, False)
        if superuser:
            raise CommandError(
                f"the app role {app!r} is a superuser: a superuser bypasses every privilege,"
                " can disable triggers and set session_replication_role, so no lockdown holds"
                " against it. Run the portal as an ordinary role, then run this again."
            )
        if app == owner:
            raise CommandError("--owner-role must be a role of its own, not the app role")
        if can_become_owner:
            raise CommandError(
                f"the app role {app!r} is a member of {owner!r} (or may grant it): it could"
                f" SET ROLE {owner} and change the ledger. REVOKE {owner} FROM {app} first."
            )
        if createrole and ledger.server_version < 160000:
            raise CommandError(
                f"the app role {app!r} has CREATEROLE, which before PostgreSQL 16 lets it grant"
                f" itself {owner!r} (SET ROLE): ALTER ROLE {app} NOCREATEROLE first."
            )

    def lock(self, conn: psycopg.Connection[Any], ledger: Ledger, app: str, owner: str) -> None:
        table = sql.Identifier(ledger.schema, TABLE)
        function = sql.SQL("{}()").format(sql.Identifier(ledger.schema, ROW_FUNCTION))
        created = not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [owner]).fetchone()
        if created:  # the owning role may do anything to the table: it is nobody's login
            _do(conn, "CREATE ROLE {} NOLOGIN", sql.Identifier(owner))
        _do(conn, "ALTER TABLE {} OWNER TO {}", table, sql.Identifier(owner))
        _do(conn, "ALTER FUNCTION {} OWNER TO {}", function, sql.Identifier(owner))
        # Whoever else holds a writing privilege (PUBLIC, the app role, a role it is a member
        # of, column grants included) loses it; reading stays as it was.
        writes = sql.SQL(", ").join(map(sql.SQL, self.write_privileges(ledger)))
        for (grantee,) in conn.execute(GRANTEES, {"oid": ledger.oid}).fetchall():
            name = None if grantee == 0 else self.role_name(conn, grantee)
            _do(conn, "REVOKE {} ON TABLE {} FROM {} CASCADE", writes, table, _role(name))
        _do(conn, "REVOKE ALL ON TABLE {} FROM {} CASCADE", table, _role(app))
        _do(conn, "GRANT SELECT, INSERT ON TABLE {} TO {}", table, _role(app))
        if ledger.sequence:  # nextval only: setval could make the next appends collide
            sequence = sql.SQL(ledger.sequence)  # already quoted by pg_get_serial_sequence
            for role in (None, app):
                _do(conn, "REVOKE ALL ON SEQUENCE {} FROM {}", sequence, _role(role))
            _do(conn, "GRANT USAGE ON SEQUENCE {} TO {}", sequence, _role(app))
        guarded = self.guard_drops(conn, ledger, owner)
        self.verify(conn, app)
        self.stdout.write(
            f"{ledger.schema}.{TABLE}: owned by {owner}"
            + (" (unchanged)" if ledger.owner == owner else f" (was {ledger.owner})")
            + (f"; role {owner} created NOLOGIN" if created else "")
        )
        self.stdout.write(f"{app}: SELECT and INSERT only on the ledger, USAGE on its sequence")
        if guarded:
            self.stdout.write(f"event trigger {GUARD}: refuses DROP of the ledger and its trigger")
        elif ledger.app_owns_schema:
            self.stderr.write(
                f"not a superuser, so no event trigger: {app} owns schema {ledger.schema} and"
                " could still DROP the ledger table; run this again as a superuser"
            )

    def write_privileges(self, ledger: Ledger) -> list[str]:
        # MAINTAIN (PostgreSQL 17) lets a role LOCK, VACUUM and CLUSTER the table.
        return WRITE_PRIVILEGES + (["MAINTAIN"] if ledger.server_version >= 170000 else [])

    def role_name(self, conn: psycopg.Connection[Any], oid: int) -> str:
        row = conn.execute("SELECT rolname FROM pg_roles WHERE oid = %s", [oid]).fetchone()
        assert row is not None  # grantees of an ACL exist (dropping a role revokes first)
        return str(row[0])

    def guard_drops(self, conn: psycopg.Connection[Any], ledger: Ledger, owner: str) -> bool:
        """A schema's owner may drop what is in it, and the app role owns the schema:
        an event trigger (superusers only may create one) refuses those drops."""
        if not ledger.runner_is_superuser:
            return False
        guard = sql.Identifier(GUARD)
        # Its own schema, so the app role, owner of public, cannot drop the guard's function.
        _do(conn, "CREATE SCHEMA IF NOT EXISTS {}", guard)
        _do(conn, "REVOKE ALL ON SCHEMA {} FROM PUBLIC", guard)
        conn.execute(
            sql.SQL(GUARD_FUNCTION).format(
                schema=guard,
                owner=sql.Literal(owner),
                table=sql.Literal(ledger.oid),
                function=sql.Literal(ledger.function),
                trigger=sql.Literal(ledger.trigger),
            )
        )
        _do(conn, "DROP EVENT TRIGGER IF EXISTS {}", guard)
        _do(
            conn,
            "CREATE EVENT TRIGGER {} ON sql_drop EXECUTE FUNCTION {}.refuse_drops()",
            guard,
            guard,
        )
        return True

    def verify(self, conn: psycopg.Connection[Any], app: str) -> None:
        """Read back what the app role may do (through any role it belongs to), before commit."""
        checks = {
            p: f"has_{'any_column' if p in ('UPDATE', 'REFERENCES') else 'table'}_privilege("
            f"%(app)s, c.oid, '{p}')"
            for p in WRITE_PRIVILEGES
        } | {"OWNER": "pg_has_role(%(app)s, c.relowner, 'MEMBER')"}
        row = conn.execute(
            f"SELECT {', '.join(checks.values())} FROM pg_class c"
            " WHERE c.oid = to_regclass(%(table)s)",
            {"app": app, "table": TABLE},
        ).fetchone()
        kept = [p for p, held in zip(checks, row or (), strict=True) if held]
        if kept:
            raise CommandError(
                f"{app} would still hold {', '.join(kept)} on the ledger (through a role it is"
                " a member of?); nothing was changed"
            )

    def release(self, conn: psycopg.Connection[Any], ledger: Ledger, app: str) -> None:
        table = sql.Identifier(ledger.schema, TABLE)
        function = sql.SQL("{}()").format(sql.Identifier(ledger.schema, ROW_FUNCTION))
        _do(conn, "DROP EVENT TRIGGER IF EXISTS {}", sql.Identifier(GUARD))
        _do(conn, "DROP SCHEMA IF EXISTS {} CASCADE", sql.Identifier(GUARD))
        _do(conn, "ALTER TABLE {} OWNER TO {}", table, sql.Identifier(app))
        _do(conn, "ALTER FUNCTION {} OWNER TO {}", function, sql.Identifier(app))
        self.stdout.write(
            f"{ledger.schema}.{TABLE}: owned by {app} again (was {ledger.owner}). Run manage.py"
            " migrate, then ledger_lockdown again."
        )
