"""Roles: the privileges of the worker, enqueue and readonly roles, granted by code.

The owner of the `pgworker` schema runs `pgworker migrate` (DDL) and nothing else needs
DDL. The README's "Security" section prints these statements as SQL for DBAs; a test pins
that text to ROLE_GRANTS. Grants only add: run `pgworker migrate --grant-...` again after an
upgrade, and revoke by hand what should go.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, LiteralString

import psycopg
from psycopg import sql

from pgworker.errors import ConfigError
from pgworker.jobs import preview

# An application: set the columns a new job may set, call pgworker.enqueue(); read nothing.
# No SELECT at all: INSERT ... RETURNING id would need SELECT (id), and ON CONFLICT naming
# the dedup index SELECT (dedup_key, status). The Python client calls pgworker.enqueue()
# (SECURITY DEFINER), which returns the id; COPY and plain INSERT need only these columns.
ENQUEUE_GRANTS: Final[tuple[LiteralString, ...]] = (
    "GRANT USAGE ON SCHEMA pgworker TO {role}",
    "GRANT INSERT (task, queue, payload, priority, run_after, max_attempts, dedup_key)"
    " ON pgworker.jobs TO {role}",
    "GRANT EXECUTE ON FUNCTION"
    " pgworker.enqueue(text, jsonb, text, integer, timestamptz, integer, text) TO {role}",
)

# `pgworker work`: read jobs (payloads included), claim and finish them, prune finished ones,
# keep its own row in workers, read queue pauses, check the schema revision. It may UPDATE
# only the columns the life of a job changes: never task, queue, payload, priority or
# dedup_key. It gets the enqueue grants too, so handlers can enqueue follow-up jobs; that
# adds nothing it could not already cause by claiming. LISTEN needs no grant.
WORKER_GRANTS: Final[tuple[LiteralString, ...]] = (
    *ENQUEUE_GRANTS,
    "GRANT SELECT ON pgworker.alembic_version TO {role}",
    "GRANT SELECT, DELETE ON pgworker.jobs TO {role}",
    "GRANT UPDATE (status, attempts, run_after, started_at, finished_at, worker_id,"
    " max_attempts, last_error, errors) ON pgworker.jobs TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON pgworker.workers TO {role}",
    "GRANT SELECT ON pgworker.queues TO {role}",
    "GRANT EXECUTE ON FUNCTION pgworker.append_error(jsonb, integer, text) TO {role}",
)

# Dashboards: every column of every table but jobs.payload, and nothing to write.
READONLY_GRANTS: Final[tuple[LiteralString, ...]] = (
    "GRANT USAGE ON SCHEMA pgworker TO {role}",
    "GRANT SELECT ON pgworker.alembic_version TO {role}",
    "GRANT SELECT (id, queue, task, status, priority, attempts, max_attempts, run_after,"
    " created_at, started_at, finished_at, worker_id, last_error, errors, dedup_key,"
    " cancel_requested_at) ON pgworker.jobs TO {role}",
    "GRANT SELECT ON pgworker.workers, pgworker.queues TO {role}",
)

ROLE_GRANTS: Final[Mapping[str, tuple[LiteralString, ...]]] = {
    "worker": WORKER_GRANTS,
    "enqueue": ENQUEUE_GRANTS,
    "readonly": READONLY_GRANTS,
}

# Role names pgworker grants to: plain identifiers, at most 63 bytes (NAMEDATALEN - 1).
# psycopg.sql.Identifier quotes them anyway; the allow-list keeps odd names out of GRANTs
# altogether. "public" is refused because GRANT ... TO "public" means every role, quoted or
# not; "none" and pg_* are reserved by PostgreSQL.
ROLE_NAME_PATTERN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,62}")


def check_role_name(name: str) -> str:
    """Refuse a role name that is not a plain identifier, or that PostgreSQL reserves."""
    if not isinstance(name, str) or not ROLE_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"invalid role name {preview(name)}: use a letter or _ then up to 62 letters,"
            " digits, _ or -"
        )
    lowered = name.lower()
    if lowered in ("public", "none") or lowered.startswith("pg_"):
        raise ConfigError(f"role name {name!r} is reserved by PostgreSQL: name a role you created")
    return name


def grant_statements(kind: str, role: str) -> list[sql.Composed]:
    """The GRANTs giving `role` the privileges of `kind`: worker, enqueue or readonly."""
    if kind not in ROLE_GRANTS:
        raise ConfigError(f"unknown role kind {kind!r}: use {', '.join(ROLE_GRANTS)}")
    identifier = sql.Identifier(check_role_name(role))
    return [sql.SQL(template).format(role=identifier) for template in ROLE_GRANTS[kind]]


def grant_sql(grants: Iterable[tuple[str, str]]) -> str:
    """The GRANTs for (kind, role) pairs as SQL text, for DBAs to review or run."""
    lines = []
    for kind, role in grants:
        lines.append(f"-- pgworker {kind} role: {role}")
        lines += [statement.as_string(None) + ";" for statement in grant_statements(kind, role)]
    return "\n".join(lines) + "\n" if lines else ""


def require_roles(conn: psycopg.Connection[Any], names: Iterable[str]) -> None:
    """Raise ConfigError naming the first of these roles that does not exist."""
    for role in sorted(set(names)):
        found = conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role,))
        if found.fetchone() is None:
            raise ConfigError(
                f"role {role!r} does not exist: create it first (CREATE ROLE ... LOGIN);"
                " role names are case-sensitive"
            )


def grant(conn: psycopg.Connection[Any], grants: Iterable[tuple[str, str]]) -> None:
    """Grant each (kind, role) pair in one transaction; every role must exist already."""
    pairs = list(grants)
    statements = [s for kind, role in pairs for s in grant_statements(kind, role)]
    require_roles(conn, [role for _, role in pairs])
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)
