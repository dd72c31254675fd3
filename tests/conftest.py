"""The test database: one real PostgreSQL per run, a migrated template, a clone per test.

The server is, in this order: $PGWORKER_TEST_DSN; a testcontainers PostgreSQL if a Docker
engine answers (skipped when PGWORKER_TEST_EMBEDDED=1); the embedded server in a temporary
directory. Every database this run
creates is named pgwt_<run id>_..., so runs sharing a server never collide.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
from psycopg import sql

from support import Roles

RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
_clone_numbers = itertools.count(1)


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server the run may create databases on."""

    admin_dsn: str
    kind: str

    def dsn(self, dbname: str) -> str:
        return psycopg.conninfo.make_conninfo(self.admin_dsn, dbname=dbname)

    def execute(self, statement: sql.Composable) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(statement)


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _start_container() -> tuple[str, Any] | None:
    try:
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None)
        container.start()
    except Exception as exc:
        print(f"\ntestcontainers could not start PostgreSQL ({exc}); using the embedded server",
              file=sys.stderr)  # fmt: skip
        return None
    return container.get_connection_url(), container


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    """The run's PostgreSQL server."""
    given = os.environ.get("PGWORKER_TEST_DSN")
    if given:
        yield Server(given, "PGWORKER_TEST_DSN")
        return
    if not os.environ.get("PGWORKER_TEST_EMBEDDED") and _docker_answers():
        started = _start_container()
        if started is not None:
            url, container = started
            try:
                yield Server(url, "testcontainers")
            finally:
                container.stop()
            return
    from pgworker.embedded import ensure_server, stop_server

    home = Path(tempfile.mkdtemp(prefix="pgwt-"))
    try:
        yield Server(ensure_server(home, announce=False), "embedded")
    finally:
        stop_server(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server: Server) -> Iterator[str]:
    """A database migrated to head once per run; tests get clones of it."""
    from pgworker.migrate import upgrade

    name = f"pgwt_{RUN_ID}_template"
    pg_server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        upgrade(pg_server.dsn(name))
        yield name
    finally:
        pg_server.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def empty_db(pg_server: Server) -> Iterator[str]:
    """The DSN of a new, empty database (no pgworker schema), dropped after the test."""
    name = f"pgwt_{RUN_ID}_{next(_clone_numbers)}"
    pg_server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_server.dsn(name)
    finally:
        pg_server.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def dsn(pg_server: Server, template_db: str) -> Iterator[str]:
    """The DSN of this test's own migrated database, cloned from the template."""
    name = f"pgwt_{RUN_ID}_{next(_clone_numbers)}"
    pg_server.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)
        )
    )
    try:
        yield pg_server.dsn(name)
    finally:
        pg_server.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to this test's database."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def roles(pg_server: Server, dsn: str) -> Iterator[Roles]:
    """A worker, an enqueue and a readonly role (no privileges yet), dropped after the test.

    Roles are cluster-wide: each name carries the run id and a per-test number.
    """
    prefix = f"pgwt_{RUN_ID}_{next(_clone_numbers)}"
    made = Roles(f"{prefix}_worker", f"{prefix}_enqueue", f"{prefix}_readonly", dsn)
    names = [made.worker, made.enqueue, made.readonly]
    for name in names:
        pg_server.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    try:
        yield made
    finally:
        listed = sql.SQL(", ").join(map(sql.Identifier, names))
        with psycopg.connect(dsn, autocommit=True) as owner:
            owner.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(listed))
            owner.execute(sql.SQL("DROP OWNED BY {}").format(listed))
        for name in names:
            pg_server.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def granted(roles: Roles) -> Roles:
    """`roles`, each granted its pgworker privileges in this test's database."""
    roles.grant_all()
    return roles
