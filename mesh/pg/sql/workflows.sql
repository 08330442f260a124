-- Workflows written as code (mesh/pg/workflows.py). A workflow is a job of version 'code'
-- whose topic is the workflow's name; its data holds its args, its task queue and, once
-- done, its result; its durable calls are rows of mesh.workflow_steps. jobs.applied_steps counts the
-- steps applied, so a node holding the workflow's coroutine knows whether another node moved
-- it on meanwhile (then it replays instead).

-- name: workflow_start
-- A new workflow: its job and data (with its parent's await, for a child), or nothing when
-- the id is taken (no row returned).
WITH job AS (
    INSERT INTO mesh.jobs (app, key, gid, version, topic, entity, state, status, trace)
    VALUES (%(app)s, %(key)s, %(gid)s, 'code', %(name)s, %(name)s, 'running', 1,
            nullif(%(trace)s, ''))
    ON CONFLICT (app, key) DO NOTHING
    RETURNING id
), data AS (
    INSERT INTO mesh.jobs_attributes (job_id, dimension, symbol, value)
    SELECT job.id, '', f.field, f.value
    FROM job, (VALUES ('args', %(args)s::jsonb), ('task_queue', to_jsonb(%(task_queue)s::text)),
                      ('parent', %(parent)s::jsonb)) AS f(field, value)
    WHERE f.value IS NOT NULL
)
SELECT id FROM job;

-- name: workflow_start_many
-- New workflows started by clients, in one statement: their jobs and data. A start whose id
-- is taken (or taken by an earlier start of the same statement, in ``ord`` order) inserts
-- nothing; the generation ids of those inserted come back.
WITH input AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS r(ord int, key text, gid text, name text, args jsonb, task_queue text, trace text)
), job AS (
    INSERT INTO mesh.jobs (app, key, gid, version, topic, entity, state, status, trace)
    SELECT %(app)s, key, gid, 'code', name, name, 'running', 1, nullif(trace, '')
    FROM input ORDER BY ord
    ON CONFLICT (app, key) DO NOTHING
    RETURNING id, gid
), data AS (
    INSERT INTO mesh.jobs_attributes (job_id, dimension, symbol, value)
    SELECT job.id, '', f.field, f.value
    FROM job JOIN input i ON i.gid = job.gid,
         LATERAL (VALUES ('args', i.args), ('task_queue', to_jsonb(i.task_queue)))
             AS f(field, value)
)
SELECT gid FROM job;

-- name: workflow_target
-- Where a signal to a workflow goes: its generation and its task queue (running ones only).
SELECT j.gid, (SELECT a.value #>> '{}' FROM mesh.jobs_attributes a
               WHERE a.job_id = j.id AND a.dimension = '' AND a.symbol = 'task_queue')
FROM mesh.jobs j
WHERE j.app = %(app)s AND j.key = %(key)s AND j.version = 'code' AND j.state = 'running';

-- name: workflow_lock_jobs
-- A workflow batch's first statement: the fenced ack of its claims (take_claims, queries.sql:
-- what it deletes is handled, the rest was lost to another consumer) and the locks of the
-- workflows its messages name, in id order. It returns ids only ('taken' claims, 'locked'
-- jobs): what a step decides from is read by durable_read_jobs, the next statement (see
-- there). The key probe is shaped like lock_jobs' (queries.sql) so the plan cannot drift:
-- one key probe per key, then the rows by primary key. `app = $1 AND key = ANY($2)` let a
-- generic plan cached while the app was new scan the app's jobs per batch.
WITH taken AS (
    DELETE FROM mesh.stream_messages AS m
    USING unnest(mesh.lines(%(ids)s)::bigint[], mesh.lines(%(attempts)s)::int[])
          AS a(id, attempt)
    WHERE m.id = a.id AND m.attempts = a.attempt AND m.lease_owner = %(owner)s
    RETURNING m.id
), locked AS (
    SELECT j.id
    FROM mesh.jobs j
    WHERE j.id = ANY(ARRAY(
        SELECT found.id
        FROM unnest(%(keys)s::text[]) AS wanted(key)
        CROSS JOIN LATERAL (
            SELECT id FROM mesh.jobs WHERE key = wanted.key AND app || '' = %(app)s LIMIT 1
        ) AS found))
      AND j.version = 'code'
    ORDER BY j.id
    FOR UPDATE OF j
)
SELECT 'taken', id FROM taken
UNION ALL
SELECT 'locked', id FROM locked;

-- name: workflow_read_jobs
-- What a run needs of the workflows durable_lock_jobs locked: their rows, their data
-- (args, task queue, parent, generation: one range scan) and the signals that wait for a
-- condition. Sent right after the lock, as a statement of its own: under READ COMMITTED a
-- statement that waited for a row lock sees the newest version of the locked row, but reads
-- everything else (subqueries, other tables) from the snapshot it started with, before the
-- lock was granted. A signal buffered by the transaction it waited for was then invisible,
-- and the condition it answered waited for ever. This statement starts after the lock is
-- held, so its snapshot holds every commit made under the lock. The caller keeps only the
-- rows it locked.
SELECT j.id, j.key, j.gid, j.topic, j.state, j.applied_steps,
       extract(epoch FROM j.created_at)::float8,
       (SELECT jsonb_object_agg(a.symbol, a.value) FROM mesh.jobs_attributes a
        WHERE a.job_id = j.id AND a.dimension = '')::text,
       (SELECT jsonb_object_agg(a.symbol, a.value) FROM mesh.jobs_attributes a
        WHERE a.job_id = j.id AND a.dimension = '$signals')::text,
       coalesce(j.trace, '')
FROM mesh.jobs j
WHERE j.id = ANY(ARRAY(
    SELECT found.id
    FROM unnest(%(keys)s::text[]) AS wanted(key)
    CROSS JOIN LATERAL (
        SELECT id FROM mesh.jobs WHERE key = wanted.key AND app || '' = %(app)s LIMIT 1
    ) AS found))
  AND j.version = 'code';

-- name: workflow_history
-- The recorded calls of one generation, by position.
SELECT position, kind, name, shape, done, result, error,
       coalesce(extract(epoch FROM completed_at), 0)::float8
FROM mesh.workflow_steps
WHERE job_id = %(job_id)s AND gid = %(gid)s
ORDER BY position;

-- name: workflow_record_calls
INSERT INTO mesh.workflow_steps (job_id, gid, position, kind, name, shape, args, done, result,
                                error, created_at, completed_at)
SELECT r.job_id, r.gid, r.position, r.kind, r.name, r.shape, coalesce(r.args, '[]'), r.done,
       r.result, r.error, to_timestamp(r.made),
       CASE WHEN r.done THEN to_timestamp(greatest(r.at, r.made)) END
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
    job_id bigint, gid text, position int, kind text, name text, shape text, args jsonb,
    done boolean, result jsonb, error jsonb, at float8, made float8)
ON CONFLICT (job_id, gid, position) DO NOTHING;

-- name: workflow_record_outcomes
-- An outcome is written once: a position already done is left as it is. The rows are found
-- by one primary-key probe each and updated by their ctid, a plan that cannot drift: joined
-- freely, a generic plan cached while the table was small scanned it on every write.
WITH r AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
        job_id bigint, gid text, position int, result jsonb, error jsonb, at float8)
)
UPDATE mesh.workflow_steps AS s
SET done = true, result = r.result, error = r.error, completed_at = to_timestamp(r.at)
FROM r
WHERE s.ctid = ANY(ARRAY(
        SELECT found.ctid FROM r AS w CROSS JOIN LATERAL (
            SELECT ctid FROM mesh.workflow_steps
            WHERE job_id = w.job_id AND gid = w.gid AND position = w.position LIMIT 1
        ) AS found))
  AND s.job_id = r.job_id AND s.gid = r.gid AND s.position = r.position AND NOT s.done;

-- name: workflow_update_jobs
-- Steps applied, and the end of the ones that ended: done (result in the data), failed or
-- interrupted (error), or continued as a new generation (gid, args, a fresh start). The
-- jobs are found by primary key (`id = ANY`): a free join's cached plan scanned them all.
UPDATE mesh.jobs AS j
SET applied_steps = r.steps, state = r.status, gid = r.gid, error = r.error, updated_at = now(),
    status = mesh.semaphore(r.status, r.open),
    completed_at = CASE WHEN r.status <> 'running' THEN now() END,
    expires_at = CASE WHEN r.status <> 'running' THEN now() + interval '1 day' END
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
    id bigint, steps int, status text, open int, gid text, error jsonb)
WHERE j.id = ANY(ARRAY(SELECT (e->>'id')::bigint FROM jsonb_array_elements(%(rows)s::jsonb) e))
  AND j.id = r.id;

-- name: workflow_waiting
-- How many of an app's workflows wait for a signal (a condition not yet answered).
SELECT count(*) FROM mesh.workflow_steps s JOIN mesh.jobs j ON j.id = s.job_id
WHERE j.app = %(app)s AND j.state = 'running' AND s.kind = 'condition' AND NOT s.done;

-- name: workflow_generations_ended
-- Generations that continued as new: their calls leave durable_steps (a workflow that loops
-- for ever keeps one generation's calls, not all of them), a summary of each is kept in the
-- job's data dimension '$generations' (under its number, zero-padded so they sort), and the
-- summary of the generation `forget` goes: the last mesh.pg.workflow_rows.KEPT_GENERATIONS stay.
WITH r AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS r(job_id bigint, gid text, number int, forget int, summary jsonb)
), calls AS (
    DELETE FROM mesh.workflow_steps AS s USING r
    WHERE s.job_id = r.job_id AND s.gid = r.gid
), kept AS (
    INSERT INTO mesh.jobs_attributes (job_id, dimension, symbol, value)
    SELECT job_id, '$generations', lpad(number::text, 10, '0'), summary FROM r
    ON CONFLICT (job_id, dimension, symbol) DO UPDATE SET value = EXCLUDED.value
)
DELETE FROM mesh.jobs_attributes AS a USING r
WHERE a.job_id = r.job_id AND a.dimension = '$generations'
  AND a.symbol = lpad(r.forget::text, 10, '0');

-- name: withdraw_timers
-- Timers nothing waits for any more: the delayed wakes and condition timeouts of a workflow
-- generation (%(rows)s: key, gid, and the position, or null for all of them), not yet
-- claimed. One probe of stream_messages_timers per row (the lateral's OFFSET 0 keeps it
-- so whatever the statistics say); a timer claimed meanwhile runs and changes nothing.
DELETE FROM mesh.stream_messages AS m
WHERE m.id = ANY(ARRAY(
    SELECT t.id
    FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(key text, gid text, position text)
    CROSS JOIN LATERAL (
        SELECT s.id FROM mesh.stream_messages AS s
        WHERE s.app = %(app)s AND (s.payload->>'job_id') = r.key
          AND s.lease_owner IS NULL AND s.visible_at > s.enqueued_at
          AND s.payload->>'type' = 'resume' AND s.payload->>'gid' = r.gid
          AND (r.position IS NULL OR s.payload->>'activity_id' = r.position)
        OFFSET 0
    ) AS t))
  AND m.lease_owner IS NULL
RETURNING m.id;

-- name: workflow_describe_calls
-- The calls of a workflow's current generation that wait for their outcomes (describe()).
SELECT s.position, s.kind, s.name, s.args::text, extract(epoch FROM s.created_at)::float8
FROM mesh.jobs j
JOIN mesh.workflow_steps s ON s.job_id = j.id AND s.gid = j.gid
WHERE j.key = %(key)s AND j.app || '' = %(app)s AND NOT s.done
ORDER BY s.position;

-- name: workflow_describe_messages
-- The messages that are to answer a workflow's calls and are delayed (a retry, a timer:
-- found by the timers index) or held by a consumer (an attempt that runs: among the leased
-- messages, as many as run at once). A request waiting for its first claim is not read:
-- finding it would scan its stream.
SELECT m.stream, m.payload->>'type', m.payload->>'activity_id',
       coalesce(m.payload->>'job_gid', m.payload->>'gid', ''), m.attempts, m.max_attempts,
       extract(epoch FROM m.visible_at)::float8, m.lease_owner,
       extract(epoch FROM m.lease_expires_at)::float8, (m.payload->'last_failure')::text
FROM mesh.stream_messages m
WHERE m.app = %(app)s AND m.payload->>'job_id' = %(key)s
  AND m.lease_owner IS NULL AND m.visible_at > m.enqueued_at
UNION ALL
SELECT m.stream, m.payload->>'type', m.payload->>'activity_id',
       coalesce(m.payload->>'job_gid', m.payload->>'gid', ''), m.attempts, m.max_attempts,
       extract(epoch FROM m.visible_at)::float8, m.lease_owner,
       extract(epoch FROM m.lease_expires_at)::float8, (m.payload->'last_failure')::text
FROM mesh.stream_messages m
WHERE m.lease_owner IS NOT NULL AND m.app = %(app)s AND m.payload->>'job_id' = %(key)s;
