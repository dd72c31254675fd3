"""Schema management: alembic driven from code (upgrade, downgrade, SQL for DBAs) and checks.

Alembic and SQLAlchemy are imported inside the functions that need them, so the worker,
which only checks the revision, never loads them.
"""

from __future__ import annotations

import importlib.resources
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TextIO

import psycopg

from pgworker.db import connect
from pgworker.errors import PermissionDenied, SchemaError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

SCHEMA: Final = "pgworker"
# The revision this version of pgworker runs against; tests pin it to alembic's head.
SCHEMA_REVISION: Final = "0003"


def script_location() -> str:
    """Where the migration scripts are: inside the installed package, checkout or wheel alike."""
    return str(importlib.resources.files("pgworker.migrations"))


def current_revision(conn: psycopg.Connection[Any]) -> str | None:
    """The schema's revision, or None when pgworker's schema is not installed."""
    row = conn.execute("SELECT to_regclass('pgworker.alembic_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute("SELECT version_num FROM pgworker.alembic_version").fetchone()
    return str(found[0]) if found else None


def require_schema(conn: psycopg.Connection[Any]) -> None:
    """Raise SchemaError unless the schema is at SCHEMA_REVISION."""
    revision = current_revision(conn)
    if revision == SCHEMA_REVISION:
        return
    if revision is None:
        raise SchemaError("the pgworker schema is not installed: run `pgworker migrate`")
    if revision < SCHEMA_REVISION:
        raise SchemaError(
            f"the pgworker schema is at {revision}, this version needs {SCHEMA_REVISION}:"
            " run `pgworker migrate`"
        )
    raise SchemaError(
        f"the pgworker schema is at {revision}, newer than this version of pgworker"
        f" ({SCHEMA_REVISION}): upgrade pgworker"
    )


def check_can_migrate(conn: psycopg.Connection[Any]) -> None:
    """Raise PermissionDenied unless this role can run migrations: DDL needs the schema's owner.

    Checked before alembic starts, so the worker or enqueue role gets one clear line instead
    of whichever statement would have failed first.
    """
    row = conn.execute(
        """
        SELECT current_user::text,
               n.nspowner::regrole::text,
               pg_has_role(current_user, n.nspowner, 'USAGE'),
               has_database_privilege(current_database(), 'CREATE')
        FROM (SELECT 1) AS one
        LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname = %s
        """,
        (SCHEMA,),
    ).fetchone()
    assert row is not None
    user, owner, is_owner, can_create = row
    if owner is None and not can_create:
        raise PermissionDenied(
            f"pgworker migrate needs CREATE on this database to create schema {SCHEMA}:"
            f" role {user!r} lacks it (run it as the role that should own the schema)"
        )
    if owner is not None and not is_owner:
        raise PermissionDenied(
            f"pgworker migrate runs DDL and must connect as {owner!r}, the owner of schema"
            f" {SCHEMA} (or a member of it); role {user!r} is not"
        )


def _config(output: TextIO | None = None) -> AlembicConfig:
    from alembic.config import Config

    config = Config(output_buffer=output) if output is not None else Config()
    config.set_main_option("script_location", script_location())
    return config


def head_revision() -> str:
    """The newest revision among the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


@contextmanager
def _alembic_connection(dsn: str) -> Iterator[Any]:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import NullPool

    # The engine gets its connection from psycopg itself, so any DSN libpq accepts works
    # (URIs, key=value strings, Unix sockets) without translating it to a SQLAlchemy URL.
    conn = connect(dsn, application_name="pgworker:migrate", autocommit=False)
    engine = create_engine("postgresql+psycopg://", creator=lambda: conn, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
            connection.commit()
    except DBAPIError as exc:
        # SQLAlchemy wraps the driver's error in one that prints the SQL and a URL; the
        # CLI turns psycopg's own errors into one line.
        if isinstance(exc.orig, psycopg.Error):
            raise exc.orig from None
        raise
    finally:
        engine.dispose()
        conn.close()


def upgrade(dsn: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the schema to `revision`; returns the revisions before and after."""
    from alembic import command

    with connect(dsn, application_name="pgworker:migrate") as conn:
        check_can_migrate(conn)
        before = current_revision(conn)
    with _alembic_connection(dsn) as connection:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    with connect(dsn, application_name="pgworker:migrate") as conn:
        return before, current_revision(conn)


def downgrade(dsn: str, revision: str) -> tuple[str | None, str | None]:
    """Downgrade the schema to `revision` ("base" removes it); returns before and after."""
    from alembic import command

    with connect(dsn, application_name="pgworker:migrate") as conn:
        check_can_migrate(conn)
        before = current_revision(conn)
    with _alembic_connection(dsn) as connection:
        config = _config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    with connect(dsn, application_name="pgworker:migrate") as conn:
        return before, current_revision(conn)


def migration_sql(target: str, *, start: str | None = None, down: bool = False) -> str:
    """The SQL an upgrade (or downgrade) would run, without a database, for DBAs to review."""
    from alembic import command

    buffer = io.StringIO()
    config = _config(buffer)
    if down:
        command.downgrade(config, f"{start or head_revision()}:{target}", sql=True)
    else:
        command.upgrade(config, f"{start}:{target}" if start else target, sql=True)
    return buffer.getvalue()


def dump_schema(conn: psycopg.Connection[Any]) -> str:
    """A canonical text dump of the pgworker schema, identical on every PostgreSQL version."""
    conn.execute("SET search_path = pg_catalog")
    out: list[str] = ["-- pgworker schema at head; regenerate with `make schema`.", ""]
    owner_row = conn.execute(
        "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s", (SCHEMA,)
    ).fetchone()
    if owner_row is None:
        raise SchemaError("the pgworker schema is not installed")
    owner = owner_row[0]

    def acl(items: list[str] | None) -> str:
        entries = sorted(item.replace(owner, "<owner>") for item in items or [])
        return ", ".join(entries)

    tables = conn.execute(
        """
        SELECT c.oid, c.relname, c.reloptions, c.relacl::text[]
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind = 'r'
        ORDER BY c.relname
        """,
        (SCHEMA,),
    ).fetchall()
    for oid, name, options, relacl in tables:
        columns = conn.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   pg_get_expr(d.adbin, d.adrelid), a.attidentity
            FROM pg_attribute a
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """,
            (oid,),
        ).fetchall()
        out.append(f"CREATE TABLE {SCHEMA}.{name} (")
        lines = []
        for column, type_, not_null, default, identity in columns:
            line = f"    {column} {type_}"
            if identity == "a":
                line += " GENERATED ALWAYS AS IDENTITY"
            elif identity == "d":
                line += " GENERATED BY DEFAULT AS IDENTITY"
            if not_null:
                line += " NOT NULL"
            if default is not None:
                line += f" DEFAULT {default}"
            lines.append(line)
        for cname, definition in conn.execute(
            """
            SELECT conname, pg_get_constraintdef(oid)
            FROM pg_constraint WHERE conrelid = %s AND contype <> 'n'
            ORDER BY conname
            """,
            (oid,),
        ):
            lines.append(f"    CONSTRAINT {cname} {definition}")
        out.append(",\n".join(lines))
        out.append(");")
        if options:
            out.append(f"ALTER TABLE {SCHEMA}.{name} SET ({', '.join(sorted(options))});")
        if relacl:
            out.append(f"-- privileges on {SCHEMA}.{name}: {acl(relacl)}")
        for (definition,) in conn.execute(
            """
            SELECT pg_get_indexdef(i.indexrelid)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = %s ORDER BY c.relname
            """,
            (oid,),
        ):
            out.append(f"{definition};")
        for (definition,) in conn.execute(
            """
            SELECT pg_get_triggerdef(oid) FROM pg_trigger
            WHERE tgrelid = %s AND NOT tgisinternal ORDER BY tgname
            """,
            (oid,),
        ):
            out.append(f"{definition};")
        comment = conn.execute("SELECT obj_description(%s, 'pg_class')", (oid,)).fetchone()
        if comment and comment[0]:
            out.append(f"-- {name}: {comment[0]}")
        out.append("")

    for definition, proacl, comment in conn.execute(
        """
        SELECT pg_get_functiondef(p.oid), p.proacl::text[], obj_description(p.oid, 'pg_proc')
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = %s
        ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)
        """,
        (SCHEMA,),
    ):
        out.append(definition.strip() + ";")
        if proacl:
            out.append(f"-- privileges: {acl(proacl)}")
        if comment:
            out.append(f"-- comment: {comment}")
        out.append("")
    conn.execute("RESET search_path")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    """`python -m pgworker.migrate dump-schema`: migrate a scratch database, print its dump.

    `make schema` writes this to migrations/schema.sql; a test compares it with head.
    """
    import os

    import psycopg.conninfo
    from psycopg import sql

    from pgworker.config import database_dsn

    if argv != ["dump-schema"]:
        print("usage: python -m pgworker.migrate dump-schema", file=sys.stderr)
        return 2
    dsn = database_dsn()
    scratch = f"pgworker_schema_{os.getpid()}"
    with connect(dsn) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        scratch_dsn = psycopg.conninfo.make_conninfo(dsn, dbname=scratch)
        upgrade(scratch_dsn)
        with connect(scratch_dsn) as conn:
            sys.stdout.write(dump_schema(conn))
    finally:
        with connect(dsn) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(scratch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
