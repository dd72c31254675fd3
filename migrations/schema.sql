-- pgworker schema at head; regenerate with `make schema`.

CREATE TABLE pgworker.alembic_version (
    version_num character varying(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE UNIQUE INDEX alembic_version_pkc ON pgworker.alembic_version USING btree (version_num);

CREATE TABLE pgworker.jobs (
    id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    queue text NOT NULL DEFAULT 'default'::text,
    task text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    status text NOT NULL DEFAULT 'pending'::text,
    priority smallint NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer,
    run_after timestamp with time zone NOT NULL DEFAULT now(),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    worker_id uuid,
    last_error text,
    errors jsonb,
    dedup_key text,
    cancel_requested_at timestamp with time zone,
    CONSTRAINT jobs_attempts_range CHECK ((attempts >= 0)),
    CONSTRAINT jobs_dedup_key_length CHECK (((char_length(dedup_key) >= 1) AND (char_length(dedup_key) <= 500))),
    CONSTRAINT jobs_max_attempts_range CHECK (((max_attempts >= 1) AND (max_attempts <= 1000))),
    CONSTRAINT jobs_payload_size CHECK ((pg_column_size(payload) <= 1048576)),
    CONSTRAINT jobs_pkey PRIMARY KEY (id),
    CONSTRAINT jobs_queue_format CHECK ((((char_length(queue) >= 1) AND (char_length(queue) <= 200)) AND (queue !~ '[^A-Za-z0-9_.:-]'::text))),
    CONSTRAINT jobs_status_valid CHECK ((status = ANY (ARRAY['pending'::text, 'processing'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text]))),
    CONSTRAINT jobs_task_format CHECK ((((char_length(task) >= 1) AND (char_length(task) <= 200)) AND (task !~ '[^A-Za-z0-9_.:-]'::text)))
);
ALTER TABLE pgworker.jobs SET (autovacuum_analyze_scale_factor=0.02, autovacuum_vacuum_cost_delay=1, autovacuum_vacuum_insert_scale_factor=0.05, autovacuum_vacuum_scale_factor=0.01, autovacuum_vacuum_threshold=1000);
CREATE INDEX jobs_claim_idx ON pgworker.jobs USING btree (queue, priority, run_after, id) WHERE (status = 'pending'::text);
CREATE UNIQUE INDEX jobs_dedup_key_idx ON pgworker.jobs USING btree (dedup_key) WHERE ((dedup_key IS NOT NULL) AND (status = ANY (ARRAY['pending'::text, 'processing'::text])));
CREATE UNIQUE INDEX jobs_pkey ON pgworker.jobs USING btree (id);
CREATE INDEX jobs_prune_idx ON pgworker.jobs USING btree (status, finished_at) WHERE (status = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text]));
CREATE INDEX jobs_rescue_idx ON pgworker.jobs USING btree (worker_id) WHERE (status = 'processing'::text);
CREATE TRIGGER jobs_notify AFTER INSERT ON pgworker.jobs REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION pgworker.notify_jobs();
-- jobs: pgworker queue: one row per job; INSERT (task) is enough to enqueue

CREATE TABLE pgworker.queues (
    name text NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT queues_name_format CHECK ((((char_length(name) >= 1) AND (char_length(name) <= 200)) AND (name !~ '[^A-Za-z0-9_.:-]'::text))),
    CONSTRAINT queues_pkey PRIMARY KEY (name)
);
CREATE UNIQUE INDEX queues_pkey ON pgworker.queues USING btree (name);

CREATE TABLE pgworker.workers (
    id uuid NOT NULL,
    hostname text NOT NULL,
    pid integer NOT NULL,
    queues text[] NOT NULL,
    tasks text[] NOT NULL DEFAULT '{}'::text[],
    concurrency integer NOT NULL,
    busy integer NOT NULL DEFAULT 0,
    started_at timestamp with time zone NOT NULL DEFAULT now(),
    heartbeat_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT workers_pkey PRIMARY KEY (id)
);
ALTER TABLE pgworker.workers SET (fillfactor=50);
CREATE UNIQUE INDEX workers_pkey ON pgworker.workers USING btree (id);

CREATE OR REPLACE FUNCTION pgworker.append_error(errors jsonb, attempt integer, message text)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT coalesce(jsonb_agg(entry ORDER BY n), '[]'::jsonb)
    FROM (
        SELECT entry, n
        FROM jsonb_array_elements(
            coalesce(errors, '[]'::jsonb)
            || jsonb_build_array(
                jsonb_build_object('attempt', attempt, 'at', now(), 'error', message)
            )
        ) WITH ORDINALITY AS history(entry, n)
        ORDER BY n DESC
        LIMIT 10
    ) AS kept
$function$;

CREATE OR REPLACE FUNCTION pgworker.enqueue(task text, payload jsonb DEFAULT '{}'::jsonb, queue text DEFAULT 'default'::text, priority integer DEFAULT 0, run_after timestamp with time zone DEFAULT NULL::timestamp with time zone, max_attempts integer DEFAULT NULL::integer, dedup_key text DEFAULT NULL::text)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;
-- privileges: <owner>=X/<owner>
-- comment: Enqueue one job; returns its id, or NULL when a live job already has this dedup_key. SECURITY DEFINER: grant EXECUTE to application roles (pgworker migrate --grant-enqueue)

CREATE OR REPLACE FUNCTION pgworker.notify_jobs()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
    due_queue text;
BEGIN
    FOR due_queue IN SELECT DISTINCT queue FROM new_jobs WHERE run_after <= now() LOOP
        PERFORM pg_notify('pgworker_jobs', due_queue);
    END LOOP;
    RETURN NULL;
END
$function$;
