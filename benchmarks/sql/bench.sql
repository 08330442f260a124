-- The benchmarks' own SQL (benchmarks/queries.py loads it; the product never does): the
-- raw-SQL baseline of `mesh bench streams --baseline` (benchmarks/baseline.py), the same work
-- as a mesh worker issued by plain threads with no framework, and what the benchmarks read
-- about the server and ask of it.

-- name: baseline_claim
WITH c AS MATERIALIZED (
    SELECT id FROM mesh.stream_messages
    WHERE app = %(app)s AND stream = %(stream)s AND lease_owner IS NULL AND visible_at <= now()
    ORDER BY priority DESC, visible_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
UPDATE mesh.stream_messages m SET lease_owner = %(owner)s,
    lease_expires_at = now() + interval '30 seconds', attempts = m.attempts + 1
FROM c WHERE m.id = c.id RETURNING m.id, m.attempts, m.payload::text;

-- name: baseline_ack_and_respond
WITH acked AS (
    DELETE FROM mesh.stream_messages m USING unnest(%(ids)b::bigint[], %(attempts)b::int[]) a(id, attempt)
    WHERE m.id = a.id AND m.attempts = a.attempt AND m.lease_owner = %(owner)s RETURNING m.id)
INSERT INTO mesh.stream_messages (app, stream, priority, payload)
SELECT %(app)s, 'engine', 2, r.payload::jsonb
FROM unnest(%(ids)b::bigint[], %(responses)b::text[]) r(id, payload) JOIN acked USING (id);

-- name: baseline_ack
DELETE FROM mesh.stream_messages m USING unnest(%(ids)b::bigint[], %(attempts)b::int[]) a(id, attempt)
WHERE m.id = a.id AND m.attempts = a.attempt AND m.lease_owner = %(owner)s;

-- name: baseline_insert
INSERT INTO mesh.stream_messages (app, stream, priority, payload)
SELECT %(app)s, 'bench', 1, p::jsonb FROM unnest(%(payloads)b::text[]) p;

-- name: vacuum_streams
-- A measurement starts from a vacuumed table, so one run's dead rows stay its own.
VACUUM (ANALYZE) mesh.stream_messages;

-- name: bench_idle_activity
-- The database's transactions so far (the bench's own are a handful) and the connections to
-- it now, other than the one asking.
SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database
        WHERE datname = current_database()),
       (SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid());

-- name: bench_idle_room
-- The server's max_connections and the connections open now (all databases).
SELECT current_setting('max_connections')::int, (SELECT count(*) FROM pg_stat_activity);

-- name: backend_pid
SELECT pg_backend_pid();

-- name: bench_probe_quiet
-- The rest of this transaction fires no triggers: the probe's enqueue sends no NOTIFY (a
-- lost NOTIFY, for mesh bench idle). Needs a superuser.
SELECT set_config('session_replication_role', 'replica', true);

-- name: bench_probe_forget
DELETE FROM mesh.stream_messages WHERE app = %(app)s AND stream = %(stream)s;
