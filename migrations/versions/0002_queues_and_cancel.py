"""Queue pausing (pgworker.queues) and cancellation of running jobs (cancel_requested_at).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per queue an operator has steered; a queue without a row is simply active.
    op.execute("""
CREATE TABLE pgworker.queues (
    name text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT queues_name_format
        CHECK (char_length(name) BETWEEN 1 AND 200 AND name !~ '[^A-Za-z0-9_.:-]')
)
    """)
    # Set by `pgworker jobs cancel` on a processing job: the worker sets the handler's
    # `cancelled` event, and whatever the handler then does, the attempt ends 'cancelled'.
    # Nullable without a default: adding it rewrites nothing.
    op.execute("ALTER TABLE pgworker.jobs ADD COLUMN cancel_requested_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE pgworker.jobs DROP COLUMN cancel_requested_at")
    op.execute("DROP TABLE pgworker.queues")
