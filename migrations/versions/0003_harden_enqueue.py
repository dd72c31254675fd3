"""Harden pgworker.enqueue(): SECURITY DEFINER, fixed search_path, no PUBLIC EXECUTE, checks.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SECURITY DEFINER so an application role needs EXECUTE on this function and nothing
    # else: an INSERT ... RETURNING id needs SELECT (id), and an ON CONFLICT naming the dedup
    # index needs SELECT (dedup_key, status), which would let applications read other jobs'
    # dedup keys. The function sets only the columns an application may set; status,
    # attempts and worker_id always take their defaults.
    # search_path is pinned (pg_temp last) and every name is schema-qualified, so nothing a
    # caller creates can stand in for what the function calls.
    # Arguments are checked before the INSERT with the names of the CHECKs they mirror, so a
    # caller gets "invalid task name ..." (SQLSTATE 23514, constraint jobs_task_format)
    # instead of a bare constraint violation. The payload cap stays with jobs_payload_size
    # alone: the README tells DBAs to change it there.
    # Two INSERTs: ON CONFLICT costs ~5 % of an enqueue that cannot conflict.
    op.execute("""
CREATE OR REPLACE FUNCTION pgworker.enqueue(
    task text,
    payload jsonb DEFAULT '{}'::jsonb,
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    run_after timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT NULL,
    dedup_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    job_id bigint;
    due timestamptz := coalesce(enqueue.run_after, now());
    queue_name text := coalesce(enqueue.queue, 'default');
BEGIN
    IF enqueue.task IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'not_null_violation', SCHEMA = 'pgworker', TABLE = 'jobs', COLUMN = 'task',
            MESSAGE = 'pgworker.enqueue: task is required';
    END IF;
    IF char_length(enqueue.task) NOT BETWEEN 1 AND 200 OR enqueue.task ~ '[^A-Za-z0-9_.:-]' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation', SCHEMA = 'pgworker', TABLE = 'jobs', COLUMN = 'task',
            CONSTRAINT = 'jobs_task_format',
            MESSAGE = format(
                'pgworker.enqueue: invalid task name %s (length %s):'
                ' use 1-200 characters of A-Z a-z 0-9 _ . : -',
                quote_literal(left(enqueue.task, 60)), char_length(enqueue.task)
            );
    END IF;
    IF char_length(queue_name) NOT BETWEEN 1 AND 200 OR queue_name ~ '[^A-Za-z0-9_.:-]' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation', SCHEMA = 'pgworker', TABLE = 'jobs', COLUMN = 'queue',
            CONSTRAINT = 'jobs_queue_format',
            MESSAGE = format(
                'pgworker.enqueue: invalid queue name %s (length %s):'
                ' use 1-200 characters of A-Z a-z 0-9 _ . : -',
                quote_literal(left(queue_name, 60)), char_length(queue_name)
            );
    END IF;
    IF coalesce(enqueue.priority, 0) NOT BETWEEN -32768 AND 32767 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'numeric_value_out_of_range', SCHEMA = 'pgworker', TABLE = 'jobs',
            COLUMN = 'priority',
            MESSAGE = format(
                'pgworker.enqueue: priority %s is out of range: use -32768 to 32767',
                enqueue.priority
            );
    END IF;
    IF enqueue.max_attempts NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation', SCHEMA = 'pgworker', TABLE = 'jobs',
            COLUMN = 'max_attempts', CONSTRAINT = 'jobs_max_attempts_range',
            MESSAGE = format(
                'pgworker.enqueue: max_attempts %s is out of range: use 1 to 1000 (or NULL for'
                ' the task''s default)',
                enqueue.max_attempts
            );
    END IF;
    IF char_length(enqueue.dedup_key) NOT BETWEEN 1 AND 500 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation', SCHEMA = 'pgworker', TABLE = 'jobs',
            COLUMN = 'dedup_key', CONSTRAINT = 'jobs_dedup_key_length',
            MESSAGE = format(
                'pgworker.enqueue: dedup_key of %s characters: use 1 to 500 (or NULL)',
                char_length(enqueue.dedup_key)
            );
    END IF;
    IF NOT isfinite(due) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value', SCHEMA = 'pgworker', TABLE = 'jobs',
            COLUMN = 'run_after',
            MESSAGE = format('pgworker.enqueue: run_after must be a finite time, not %s', due);
    END IF;

    IF enqueue.dedup_key IS NULL THEN
        INSERT INTO pgworker.jobs (task, payload, queue, priority, run_after, max_attempts)
        VALUES (
            enqueue.task,
            coalesce(enqueue.payload, '{}'::jsonb),
            queue_name,
            coalesce(enqueue.priority, 0),
            due,
            enqueue.max_attempts
        )
        RETURNING id INTO job_id;
    ELSE
        INSERT INTO pgworker.jobs
            (task, payload, queue, priority, run_after, max_attempts, dedup_key)
        VALUES (
            enqueue.task,
            coalesce(enqueue.payload, '{}'::jsonb),
            queue_name,
            coalesce(enqueue.priority, 0),
            due,
            enqueue.max_attempts,
            enqueue.dedup_key
        )
        ON CONFLICT (dedup_key)
            WHERE dedup_key IS NOT NULL AND status IN ('pending', 'processing')
        DO NOTHING
        RETURNING id INTO job_id;
    END IF;
    RETURN job_id;
END
$$
    """)
    op.execute(
        "REVOKE EXECUTE ON FUNCTION"
        " pgworker.enqueue(text, jsonb, text, integer, timestamptz, integer, text) FROM PUBLIC"
    )
    op.execute("""
COMMENT ON FUNCTION pgworker.enqueue(text, jsonb, text, integer, timestamptz, integer, text)
    IS 'Enqueue one job; returns its id, or NULL when a live job already has this dedup_key.'
       ' SECURITY DEFINER: grant EXECUTE to application roles (pgworker migrate --grant-enqueue)'
    """)


def downgrade() -> None:
    op.execute("""
CREATE OR REPLACE FUNCTION pgworker.enqueue(
    task text,
    payload jsonb DEFAULT '{}'::jsonb,
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    run_after timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT NULL,
    dedup_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE sql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO pgworker.jobs (task, payload, queue, priority, run_after, max_attempts, dedup_key)
    VALUES (
        enqueue.task,
        coalesce(enqueue.payload, '{}'::jsonb),
        coalesce(enqueue.queue, 'default'),
        coalesce(enqueue.priority, 0),
        coalesce(enqueue.run_after, now()),
        enqueue.max_attempts,
        enqueue.dedup_key
    )
    ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('pending', 'processing')
    DO NOTHING
    RETURNING id
$$
    """)
    op.execute(
        "GRANT EXECUTE ON FUNCTION"
        " pgworker.enqueue(text, jsonb, text, integer, timestamptz, integer, text) TO PUBLIC"
    )
    op.execute("""
COMMENT ON FUNCTION pgworker.enqueue(text, jsonb, text, integer, timestamptz, integer, text)
    IS 'Enqueue one job; returns its id, or NULL when a live job already has this dedup_key'
    """)
