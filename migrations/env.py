"""Alembic environment: driven from code by pgworker.migrate, never by an alembic.ini."""

from __future__ import annotations

from alembic import context

SCHEMA = "pgworker"
# Two `pgworker migrate` runs at once (a deploy on several hosts) queue up behind this
# transaction-scoped advisory lock instead of racing on CREATE SCHEMA and the version table.
MIGRATE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('pgworker.migrate'))"
PREAMBLE = (MIGRATE_LOCK, f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")


def run_migrations_offline() -> None:
    context.configure(
        dialect_name="postgresql",
        literal_binds=True,
        version_table_schema=SCHEMA,
        transactional_ddl=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        for statement in PREAMBLE:
            context.execute(statement)
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        version_table_schema=SCHEMA,
        transactional_ddl=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        for statement in PREAMBLE:
            context.execute(statement)
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
