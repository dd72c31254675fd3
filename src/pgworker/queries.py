"""Every runtime SQL statement, named for what it does.

Each statement says which locks it takes and which index it relies on. Values are always
bound parameters; nothing here is built by string formatting.
"""

from __future__ import annotations

from typing import Final, LiteralString

# --- enqueue -------------------------------------------------------------------------------

# Row lock on the new row only.
INSERT_JOB: Final[LiteralString] = """
INSERT INTO pgworker.jobs (task, payload, queue, priority, run_after, max_attempts)
VALUES (
    %(task)s,
    %(payload)s::jsonb,
    %(queue)s,
    %(priority)s,
    coalesce(%(run_after)s::timestamptz, now() + make_interval(secs => %(delay)s::float8)),
    %(max_attempts)s
)
RETURNING id
"""

# INSERT_JOB with a dedup_key: a live job with the same key makes this a no-op that returns
# no row. The unique jobs_dedup_key_idx makes it safe under concurrency. Kept apart from
# INSERT_JOB because ON CONFLICT costs ~5 % of a single enqueue that cannot conflict.
INSERT_UNIQUE_JOB: Final[LiteralString] = """
INSERT INTO pgworker.jobs (task, payload, queue, priority, run_after, max_attempts, dedup_key)
VALUES (
    %(task)s,
    %(payload)s::jsonb,
    %(queue)s,
    %(priority)s,
    coalesce(%(run_after)s::timestamptz, now() + make_interval(secs => %(delay)s::float8)),
    %(max_attempts)s,
    %(dedup_key)s
)
ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('pending', 'processing')
DO NOTHING
RETURNING id
"""

# Bulk load; the statement-level trigger sends one NOTIFY per queue for the whole COPY.
# run_after takes its default, now(), unless the jobs are scheduled (COPY_SCHEDULED_JOBS).
COPY_JOBS: Final[LiteralString] = """
COPY pgworker.jobs (task, queue, payload, priority, max_attempts)
FROM STDIN
"""
COPY_SCHEDULED_JOBS: Final[LiteralString] = """
COPY pgworker.jobs (task, queue, payload, priority, max_attempts, run_after)
FROM STDIN
"""

# The database's clock, so delays never depend on the client's.
DB_TIME_AFTER: Final[LiteralString] = """
SELECT now() + make_interval(secs => %(delay)s::float8)
"""
