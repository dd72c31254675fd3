"""Every runtime SQL statement, named for what it does.

Each statement says which locks it takes and which index it relies on. Values are always
bound parameters; nothing here is built by string formatting.
"""

from __future__ import annotations

from typing import Final, LiteralString

# --- enqueue -------------------------------------------------------------------------------

# One job through pgworker.enqueue() (SECURITY DEFINER): the enqueue role needs EXECUTE on
# it and no SELECT, which INSERT ... RETURNING id and ON CONFLICT (dedup_key) would need.
# The function checks its arguments with the jobs CHECKs' names, and inserts with ON CONFLICT
# on jobs_dedup_key_idx only when a dedup_key is given. Row lock on the new row only.
# Every argument is cast: psycopg sends a large Python int as bigint, which would match no
# function. Positional parameters, and the four usual arguments alone, keep the client's
# share of an enqueue small (each parameter is dumped and sent every time).
ENQUEUE_JOB: Final[LiteralString] = """
SELECT pgworker.enqueue(
    task => %s::text,
    payload => %s::jsonb,
    queue => %s::text,
    priority => %s::integer
)
"""
# The same with every argument, when one of the last four is given.
ENQUEUE_JOB_WITH_OPTIONS: Final[LiteralString] = """
SELECT pgworker.enqueue(
    task => %s::text,
    payload => %s::jsonb,
    queue => %s::text,
    priority => %s::integer,
    run_after => coalesce(%s::timestamptz, now() + make_interval(secs => %s::float8)),
    max_attempts => %s::integer,
    dedup_key => %s::text
)
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

# --- workers -------------------------------------------------------------------------------

REGISTER_WORKER: Final[LiteralString] = """
INSERT INTO pgworker.workers (id, hostname, pid, queues, tasks, concurrency)
VALUES (%(id)s, %(hostname)s, %(pid)s, %(queues)s, %(tasks)s, %(concurrency)s)
"""

# A HOT update of one row (heartbeat_at is not indexed; fillfactor 50). No row back means
# another worker declared this one dead and deleted its row.
HEARTBEAT: Final[LiteralString] = """
UPDATE pgworker.workers
SET heartbeat_at = now(),
    busy = %(busy)s
WHERE id = %(id)s
RETURNING id
"""

# The running jobs of this worker that `pgworker jobs cancel` asked to stop; checked with
# every heartbeat. jobs_rescue_idx (worker_id) WHERE status = 'processing'.
CANCEL_REQUESTS: Final[LiteralString] = """
SELECT id
FROM pgworker.jobs
WHERE worker_id = %(id)s
  AND status = 'processing'
  AND cancel_requested_at IS NOT NULL
"""

DEREGISTER_WORKER: Final[LiteralString] = """
DELETE FROM pgworker.workers
WHERE id = %(id)s
"""

# --- the claim -----------------------------------------------------------------------------

# The end of both claims: mark the rows of `next` claimed by this worker and return them in
# claim order.
_CLAIM_NEXT: Final[LiteralString] = """claimed AS (
    UPDATE pgworker.jobs AS j
    SET status = 'processing',
        attempts = j.attempts + 1,
        started_at = now(),
        worker_id = %(worker_id)s
    WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM next))
    RETURNING j.id, j.task, j.queue, j.attempts, j.max_attempts, j.payload::text AS payload,
              j.priority, j.run_after
)
SELECT id, task, queue, attempts, max_attempts, payload{pickup}
FROM claimed
ORDER BY priority, run_after, id
"""

# Claims up to {limit} due jobs of one queue, in claim order (priority, run_after, id), for
# one worker. Row locks last only for this statement: nothing is held while handlers run;
# rows another claim has locked are skipped, never waited for.
#
# jobs_claim_idx is (queue, priority, run_after, id) WHERE status = 'pending'. Within one
# priority the due rows come first, so each priority is one short range scan that stops at
# LIMIT or at the first future row. The recursive CTE walks the distinct priorities (one
# index probe each, and only as far as the LIMIT needs): a plain scan over the queue read
# every future row of a priority before reaching the next, so an idle claim over 100k
# scheduled jobs took 6 ms and 606 buffers, against 0.4 ms and 14 buffers this way.
#
# {limit} is a literal, never a parameter: under a generic plan a parameter LIMIT turned the
# claim into a full scan (3k jobs/s). Callers pick one of CLAIM_SIZES so each connection
# prepares a handful of statements. The EXISTS (one primary key probe) keeps a worker that
# was declared dead from claiming under its old id; the NOT EXISTS honours
# `pgworker queues pause` at the next claim. Both are one-time filters. The UPDATE finds its
# rows by ctid = ANY(...), always a Tid Scan (a ctid is stable while this statement holds
# the row lock): joined on id, or even on ctid, the planner chose a hash join over a
# sequential scan of the whole table when it was small (5 ms a claim against 1 ms). The
# rows come back in claim order, so a worker starts them in that order.
CLAIM_JOBS_TEMPLATE: Final[LiteralString] = (
    """
WITH RECURSIVE priorities (priority) AS (
    (
        SELECT priority
        FROM pgworker.jobs
        WHERE status = 'pending'
          AND queue = %(queue)s
        ORDER BY priority
        LIMIT 1
    )
    UNION ALL
    SELECT (
        SELECT j.priority
        FROM pgworker.jobs AS j
        WHERE j.status = 'pending'
          AND j.queue = %(queue)s
          AND j.priority > p.priority
        ORDER BY j.priority
        LIMIT 1
    )
    FROM priorities AS p
    WHERE p.priority IS NOT NULL
),
next AS (
    SELECT due.ctid
    FROM priorities AS p
    CROSS JOIN LATERAL (
        SELECT ctid
        FROM pgworker.jobs
        WHERE status = 'pending'
          AND queue = %(queue)s
          AND priority = p.priority
          AND run_after <= now()
        ORDER BY run_after, id
        LIMIT {limit}
        FOR UPDATE SKIP LOCKED
    ) AS due
    WHERE p.priority IS NOT NULL
      AND EXISTS (SELECT 1 FROM pgworker.workers WHERE id = %(worker_id)s)
      AND NOT EXISTS (SELECT 1 FROM pgworker.queues WHERE name = %(queue)s AND paused)
    LIMIT {limit}
),
"""
    + _CLAIM_NEXT
)

# The claim for several queues in one round trip: the same walk over every (queue, priority)
# of the served, unpaused queues, never `queue = ANY(...)`, which made PostgreSQL 15 sort the
# whole backlog (12x slower). The final ORDER BY keeps the claim order across queues, at the
# cost of locking up to {limit} rows per (queue, priority) for the statement's duration.
CLAIM_JOBS_MULTI_TEMPLATE: Final[LiteralString] = (
    """
WITH RECURSIVE keys (queue, priority) AS (
    SELECT served.queue,
           (
               SELECT j.priority
               FROM pgworker.jobs AS j
               WHERE j.status = 'pending'
                 AND j.queue = served.queue
               ORDER BY j.priority
               LIMIT 1
           )
    FROM unnest(%(queues)s::text[]) AS served (queue)
    WHERE NOT EXISTS (
        SELECT 1 FROM pgworker.queues AS q WHERE q.name = served.queue AND q.paused
    )
    UNION ALL
    SELECT k.queue,
           (
               SELECT j.priority
               FROM pgworker.jobs AS j
               WHERE j.status = 'pending'
                 AND j.queue = k.queue
                 AND j.priority > k.priority
               ORDER BY j.priority
               LIMIT 1
           )
    FROM keys AS k
    WHERE k.priority IS NOT NULL
),
next AS (
    SELECT due.ctid
    FROM keys AS k
    CROSS JOIN LATERAL (
        SELECT ctid, id, priority, run_after
        FROM pgworker.jobs
        WHERE status = 'pending'
          AND queue = k.queue
          AND priority = k.priority
          AND run_after <= now()
        ORDER BY run_after, id
        LIMIT {limit}
        FOR UPDATE SKIP LOCKED
    ) AS due
    WHERE k.priority IS NOT NULL
      AND EXISTS (SELECT 1 FROM pgworker.workers WHERE id = %(worker_id)s)
    ORDER BY due.priority, due.run_after, due.id
    LIMIT {limit}
),
"""
    + _CLAIM_NEXT
)

# {pickup} is empty, or this extra column when the worker exports metrics: seconds between the
# job becoming due and this claim (the pickup latency), measured on the database's clock.
CLAIM_PICKUP_COLUMN: Final[LiteralString] = """,
       extract(epoch FROM now() - run_after)::float8"""

# The claim batch sizes a worker asks for (it rounds down to one of these).
CLAIM_SIZES: Final = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50, 64, 80, 100, 128,
                      160, 200, 256, 320, 400, 500)  # fmt: skip

# --- finishing -----------------------------------------------------------------------------

# Every write that ends a claim is fenced on (id, worker_id, attempts, status = 'processing'):
# a worker that was declared dead and rescued changes nothing with its late writes.
# Each statement takes at most COMPLETION_BATCH ids: past ~1,000 the planner switched from
# primary key probes to a full scan.
COMPLETION_BATCH: Final = 500

# Row locks on the finished rows only; primary key probes. A job whose cancellation was
# requested while it ran ends 'cancelled', decided here so no request can slip between.
COMPLETE_JOBS: Final[LiteralString] = """
UPDATE pgworker.jobs AS j
SET status = CASE WHEN j.cancel_requested_at IS NULL THEN 'succeeded' ELSE 'cancelled' END,
    finished_at = now()
FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[]) AS done(id, attempts)
WHERE j.id = done.id
  AND j.attempts = done.attempts
  AND j.worker_id = %(worker_id)s
  AND j.status = 'processing'
"""

# Every other end of an attempt, one row each: back to 'pending' after a delay (a retry,
# RetryLater, a hand-back), or 'failed' / 'cancelled'. `refund` takes the attempt back, for
# jobs that never ran or ran into a shutdown: at shutdown that worker never claims again under
# its id; a live worker's refunding writes are never retried (completer.Ending.reconcile), so
# no retried write can refund a later claim of the same job. A non-null `max_attempts`
# replaces the job's (RetryLater grants one more attempt: the attempt did run). A job whose
# cancellation was requested ends 'cancelled' whatever its attempt's outcome.
RETRY_OR_FAIL_JOBS: Final[LiteralString] = """
UPDATE pgworker.jobs AS j
SET status = CASE WHEN j.cancel_requested_at IS NULL THEN r.status ELSE 'cancelled' END,
    run_after = CASE WHEN r.status = 'pending' AND j.cancel_requested_at IS NULL
                     THEN now() + make_interval(secs => r.delay)
                     ELSE j.run_after END,
    finished_at = CASE WHEN r.status = 'pending' AND j.cancel_requested_at IS NULL
                       THEN NULL ELSE now() END,
    worker_id = CASE WHEN r.status = 'pending' AND j.cancel_requested_at IS NULL
                     THEN NULL ELSE j.worker_id END,
    attempts = j.attempts - r.refund,
    max_attempts = coalesce(r.max_attempts, j.max_attempts),
    last_error = coalesce(r.error, j.last_error),
    errors = CASE WHEN r.summary IS NULL THEN j.errors
                  ELSE pgworker.append_error(j.errors, j.attempts, r.summary) END
FROM unnest(
    %(ids)s::bigint[],
    %(attempts)s::integer[],
    %(statuses)s::text[],
    %(delays)s::float8[],
    %(refunds)s::integer[],
    %(max_attempts)s::integer[],
    %(errors)s::text[],
    %(summaries)s::text[]
) AS r(id, attempts, status, delay, refund, max_attempts, error, summary)
WHERE j.id = r.id
  AND j.attempts = r.attempts
  AND j.worker_id = %(worker_id)s
  AND j.status = 'processing'
"""

# --- rescue --------------------------------------------------------------------------------

# Declares dead the workers silent for stale_after (only when the caller has itself been
# heartbeating that long: after a database outage every heartbeat is old), deletes their
# rows, and puts every job held by a worker without a row back to 'pending', or 'failed'
# when its attempts are used up. Walks jobs_rescue_idx (processing jobs only). Never looks
# at tasks or queues: a worker rescues jobs it could not run itself.
RESCUE_JOBS: Final[LiteralString] = """
WITH dead AS (
    DELETE FROM pgworker.workers
    WHERE %(declare_dead)s
      AND heartbeat_at < now() - make_interval(secs => %(stale_after)s)
    RETURNING id, hostname, pid
),
lost AS (
    SELECT j.id,
           'worker ' || j.worker_id::text
           || coalesce(' (' || dead.hostname || ' pid ' || dead.pid::text || ')', '')
           || CASE WHEN dead.id IS NULL THEN ' lost: its worker row is gone'
                   ELSE ' lost: no heartbeat for ' || %(stale_after)s::text || ' s' END
               AS reason
    FROM pgworker.jobs AS j
    LEFT JOIN dead ON dead.id = j.worker_id
    WHERE j.status = 'processing'
      AND (dead.id IS NOT NULL
           OR NOT EXISTS (SELECT 1 FROM pgworker.workers AS w WHERE w.id = j.worker_id))
    ORDER BY j.id
    LIMIT 1000
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE pgworker.jobs AS j
SET status = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                  WHEN j.attempts >= j.max_attempts THEN 'failed'
                  ELSE 'pending' END,
    run_after = now(),
    finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL OR j.attempts >= j.max_attempts
                       THEN now() END,
    worker_id = CASE WHEN j.cancel_requested_at IS NOT NULL OR j.attempts >= j.max_attempts
                     THEN j.worker_id END,
    last_error = lost.reason,
    errors = pgworker.append_error(j.errors, j.attempts, lost.reason)
FROM lost
WHERE j.id = lost.id
RETURNING j.id, j.queue, j.status, lost.reason, j.task
"""

# Wakes the workers of the queues that rescued (or retried-by-hand) jobs went back to.
NOTIFY_QUEUES: Final[LiteralString] = """
SELECT pg_notify('pgworker_jobs', queue)
FROM unnest(%(queues)s::text[]) AS woken(queue)
"""

# --- prune ---------------------------------------------------------------------------------

# Deletes up to %(batch)s jobs of one finished status that finished before the retention
# cutoff, oldest first: a range walk of jobs_prune_idx (status, finished_at) that stops after
# the batch, so each statement (one transaction in autocommit) stays short.
# The advisory lock lasts for this statement's transaction: one pruner deletes at a time and
# the others find no rows and try again at their next run. Rows another session has locked
# (an operator's `jobs retry`) are skipped, never waited for: a pruner waits for no one, so
# no deadlock can involve it. The deletion probes the primary key with the array of ids: a
# join to the selected ids let the planner hash-join against a scan of the whole table.
# Run with prepare=False: the batch is a parameter, and a generic plan could not use the
# partial index for a parameter status.
PRUNE_JOBS: Final[LiteralString] = """
DELETE FROM pgworker.jobs
WHERE id = ANY(ARRAY(
    SELECT id
    FROM pgworker.jobs
    WHERE status = %(status)s
      AND finished_at < now() - make_interval(secs => %(older_than)s::float8)
      AND (SELECT pg_try_advisory_xact_lock(hashtext('pgworker.prune')))
    ORDER BY finished_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
))
"""

# Jobs per statement of PRUNE_JOBS: ~10 ms of work, short enough to interleave heartbeats.
PRUNE_BATCH: Final = 1000

# `pgworker prune` waits for a worker's batch to end instead of skipping: it takes the
# pruners' advisory lock for its own transaction first (PRUNE_JOBS then re-enters it).
PRUNE_LOCK: Final[LiteralString] = """
SELECT pg_advisory_xact_lock(hashtext('pgworker.prune'))
"""

# --- metrics -------------------------------------------------------------------------------

# Due pending jobs and the age of the oldest, per served queue, read at each metrics scrape:
# one walk of jobs_claim_idx per queue (index-only once vacuum has run).
QUEUE_DEPTH: Final[LiteralString] = """
SELECT served.queue, due.jobs, due.oldest
FROM unnest(%(queues)s::text[]) AS served(queue)
CROSS JOIN LATERAL (
    SELECT count(*) AS jobs,
           extract(epoch FROM now() - min(run_after))::float8 AS oldest
    FROM pgworker.jobs
    WHERE status = 'pending'
      AND queue = served.queue
      AND run_after <= now()
) AS due
"""

# A scrape must not hang on a locked or overloaded database: Prometheus gives up anyway.
SCRAPE_TIMEOUT: Final[LiteralString] = "SET LOCAL statement_timeout = '5s'"

# pgworker_jobs carries a queue name (new due jobs); pgworker_cancel a job id whose
# cancellation was requested (heartbeats pick such requests up too, in case one is missed).
LISTEN: Final[LiteralString] = "LISTEN pgworker_jobs; LISTEN pgworker_cancel"

# Proves the LISTEN connection's server still answers (a frozen one keeps TCP alive).
PING: Final[LiteralString] = "SELECT 1"

# The jobs the database says this worker holds, to find those of a claim whose reply was
# lost with its connection (committed, but never seen by the worker).
# jobs_rescue_idx (worker_id) WHERE status = 'processing'.
HELD_JOBS: Final[LiteralString] = """
SELECT id, task, attempts, max_attempts
FROM pgworker.jobs
WHERE worker_id = %(id)s
  AND status = 'processing'
"""
