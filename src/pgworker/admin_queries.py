"""Operator SQL: what `pgworker jobs`, `queues`, `status`, `prune` and `doctor` run.

The rules of queries.py hold here: one named constant per statement, every value a bound
parameter, a comment on the locks taken and the index used. None of these statements runs
on a worker's hot path; they are one-off statements, planned with their real values, so a
NULL filter (`%(x)s IS NULL OR ...`) folds away before planning.
"""

from __future__ import annotations

from typing import Final, LiteralString

# The database's clock: every age an operator sees is measured against it.
NOW: Final[LiteralString] = "SELECT now()"

# --- jobs ----------------------------------------------------------------------------------

# Newest first: a backward walk of the primary key, filtered, stopping after the limit.
LIST_JOBS: Final[LiteralString] = """
SELECT id, queue, task, status, priority, attempts, max_attempts, run_after, created_at,
       started_at, finished_at, worker_id::text, last_error, dedup_key, cancel_requested_at
FROM pgworker.jobs
WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(task)s::text IS NULL OR task = %(task)s)
ORDER BY id DESC
LIMIT %(limit)s
"""

# One job with its payload and error history, and its worker while it has one.
# Primary key probes; no locks.
SHOW_JOB: Final[LiteralString] = """
SELECT j.id, j.queue, j.task, j.status, j.priority, j.attempts, j.max_attempts, j.run_after,
       j.created_at, j.started_at, j.finished_at, j.worker_id::text, j.last_error,
       j.dedup_key, j.cancel_requested_at, j.payload::text, j.errors,
       w.hostname, w.pid, w.heartbeat_at
FROM pgworker.jobs AS j
LEFT JOIN pgworker.workers AS w ON w.id = j.worker_id
WHERE j.id = %(id)s
"""

# Locks the named jobs, in id order (two operators never deadlock), so that no claim, rescue
# or prune changes them while `jobs retry` or `jobs cancel` decides. Waits for a claim's or
# a completion's single statement at most; a pruner never waits for this lock.
LOCK_JOBS: Final[LiteralString] = """
SELECT id, status, queue, dedup_key
FROM pgworker.jobs
WHERE id = ANY(%(ids)s::bigint[])
ORDER BY id
FOR UPDATE
"""

# The live jobs holding any of these dedup keys: jobs_dedup_key_idx.
LIVE_DEDUP_HOLDERS: Final[LiteralString] = """
SELECT dedup_key, id
FROM pgworker.jobs
WHERE dedup_key = ANY(%(keys)s::text[])
  AND status IN ('pending', 'processing')
"""

# Failed or cancelled jobs back to pending, as new: attempts 0, due now. The error history
# stays. The unique jobs_dedup_key_idx refuses a second live job with the same key (the
# caller checks first and reports it). An UPDATE fires no insert trigger: callers NOTIFY.
RETRY_FINISHED_JOBS: Final[LiteralString] = """
UPDATE pgworker.jobs
SET status = 'pending',
    attempts = 0,
    run_after = now(),
    started_at = NULL,
    finished_at = NULL,
    worker_id = NULL,
    cancel_requested_at = NULL
WHERE id = ANY(%(ids)s::bigint[])
  AND status IN ('failed', 'cancelled')
RETURNING id, queue
"""

# One batch of `jobs retry --failed`, newest first below a cursor, each with the live job
# holding its dedup key (if any). Locks the batch's rows, waiting like LOCK_JOBS.
RETRY_CANDIDATES: Final[LiteralString] = """
SELECT c.id, c.queue, c.dedup_key, holder.id
FROM pgworker.jobs AS c
LEFT JOIN LATERAL (
    SELECT l.id
    FROM pgworker.jobs AS l
    WHERE l.dedup_key = c.dedup_key
      AND l.status IN ('pending', 'processing')
    LIMIT 1
) AS holder ON true
WHERE c.status = ANY(%(statuses)s::text[])
  AND (%(queue)s::text IS NULL OR c.queue = %(queue)s)
  AND (%(task)s::text IS NULL OR c.task = %(task)s)
  AND c.id < %(before)s
ORDER BY c.id DESC
LIMIT %(batch)s
FOR UPDATE OF c
"""

# Pending jobs end at once; row locks from LOCK_JOBS.
CANCEL_PENDING_JOBS: Final[LiteralString] = """
UPDATE pgworker.jobs
SET status = 'cancelled',
    finished_at = now()
WHERE id = ANY(%(ids)s::bigint[])
  AND status = 'pending'
RETURNING id
"""

# Running jobs are asked to stop: their worker sets the handler's `cancelled` event (at the
# NOTIFY below, or its next heartbeat) and the attempt ends 'cancelled' whatever it returns.
REQUEST_CANCEL: Final[LiteralString] = """
UPDATE pgworker.jobs
SET cancel_requested_at = coalesce(cancel_requested_at, now())
WHERE id = ANY(%(ids)s::bigint[])
  AND status = 'processing'
RETURNING id
"""

# Sent at commit; the workers' notifier passes the job id to its executor.
NOTIFY_CANCEL: Final[LiteralString] = """
SELECT pg_notify('pgworker_cancel', requested.id::text)
FROM unnest(%(ids)s::bigint[]) AS requested(id)
"""

# How many due pending jobs of the queue are claimed before this one: a range walk of
# jobs_claim_idx (queue, priority, run_after, id) up to the job's own entry.
JOBS_AHEAD: Final[LiteralString] = """
SELECT count(*)
FROM pgworker.jobs
WHERE status = 'pending'
  AND queue = %(queue)s
  AND run_after <= now()
  AND (priority, run_after, id) < (%(priority)s::smallint, %(run_after)s::timestamptz, %(id)s)
"""

# --- queues and workers --------------------------------------------------------------------

WORKERS: Final[LiteralString] = """
SELECT id::text, hostname, pid, queues, tasks, concurrency, busy, started_at, heartbeat_at,
       extract(epoch FROM now() - heartbeat_at)::float8
FROM pgworker.workers
ORDER BY hostname, started_at
"""

QUEUE_STATE: Final[LiteralString] = """
SELECT paused, updated_at
FROM pgworker.queues
WHERE name = %(queue)s
"""

QUEUE_STATES: Final[LiteralString] = """
SELECT name, paused, updated_at
FROM pgworker.queues
ORDER BY name
"""

# Whether a queue name means anything: a steered queue, a served one, or one with jobs. The
# last test is a scan of the whole table when the name is unknown (the error path only).
QUEUE_KNOWN: Final[LiteralString] = """
SELECT EXISTS (SELECT 1 FROM pgworker.queues WHERE name = %(queue)s)
    OR EXISTS (SELECT 1 FROM pgworker.workers WHERE %(queue)s = ANY(queues))
    OR EXISTS (SELECT 1 FROM pgworker.jobs WHERE status = 'pending' AND queue = %(queue)s)
    OR EXISTS (SELECT 1 FROM pgworker.jobs WHERE queue = %(queue)s)
"""

# A row only when something changed: a new paused row, or an active queue paused. Claims
# read pgworker.queues at every claim, so every worker honours it within one poll.
PAUSE_QUEUE: Final[LiteralString] = """
INSERT INTO pgworker.queues AS q (name, paused)
VALUES (%(queue)s, true)
ON CONFLICT (name) DO UPDATE
SET paused = true,
    updated_at = now()
WHERE NOT q.paused
RETURNING name
"""

RESUME_QUEUE: Final[LiteralString] = """
UPDATE pgworker.queues
SET paused = false,
    updated_at = now()
WHERE name = %(queue)s
  AND paused
RETURNING name
"""

# Per queue and status: pending (due, scheduled, oldest due), processing, failed. Each arm
# reads the partial index of its status: jobs_claim_idx (index-only once vacuumed),
# jobs_rescue_idx, jobs_prune_idx. Succeeded and cancelled history is never counted.
QUEUE_COUNTS: Final[LiteralString] = """
SELECT queue, 'pending' AS status,
       count(*) FILTER (WHERE run_after <= now()) AS jobs,
       count(*) FILTER (WHERE run_after > now()) AS scheduled,
       min(run_after) FILTER (WHERE run_after <= now()) AS oldest_due
FROM pgworker.jobs
WHERE status = 'pending'
GROUP BY queue
UNION ALL
SELECT queue, 'processing', count(*), 0, NULL
FROM pgworker.jobs
WHERE status = 'processing'
GROUP BY queue
UNION ALL
SELECT queue, 'failed', count(*), 0, NULL
FROM pgworker.jobs
WHERE status = 'failed'
GROUP BY queue
"""

# Jobs finished in the last minute (throughput) and failed in the last hour, per queue: a
# range of jobs_prune_idx (status, finished_at) per finished status.
RECENT_FINISHES: Final[LiteralString] = """
SELECT queue,
       count(*) FILTER (WHERE finished_at >= now() - interval '1 minute') AS last_minute,
       count(*) FILTER (WHERE status = 'failed') AS failed_last_hour
FROM pgworker.jobs
WHERE status IN ('succeeded', 'failed', 'cancelled')
  AND finished_at >= now() - interval '1 hour'
GROUP BY queue
"""

# Pending jobs that no live worker can run: none serves their queue, or none serving it has
# their task registered. Grouped before the anti-join, so the workers table is probed once
# per (queue, task), not once per job.
UNRUNNABLE_JOBS: Final[LiteralString] = """
WITH live AS (
    SELECT queues, tasks
    FROM pgworker.workers
    WHERE heartbeat_at > now() - make_interval(secs => %(stale_after)s::float8)
),
waiting AS (
    SELECT queue, task, count(*) AS jobs
    FROM pgworker.jobs
    WHERE status = 'pending'
    GROUP BY queue, task
)
SELECT w.queue, w.task, w.jobs,
       EXISTS (SELECT 1 FROM live WHERE w.queue = ANY(live.queues)) AS queue_served
FROM waiting AS w
WHERE NOT EXISTS (
    SELECT 1 FROM live WHERE w.queue = ANY(live.queues) AND w.task = ANY(live.tasks)
)
ORDER BY w.jobs DESC, w.queue, w.task
"""

# --- prune ---------------------------------------------------------------------------------

# What `pgworker prune --dry-run` would delete: a range count on jobs_prune_idx.
COUNT_PRUNABLE: Final[LiteralString] = """
SELECT count(*)
FROM pgworker.jobs
WHERE status = %(status)s
  AND finished_at < now() - make_interval(secs => %(older_than)s::float8)
"""

# --- doctor --------------------------------------------------------------------------------

SERVER_IDENTITY: Final[LiteralString] = """
SELECT current_setting('server_version'), current_database(), current_user
"""

# What holds back the xmin horizon of this database (so vacuum cannot remove the dead
# versions every claim and completion leaves behind): its sessions with a snapshot, standby
# feedback through walsenders, prepared transactions, and replication slots with an xmin
# (a slot's catalog_xmin holds back only the system catalogs). Needs pg_read_all_stats to
# see other roles' sessions.
XMIN_HOLDERS: Final[LiteralString] = """
SELECT 'session' AS kind,
       'pid ' || pid::text AS holder,
       coalesce(nullif(application_name, ''), backend_type) AS detail,
       coalesce(state, '') AS state,
       extract(epoch FROM now() - xact_start)::float8 AS seconds,
       age(backend_xmin)::bigint AS xids
FROM pg_stat_activity
WHERE backend_xmin IS NOT NULL
  AND pid <> pg_backend_pid()
  AND (datname = current_database() OR backend_type = 'walsender')
UNION ALL
SELECT 'prepared transaction', gid, owner::text, 'prepared',
       extract(epoch FROM now() - prepared)::float8, age(transaction)::bigint
FROM pg_prepared_xacts
WHERE database = current_database()
UNION ALL
SELECT 'replication slot', slot_name, slot_type,
       CASE WHEN active THEN 'active' ELSE 'inactive' END,
       NULL, age(xmin)::bigint
FROM pg_replication_slots
WHERE xmin IS NOT NULL
ORDER BY seconds DESC NULLS LAST, xids DESC
"""

JOBS_TABLE_STATS: Final[LiteralString] = """
SELECT s.n_live_tup, s.n_dead_tup,
       extract(epoch FROM now() - s.last_autovacuum)::float8,
       extract(epoch FROM now() - greatest(s.last_autovacuum, s.last_vacuum))::float8,
       current_setting('autovacuum')::boolean,
       NOT coalesce('autovacuum_enabled=false' = ANY(c.reloptions), false)
FROM pg_stat_user_tables AS s
JOIN pg_class AS c ON c.oid = s.relid
WHERE s.relid = 'pgworker.jobs'::regclass
"""

NOTIFICATION_QUEUE_USAGE: Final[LiteralString] = "SELECT pg_notification_queue_usage()"

# The doctor's own channel: no worker listens to it.
DOCTOR_LISTEN: Final[LiteralString] = "LISTEN pgworker_doctor"
DOCTOR_NOTIFY: Final[LiteralString] = "SELECT pg_notify('pgworker_doctor', %(token)s)"

# The queue the claim plan is checked for: the one with most pending jobs (jobs_claim_idx),
# and how many pending jobs there are, counted up to a cap.
BUSIEST_QUEUE: Final[LiteralString] = """
SELECT queue
FROM pgworker.jobs
WHERE status = 'pending'
GROUP BY queue
ORDER BY count(*) DESC
LIMIT 1
"""
PENDING_UP_TO: Final[LiteralString] = """
SELECT count(*)
FROM (SELECT 1 FROM pgworker.jobs WHERE status = 'pending' LIMIT %(cap)s) AS pending
"""

CLAIM_INDEX_VALID: Final[LiteralString] = """
SELECT i.indisvalid
FROM pg_index AS i
WHERE i.indexrelid = to_regclass('pgworker.jobs_claim_idx')
"""

# EXPLAIN (not ANALYZE: nothing runs) of a worker's claim statement.
EXPLAIN: Final[LiteralString] = "EXPLAIN (FORMAT JSON) "
