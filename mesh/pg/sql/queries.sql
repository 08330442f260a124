-- Named queries, loaded once by mesh.pg.queries. A block starts with "-- name: <name>".
-- Parameters are psycopg named placeholders; user identifiers only ever travel as values.
-- Batches travel as one text parameter per column, its values joined by newlines and split
-- here by mesh.lines(): adapting a Python list element by element costs ~20 us per 50
-- values in psycopg, the join ~3 us (psycopg's *text* array dumper, which also escapes every
-- element, costs ~1 ms per 50 JSON payloads). Only values that cannot contain a newline go
-- this way (numbers, validated names, compact JSON); error texts use binary arrays (%(x)b).

-- name: enqueue
-- Batched enqueue: one row per array element. The statement trigger sends one NOTIFY per
-- stream for the rows visible now.
INSERT INTO mesh.stream_messages (app, stream, priority, max_attempts, visible_at, payload)
SELECT m.app, m.stream, m.priority, m.max_attempts,
       now() + m.delay * interval '1 second', m.payload::jsonb
FROM unnest(mesh.lines(%(apps)s), mesh.lines(%(streams)s), mesh.lines(%(priorities)s)::smallint[],
            mesh.lines(%(max_attempts)s)::int[], mesh.lines(%(delays)s)::float8[],
            mesh.lines(%(payloads)s))
     AS m(app, stream, priority, max_attempts, delay, payload)
RETURNING id;

-- name: enqueue_leased
-- Eager dispatch: messages enqueued already leased to %(owner)s, for a consumer of that node
-- that lent its free slots to the enqueuing transaction (mesh.runtime.consumer.eager_dispatch). Each row is as
-- the claim query would have left it: attempts 1 is the fencing token; max_attempts 0 (no
-- retry policy of its own) takes the consumer's. Leased rows send no NOTIFY (the trigger).
-- Returns per message what claim returns, after its app and stream.
INSERT INTO mesh.stream_messages (app, stream, priority, max_attempts, payload, attempts,
                                  lease_owner, lease_expires_at)
SELECT m.app, m.stream, m.priority,
       CASE WHEN m.max_attempts > 0 THEN m.max_attempts ELSE m.default_attempts END,
       m.payload::jsonb, 1, %(owner)s, now() + m.lease * interval '1 second'
FROM unnest(mesh.lines(%(apps)s), mesh.lines(%(streams)s), mesh.lines(%(priorities)s)::smallint[],
            mesh.lines(%(max_attempts)s)::int[], mesh.lines(%(default_attempts)s)::int[],
            mesh.lines(%(leases)s)::float8[], mesh.lines(%(payloads)s))
     AS m(app, stream, priority, max_attempts, default_attempts, lease, payload)
RETURNING app, stream, id, attempts, attempts - refunds, max_attempts, false, payload::text;

-- name: claim
-- Lease up to %(limit)s visible messages of one stream, highest priority then oldest first.
-- The CTE is MATERIALIZED so the locking SELECT runs once; attempts + 1 is the fencing token.
-- Messages refunded twice run alone and are left to claim_alone. max_attempts 0: the message
-- carries no retry policy and the consumer's (%(max_attempts)s) applies from this claim on.
-- Returns per message: id, token, attempt (attempts spent, counting this claim), max
-- attempts, whether it runs alone (never, here), payload; and, when %(look)s, whether
-- messages that run alone wait in the stream (evaluated only then: it costs a probe).
WITH candidates AS MATERIALIZED (
    SELECT id FROM mesh.stream_messages
    WHERE app = %(app)s AND stream = %(stream)s
      AND lease_owner IS NULL AND visible_at <= now() AND refunds < 2
    ORDER BY priority DESC, visible_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE mesh.stream_messages AS m
SET lease_owner = %(owner)s,
    lease_expires_at = now() + %(lease)s * interval '1 second',
    attempts = m.attempts + 1,
    max_attempts = CASE WHEN m.max_attempts > 0 THEN m.max_attempts ELSE %(max_attempts)s END
FROM candidates
WHERE m.id = candidates.id
RETURNING m.id, m.attempts, m.attempts - m.refunds, m.max_attempts, false, m.payload::text,
          %(look)s AND EXISTS (SELECT FROM mesh.stream_messages AS w
                               WHERE w.app = %(app)s AND w.stream = %(stream)s
                                 AND w.refunds >= 2 AND w.lease_owner IS NULL
                                 AND w.visible_at <= now());

-- name: claim_alone
-- Lease one message that runs alone (refunded twice, see reap), for a consumer that holds
-- nothing and will claim nothing else until it is settled; when none waits, up to
-- %(others)s other messages instead (0: none), in the same statement (an idle consumer's
-- look costs one statement, not two). Same columns as claim.
WITH candidate AS MATERIALIZED (
    SELECT id FROM mesh.stream_messages
    WHERE app = %(app)s AND stream = %(stream)s
      AND refunds >= 2 AND lease_owner IS NULL AND visible_at <= now()
    ORDER BY priority DESC, visible_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), others AS MATERIALIZED (
    SELECT id FROM mesh.stream_messages
    WHERE %(others)s > 0 AND NOT EXISTS (SELECT FROM candidate)
      AND app = %(app)s AND stream = %(stream)s
      AND lease_owner IS NULL AND visible_at <= now() AND refunds < 2
    ORDER BY priority DESC, visible_at, id
    LIMIT %(others)s
    FOR UPDATE SKIP LOCKED
), chosen AS (
    SELECT id, true AS alone FROM candidate
    UNION ALL
    SELECT id, false FROM others
)
UPDATE mesh.stream_messages AS m
SET lease_owner = %(owner)s,
    lease_expires_at = now() + %(lease)s * interval '1 second',
    attempts = m.attempts + 1,
    max_attempts = CASE WHEN m.max_attempts > 0 THEN m.max_attempts ELSE %(max_attempts)s END
FROM chosen
WHERE m.id = chosen.id
RETURNING m.id, m.attempts, m.attempts - m.refunds, m.max_attempts, chosen.alone,
          m.payload::text, false;

-- name: extend_leases
-- Heartbeat: push out the leases this owner still holds at the given tokens; returns each id
-- still held and whether its lease was extended. It never waits for a row lock: a row locked
-- now is being settled (or reaped), so it is skipped, not extended, and still reported held
-- if the statement's snapshot says so (its settle or the next heartbeat tells). Waiting
-- would make it a deadlock partner of a settle that locks the same rows in another order.
-- The update checks owner and token again on the row as locked (which may be newer than the
-- snapshot): a message reaped and claimed again since, even by this owner, is not extended
-- under its old token. An activity's latest heartbeat details (JSON, or NULL) go into its
-- request as "heartbeat": an attempt whose node dies hands them to the next one.
WITH held AS (
    SELECT m.id, h.attempt, h.details FROM mesh.stream_messages AS m
    JOIN unnest(mesh.lines(%(ids)s)::bigint[], mesh.lines(%(attempts)s)::int[],
                %(details)b::text[]) AS h(id, attempt, details)
      ON m.id = h.id AND m.attempts = h.attempt
    WHERE m.lease_owner = %(owner)s
), extended AS (
    UPDATE mesh.stream_messages AS m
    SET lease_expires_at = now() + %(lease)s * interval '1 second',
        payload = CASE WHEN free.details IS NULL THEN m.payload
                       ELSE jsonb_set(m.payload, '{heartbeat}', free.details::jsonb) END
    FROM (SELECT s.id, held.attempt, held.details
          FROM mesh.stream_messages AS s JOIN held ON held.id = s.id
          FOR UPDATE OF s SKIP LOCKED) AS free
    WHERE m.id = free.id AND m.lease_owner = %(owner)s AND m.attempts = free.attempt
    RETURNING m.id
)
SELECT held.id, extended.id IS NOT NULL FROM held LEFT JOIN extended ON extended.id = held.id;

-- name: ack
-- Ack a batch, fenced by (id, attempt, owner), and enqueue the follow-ups of exactly the
-- messages that were acked, in one statement. A message whose lease was lost matches
-- nothing: no delete, no follow-up.
WITH acked AS (
    DELETE FROM mesh.stream_messages AS m
    USING unnest(mesh.lines(%(ids)s)::bigint[], mesh.lines(%(attempts)s)::int[]) AS a(id, attempt)
    WHERE m.id = a.id AND m.attempts = a.attempt AND m.lease_owner = %(owner)s
    RETURNING m.id
), sent AS (
    INSERT INTO mesh.stream_messages (app, stream, priority, max_attempts, visible_at, payload)
    SELECT f.app, f.stream, f.priority, f.max_attempts,
           now() + f.delay * interval '1 second', f.payload::jsonb
    FROM unnest(mesh.lines(%(f_causes)s)::bigint[], mesh.lines(%(f_apps)s),
                mesh.lines(%(f_streams)s), mesh.lines(%(f_priorities)s)::smallint[],
                mesh.lines(%(f_max_attempts)s)::int[], mesh.lines(%(f_delays)s)::float8[],
                mesh.lines(%(f_payloads)s))
         AS f(cause, app, stream, priority, max_attempts, delay, payload)
    JOIN acked ON acked.id = f.cause
)
SELECT id FROM acked;

-- name: dead_letter
-- Move failed messages to mesh.dead_letters with their last error, fenced like ack, and
-- enqueue their follow-ups (error responses) in the same statement.
WITH dead AS (
    DELETE FROM mesh.stream_messages AS m
    USING unnest(mesh.lines(%(ids)s)::bigint[], mesh.lines(%(attempts)s)::int[],
                 %(errors)b::text[])
          AS d(id, attempt, error)
    WHERE m.id = d.id AND m.attempts = d.attempt AND m.lease_owner = %(owner)s
    RETURNING m.*, d.error
), buried AS (
    INSERT INTO mesh.dead_letters (id, app, stream, priority, enqueued_at, attempts,
                                   max_attempts, last_owner, last_error, payload)
    SELECT id, app, stream, priority, enqueued_at, attempts - refunds, max_attempts,
           lease_owner, error, payload
    FROM dead
), sent AS (
    INSERT INTO mesh.stream_messages (app, stream, priority, max_attempts, visible_at, payload)
    SELECT f.app, f.stream, f.priority, f.max_attempts,
           now() + f.delay * interval '1 second', f.payload::jsonb
    FROM unnest(mesh.lines(%(f_causes)s)::bigint[], mesh.lines(%(f_apps)s),
                mesh.lines(%(f_streams)s), mesh.lines(%(f_priorities)s)::smallint[],
                mesh.lines(%(f_max_attempts)s)::int[], mesh.lines(%(f_delays)s)::float8[],
                mesh.lines(%(f_payloads)s))
         AS f(cause, app, stream, priority, max_attempts, delay, payload)
    JOIN dead ON dead.id = f.cause
)
SELECT id FROM dead;

-- name: retry
-- Release failed messages for a later attempt, fenced like settle. An activity's last
-- heartbeat details (JSON, or NULL) go into its request as "heartbeat" for the next attempt,
-- and the failed attempt as "last_failure" (for describe()).
UPDATE mesh.stream_messages AS m
SET lease_owner = NULL,
    lease_expires_at = NULL,
    visible_at = now() + r.delay * interval '1 second',
    last_error = r.error,
    payload = CASE WHEN r.details IS NULL THEN m.payload
                   ELSE jsonb_set(m.payload, '{heartbeat}', r.details::jsonb) END
              || CASE WHEN r.failure IS NULL THEN '{}'::jsonb
                      ELSE jsonb_build_object('last_failure', r.failure::jsonb) END
FROM unnest(mesh.lines(%(ids)s)::bigint[], mesh.lines(%(attempts)s)::int[],
            mesh.lines(%(delays)s)::float8[], %(errors)b::text[], %(details)b::text[],
            %(failures)b::text[])
     AS r(id, attempt, delay, error, details, failure)
WHERE m.id = r.id AND m.attempts = r.attempt AND m.lease_owner = %(owner)s
RETURNING m.id;

-- name: release
-- Give back leases this owner holds at the given tokens (a restarted consumer's: their
-- handlers are gone). The attempt stays spent.
UPDATE mesh.stream_messages AS m
SET lease_owner = NULL, lease_expires_at = NULL
FROM unnest(mesh.lines(%(ids)s)::bigint[], mesh.lines(%(attempts)s)::int[]) AS r(id, attempt)
WHERE m.id = r.id AND m.attempts = r.attempt AND m.lease_owner = %(owner)s
RETURNING m.id;

-- name: reap
-- Leases that expired: their holder died or stopped heartbeating. Everything such a holder
-- still holds is taken back at once. If it held several messages, any of them may have
-- killed it, so the claim is refunded (not counted as an attempt) unless the message had
-- already been refunded twice (then it ran alone: its claim counts). A message whose
-- attempts are spent is dead-lettered, the others go back to their stream (and wake it).
-- Returns how many were released and the dead ones, so the caller can report them.
WITH stale AS MATERIALIZED (
    SELECT DISTINCT lease_owner AS owner FROM mesh.stream_messages
    WHERE lease_owner IS NOT NULL AND lease_expires_at < now()
    LIMIT %(limit)s
), seen AS MATERIALIZED (
    SELECT id, lease_expires_at FROM mesh.stream_messages
    WHERE lease_owner IN (SELECT owner FROM stale)
), taken AS MATERIALIZED (
    -- Judged from the rows as locked, not as this statement's snapshot saw them: a row
    -- changed after the snapshot is locked at its newest version and these conditions are
    -- checked again on it. A lease extended meanwhile (its holder heartbeated: alive after
    -- all) no longer equals what was seen, and is left to its holder.
    SELECT m.id, m.lease_owner, m.attempts, m.refunds, m.max_attempts
    FROM mesh.stream_messages AS m JOIN seen ON seen.id = m.id
    WHERE m.lease_owner IN (SELECT owner FROM stale)
      AND m.lease_expires_at = seen.lease_expires_at
    FOR UPDATE OF m SKIP LOCKED
), holdings AS (
    SELECT t.id, t.lease_owner, t.attempts - t.refunds AS spent_attempts, t.refunds,
           coalesce(nullif(t.max_attempts, 0), 3) AS max_attempts,
           count(*) OVER (PARTITION BY t.lease_owner) AS held
    FROM taken AS t
), judged AS MATERIALIZED (
    SELECT h.*, h.held > 1 AND h.refunds < 2 AS refund,
           NOT (h.held > 1 AND h.refunds < 2) AND h.spent_attempts >= h.max_attempts AS spent
    FROM holdings AS h
), released AS (
    UPDATE mesh.stream_messages AS m
    SET lease_owner = NULL,
        lease_expires_at = NULL,
        refunds = m.refunds + j.refund::int,
        last_error = CASE WHEN j.refund
            THEN format('%%s stopped heartbeating while it held %%s messages: this claim did '
                        'not count (any of them may have been the cause)', j.lease_owner, j.held)
            ELSE format('lease of %%s expired at attempt %%s (the holder stopped heartbeating)',
                        j.lease_owner, j.spent_attempts)
            END
    FROM judged AS j
    WHERE m.id = j.id AND NOT j.spent
    RETURNING m.app, m.stream, m.refunds >= 2 AS alone
), dead AS (
    DELETE FROM mesh.stream_messages AS m
    USING judged AS j
    WHERE m.id = j.id AND j.spent
    RETURNING m.*
), buried AS (
    INSERT INTO mesh.dead_letters (id, app, stream, priority, enqueued_at, attempts,
                                   max_attempts, last_owner, last_error, payload)
    SELECT id, app, stream, priority, enqueued_at, attempts - refunds, max_attempts,
           lease_owner,
           format('claimed %%s times and never completed: the handler crashed or hung each '
                  'time (last holder %%s)', attempts - refunds, lease_owner),
           payload
    FROM dead
)
SELECT 'released' AS kind, count(*) AS n, NULL::bigint AS id, NULL::int AS attempts,
       NULL::text AS payload,
       -- 'alone': messages that run alone wait there (mesh.runtime.consumer.wakeups.ALONE_NOTICE)
       (SELECT count(pg_notify(mesh.stream_channel(s.app, s.stream) || '_w',
                               CASE WHEN s.alone THEN 'alone' ELSE 'wake' END))
        FROM (SELECT app, stream, bool_or(alone) AS alone FROM released
              GROUP BY app, stream) AS s) AS woken
FROM released
UNION ALL
SELECT 'dead', 1, id, attempts - refunds, payload::text, 0 FROM dead;

-- name: release_owner
-- Drain: give back every lease this owner still holds, in one statement, and wake the streams.
-- The node is stopping, not failing: the attempt is given back too (the owner never claims
-- again, so its old tokens cannot match a later claim of its own).
WITH released AS (
    UPDATE mesh.stream_messages
    SET lease_owner = NULL, lease_expires_at = NULL, attempts = attempts - 1
    WHERE lease_owner = %(owner)s
    RETURNING app, stream
)
SELECT count(*) AS n,
       (SELECT count(pg_notify(mesh.stream_channel(s.app, s.stream) || '_w', 'wake'))
        FROM (SELECT DISTINCT app, stream FROM released) AS s) AS woken
FROM released;

-- name: stream_stats
-- Depth, lag and lease counts of every stream (of one app, or all when %(app)s is NULL),
-- joined with dead-letter counts.
WITH live AS (
    SELECT app, stream,
           count(*) FILTER (WHERE lease_owner IS NULL AND visible_at <= now()) AS ready,
           count(*) FILTER (WHERE lease_owner IS NULL AND visible_at > now()) AS delayed,
           count(*) FILTER (WHERE lease_owner IS NOT NULL) AS leased,
           coalesce(extract(epoch FROM now() - min(visible_at)
                    FILTER (WHERE lease_owner IS NULL AND visible_at <= now())), 0) AS lag
    FROM mesh.stream_messages
    WHERE %(app)s::text IS NULL OR app = %(app)s
    GROUP BY app, stream
), dead AS (
    SELECT app, stream, count(*) AS dead_lettered
    FROM mesh.dead_letters
    WHERE %(app)s::text IS NULL OR app = %(app)s
    GROUP BY app, stream
)
SELECT coalesce(live.app, dead.app) AS app, coalesce(live.stream, dead.stream) AS stream,
       coalesce(ready, 0) AS ready, coalesce(delayed, 0) AS delayed,
       coalesce(leased, 0) AS leased, coalesce(lag, 0)::float8 AS lag_seconds,
       coalesce(dead_lettered, 0) AS dead_lettered
FROM live FULL JOIN dead ON live.app = dead.app AND live.stream = dead.stream
ORDER BY 1, 2;

-- name: schema_version
SELECT coalesce(max(version), 0) FROM mesh.schema_migrations;

-- name: record_migration
INSERT INTO mesh.schema_migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: purge_app
-- Remove every pending, leased and dead-lettered message of one app.
WITH pending AS (DELETE FROM mesh.stream_messages WHERE app = %(app)s RETURNING 1),
     dead AS (DELETE FROM mesh.dead_letters WHERE app = %(app)s RETURNING 1)
SELECT (SELECT count(*) FROM pending) + (SELECT count(*) FROM dead);

-- name: clear_throttles
-- Setting a throttle first clears the narrower scopes the new one covers (a whole-mesh
-- throttle clears every topic and guid throttle of the app, and so on).
DELETE FROM mesh.throttles
WHERE app = %(app)s
  AND (%(topic)s = '' OR topic = %(topic)s)
  AND (%(guid)s = '' OR guid = %(guid)s);

-- name: lock_throttles
-- One throttle change of an app at a time (held to the end of the transaction), taken in a
-- statement of its own before clear_throttles and insert_throttle, so that they see what the
-- change before committed: two changes of one scope both inserted their row (the second
-- failed on the primary key), and a wider one could miss a narrower row committed meanwhile.
SELECT pg_advisory_xact_lock(hashtextextended('mesh.throttles ' || %(app)s, 0));

-- name: insert_throttle
INSERT INTO mesh.throttles (app, topic, guid, throttle_ms, signature)
VALUES (%(app)s, %(topic)s, %(guid)s, %(throttle)s, %(signature)s)
ON CONFLICT (app, topic, guid) DO UPDATE
SET throttle_ms = EXCLUDED.throttle_ms, signature = EXCLUDED.signature, updated_at = now();

-- name: load_throttles
SELECT topic, guid, throttle_ms, signature FROM mesh.throttles WHERE app = %(app)s;

-- name: quorum_key
SELECT key_id FROM mesh.quorum_keys WHERE app = %(app)s;

-- name: register_quorum_key
INSERT INTO mesh.quorum_keys (app, key_id) VALUES (%(app)s, %(key_id)s)
ON CONFLICT (app) DO UPDATE SET key_id = EXCLUDED.key_id, updated_at = now()
WHERE mesh.quorum_keys.key_id IS DISTINCT FROM EXCLUDED.key_id;

-- name: store_quorum_payload
-- Returns the body as jsonb renders it: the digest a reference carries is of that text.
INSERT INTO mesh.quorum_payloads (app, body) VALUES (%(app)s, %(body)s::jsonb)
RETURNING id, body::text;

-- name: load_quorum_payload
-- The body only when it is within the size limit (measured here, so a huge row is never
-- sent to the node), and its size.
SELECT CASE WHEN octet_length(t.body) <= %(max_bytes)s THEN t.body END, octet_length(t.body)
FROM (SELECT body::text AS body FROM mesh.quorum_payloads
      WHERE id = %(id)s AND app = %(app)s) AS t;

-- name: prune_quorum_payloads
DELETE FROM mesh.quorum_payloads WHERE created_at < now() - interval '1 hour';

-- name: database_clock
SELECT extract(epoch FROM clock_timestamp())::float8;

-- name: oldest_transaction_age
-- Seconds the oldest open transaction on this database has been running. A long one holds
-- back vacuum, and a queue table then bloats and its claims slow down: alert on this.
SELECT coalesce(extract(epoch FROM max(now() - xact_start)), 0)::float8
FROM pg_stat_activity
WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid();

-- name: grown_tables
-- mesh tables holding at least %(rows)s live rows and more than twice what their statistics
-- know (reltuples is -1 before the first ANALYZE or VACUUM).
SELECT s.relname
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = 'mesh' AND s.n_live_tup >= %(rows)s
  AND s.n_live_tup > 2 * greatest(c.reltuples, 0)
ORDER BY s.relname;

-- name: list_dead_letters
SELECT id, stream, attempts, max_attempts, dead_at, last_owner, last_error, payload::text
FROM mesh.dead_letters
WHERE app = %(app)s AND (%(stream)s::text IS NULL OR stream = %(stream)s)
ORDER BY dead_at, id
LIMIT %(limit)s;

-- name: requeue_dead_letters
-- Move dead letters back to their streams as new messages with fresh attempts (the old id
-- stays in no table: fencing tokens of the old message can never match the new one).
WITH revived AS (
    DELETE FROM mesh.dead_letters
    WHERE app = %(app)s
      AND (%(stream)s::text IS NULL OR stream = %(stream)s)
      AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
    RETURNING id, app, stream, priority, max_attempts, payload
), inserted AS (
    INSERT INTO mesh.stream_messages (app, stream, priority, max_attempts, payload)
    SELECT app, stream, priority, max_attempts, payload FROM revived
)
SELECT id FROM revived;

-- name: deploy_version
-- Store a validated manifest, unless that version is stored (no row returned: read it with
-- deployed_manifest, a statement of its own). Reading it in this statement missed a version
-- that a concurrent deploy committed while this insert waited for it: the read used the
-- statement's snapshot, taken before that commit, and found nothing at all.
INSERT INTO mesh.app_versions (app, version, manifest)
VALUES (%(app)s, %(version)s, %(manifest)s::jsonb)
ON CONFLICT (app, version) DO NOTHING
RETURNING true;

-- name: deployed_manifest
SELECT manifest::text FROM mesh.app_versions WHERE app = %(app)s AND version = %(version)s;

-- name: activate_version
-- Make a deployed version the active one (one commit switches every engine).
WITH chosen AS (
    UPDATE mesh.app_versions SET activated_at = now()
    WHERE app = %(app)s AND version = %(version)s
    RETURNING app, version
)
INSERT INTO mesh.apps (app, active_version)
SELECT app, version FROM chosen
ON CONFLICT (app) DO UPDATE SET active_version = EXCLUDED.active_version, updated_at = now()
RETURNING active_version;

-- name: app_versions
SELECT v.version, v.deployed_at, v.activated_at, (a.active_version = v.version) AS active
FROM mesh.app_versions v LEFT JOIN mesh.apps a ON a.app = v.app
WHERE v.app = %(app)s
ORDER BY v.deployed_at;

-- name: active_manifest
SELECT v.version, v.manifest::text
FROM mesh.apps a JOIN mesh.app_versions v ON v.app = a.app AND v.version = a.active_version
WHERE a.app = %(app)s;

-- name: add_mesh_to_search_path
-- Idempotent: appends mesh to the database's default search_path unless already there. A
-- login that does not own the database sets it for itself in this database instead; other
-- logins then need `ALTER ROLE name IN DATABASE db SET search_path = "$user", public, mesh`
-- (the notice says so).
DO $$
DECLARE
    database_path text := coalesce(
        (SELECT substring(setting FROM 'search_path=(.*)')
         FROM pg_db_role_setting s, unnest(s.setconfig) AS setting
         WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND s.setrole = 0 AND setting LIKE 'search_path=%%'),
        '"$user", public');
    role_path text := coalesce(
        (SELECT substring(setting FROM 'search_path=(.*)')
         FROM pg_db_role_setting s, unnest(s.setconfig) AS setting
         WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND s.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
           AND setting LIKE 'search_path=%%'),
        database_path);
BEGIN
    IF database_path !~ '(^|[ ,])mesh($|[ ,])' THEN
        EXECUTE format('ALTER DATABASE %%I SET search_path = %%s, mesh',
                       current_database(), database_path);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    BEGIN
        IF role_path !~ '(^|[ ,])mesh($|[ ,])' THEN
            EXECUTE format('ALTER ROLE %%I IN DATABASE %%I SET search_path = %%s, mesh',
                           current_user, current_database(), role_path);
        END IF;
        RAISE NOTICE 'mesh: not the owner of database %%, so bare job table names resolve for '
                     'role %% only; for another login run: ALTER ROLE name IN DATABASE %% SET '
                     'search_path = "$user", public, mesh', current_database(), current_user,
                     current_database();
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'mesh: cannot set the search_path in database %%; run SET search_path = '
                     '"$user", public, mesh in each session, or name the tables mesh.jobs and '
                     'mesh.jobs_attributes', current_database();
    END;
END
$$;

-- name: take_claims
-- The engine's fenced ack, first in its transaction: deletes (and so locks) the claimed
-- messages still leased to this owner at their attempt. What it returns is handled; the rest
-- was lost to another consumer and is left alone.
DELETE FROM mesh.stream_messages AS m
USING unnest(mesh.lines(%(ids)s)::bigint[], mesh.lines(%(attempts)s)::int[]) AS a(id, attempt)
WHERE m.id = a.id AND m.attempts = a.attempt AND m.lease_owner = %(owner)s
RETURNING m.id;

-- name: active_version
SELECT active_version FROM mesh.apps WHERE app = %(app)s;

-- name: signal_versions
-- Where a signal may go: the active version first, then every other deployed one (jobs of
-- older versions may still wait on their hooks).
SELECT v.version, v.version = a.active_version
FROM mesh.apps a JOIN mesh.app_versions v ON v.app = a.app
WHERE a.app = %(app)s
ORDER BY v.version = a.active_version DESC, v.deployed_at DESC;

-- name: manifest_of_version
SELECT manifest::text FROM mesh.app_versions WHERE app = %(app)s AND version = %(version)s;

-- name: lock_jobs
-- The jobs a batch touches, locked in id order (so two engines never deadlock on them).
-- Shaped so the plan cannot change as jobs grow: one key index probe per key (the LIMIT
-- keeps the lateral join a nested loop), then the rows by primary key. A join the planner
-- may choose freely hashes every job of the app when its statistics lag (a new app). The
-- app is compared as `app || ''` so that no index leading with app can serve the probe:
-- before the table's first ANALYZE the planner rated `jobs_state (app, ...)` as good as the
-- (app, key) index, and each probe scanned the app's jobs (measured on a new database:
-- 1.3-2.7 million index tuples read in a bench's first seconds).
SELECT j.id, j.key, j.gid, j.version, j.topic, j.entity, j.state, j.status, j.threshold,
       j.cycles, (SELECT p.key FROM mesh.jobs p WHERE p.id = j.parent_id), j.parent_gid,
       j.parent_activity, j.parent_dimension, j.error::text,
       extract(epoch FROM j.created_at)::float8, j.persisted_at IS NOT NULL, j.trace
FROM mesh.jobs j
WHERE j.id = ANY(ARRAY(
    SELECT found.id
    FROM unnest(%(keys)b::text[]) AS wanted(key)
    CROSS JOIN LATERAL (
        SELECT id FROM mesh.jobs WHERE key = wanted.key AND app || '' = %(app)s LIMIT 1
    ) AS found))
ORDER BY j.id
FOR UPDATE OF j;

-- name: load_attributes
-- The data and activity parts of jobs (by key) in the given dimensions. The laterals' LIMIT
-- and OFFSET 0 keep them from being flattened, so the plan stays one index probe per key
-- whatever the statistics say (flattened, a generic plan cached while the tables were small
-- scanned every step of every job).
SELECT w.key, a.dimension, a.symbol, a.value::text
FROM unnest(%(keys)b::text[], %(dims)b::text[]) AS w(key, dimension)
CROSS JOIN LATERAL (
    SELECT id FROM mesh.jobs WHERE app = %(app)s AND key = w.key LIMIT 1) AS j
CROSS JOIN LATERAL (
    SELECT a.dimension, a.symbol, a.value FROM mesh.jobs_attributes a
    WHERE a.job_id = j.id AND a.dimension = w.dimension
    OFFSET 0) AS a;  -- not pulled up: a probe per key, never a scan of the whole table

-- name: load_steps
SELECT w.key, s.dimension, s.activity, s.leg, s.code
FROM unnest(%(keys)b::text[], %(dims)b::text[]) AS w(key, dimension)
CROSS JOIN LATERAL (
    SELECT id FROM mesh.jobs WHERE app = %(app)s AND key = w.key LIMIT 1) AS j
CROSS JOIN LATERAL (
    SELECT s.dimension, s.activity, s.leg, s.code FROM mesh.job_steps s
    WHERE s.job_id = j.id AND s.dimension = w.dimension
    OFFSET 0) AS s;

-- name: insert_jobs
-- New jobs with their data and steps in one statement (rows keyed by job key). A key that
-- is taken (by an older job or a concurrent transaction) inserts nothing at all; the
-- caller sees it missing from the result.
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
        app text, key text, gid text, version text, topic text, entity text, status text,
        semaphore int, threshold int, cycles int, parent_key text, parent_gid text,
        parent_activity text, parent_dimension text, error jsonb, expire float8,
        persisted boolean, trace text)
), inserted AS (
    INSERT INTO mesh.jobs (app, key, gid, version, topic, entity, state, status, threshold,
                           cycles, parent_id, parent_gid, parent_activity, parent_dimension,
                           error, completed_at, expires_at, persisted_at, trace)
    SELECT r.app, r.key, r.gid, r.version, r.topic, r.entity, r.status,
           mesh.semaphore(r.status, r.semaphore), r.threshold, r.cycles,
           (SELECT p.id FROM mesh.jobs p WHERE p.app = r.app AND p.key = r.parent_key),
           r.parent_gid, r.parent_activity, r.parent_dimension, r.error,
           CASE WHEN r.status NOT IN ('running', 'pending') THEN now() END,
           CASE WHEN r.status <> 'running' AND r.expire IS NOT NULL
                THEN now() + r.expire * interval '1 second' END,
           CASE WHEN r.persisted THEN now() END, nullif(r.trace, '')
    FROM r
    ON CONFLICT (app, key) DO NOTHING
    RETURNING id, key
), attributes AS (
    INSERT INTO mesh.jobs_attributes (job_id, dimension, symbol, value)
    SELECT inserted.id, x.dimension, x.field, x.value
    FROM jsonb_to_recordset(%(attributes)s::jsonb) AS x(key text, dimension text, field text, value jsonb)
    JOIN inserted ON inserted.key = x.key
), steps AS (
    INSERT INTO mesh.job_steps (job_id, activity, dimension, leg, code, at)
    SELECT inserted.id, x.activity, x.dimension, x.leg, x.code,
           statement_timestamp() + x.n * interval '1 microsecond'
    FROM ROWS FROM (jsonb_to_recordset(%(steps)s::jsonb)
                    AS (key text, activity text, dimension text, leg smallint, code int))
         WITH ORDINALITY AS x(key, activity, dimension, leg, code, n)
    JOIN inserted ON inserted.key = x.key
)
SELECT id, key FROM inserted;

-- name: update_jobs
UPDATE mesh.jobs AS j
SET state = r.status, status = mesh.semaphore(r.status, r.semaphore), threshold = r.threshold,
    cycles = r.cycles,
    error = r.error, updated_at = now(),
    completed_at = CASE WHEN r.status NOT IN ('running', 'pending')
                        THEN coalesce(j.completed_at, now()) END,
    expires_at = CASE WHEN r.status <> 'running' AND r.expire IS NOT NULL
                      THEN coalesce(j.completed_at, now()) + r.expire * interval '1 second' END,
    persisted_at = CASE WHEN r.persisted THEN coalesce(j.persisted_at, now()) END
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
         id bigint, status text, semaphore int, threshold int, cycles int, error jsonb,
         expire float8, persisted boolean)
WHERE j.id = r.id
  -- Lets the planner use the primary key (the function's row estimate is fixed at 100, so
  -- it would scan jobs).
  AND j.id = ANY(mesh.lines(%(ids)s)::bigint[]);

-- name: save_attributes
INSERT INTO mesh.jobs_attributes (job_id, dimension, symbol, value)
SELECT r.job_id, r.dimension, r.field, r.value
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(job_id bigint, dimension text, field text, value jsonb)
ON CONFLICT (job_id, dimension, symbol) DO UPDATE SET value = EXCLUDED.value;

-- name: save_steps
-- Steps of one statement are stamped a microsecond apart in the order the engine took them,
-- so the timeline (ordered by at) shows that order.
INSERT INTO mesh.job_steps (job_id, activity, dimension, leg, code, at)
SELECT r.job_id, r.activity, r.dimension, r.leg, r.code,
       statement_timestamp() + r.n * interval '1 microsecond'
FROM ROWS FROM (jsonb_to_recordset(%(rows)s::jsonb)
                AS (job_id bigint, activity text, dimension text, leg smallint, code int))
     WITH ORDINALITY AS r(job_id, activity, dimension, leg, code, n)
ON CONFLICT DO NOTHING;

-- name: lock_signal_keys
-- Transaction-scoped advisory locks on (app, topic, match key), taken in the given order.
-- Delivering a signal and registering the hook it is for both take it first, so one of the
-- two commits before the other looks: otherwise a signal could find no hook (and be
-- buffered) while the registration finds no buffered signal, and the job would wait forever.
SELECT count(pg_advisory_xact_lock(hashtextextended(k.key, 0)))
FROM (SELECT u.key FROM unnest(%(keys)b::text[]) WITH ORDINALITY AS u(key, n) ORDER BY u.n) AS k;

-- name: register_hooks
-- Register waiting hooks and take, for each, the oldest unexpired signal that arrived before
-- it (buffered); the caller turns those into resume messages in the same transaction.
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
        app text, topic text, match_key text, job_id bigint, gid text, activity text,
        dimension text)
), registered AS (
    INSERT INTO mesh.hook_signals (app, topic, match_key, job_id, gid, activity, dimension)
    SELECT app, topic, match_key, job_id, gid, activity, dimension FROM r
    ON CONFLICT DO NOTHING
), oldest AS (
    SELECT min(b.id) AS id
    FROM mesh.buffered_signals b JOIN r USING (app, topic, match_key)
    WHERE b.expires_at > now()
    GROUP BY b.app, b.topic, b.match_key
), taken AS (
    DELETE FROM mesh.buffered_signals b USING oldest WHERE b.id = oldest.id
    RETURNING b.app, b.topic, b.match_key, b.data, b.code
)
SELECT r.job_id, r.gid, r.activity, r.dimension, taken.data::text, taken.code
FROM taken JOIN r USING (app, topic, match_key);

-- name: unregister_hooks
DELETE FROM mesh.hook_signals h
USING jsonb_to_recordset(%(rows)s::jsonb) AS r(job_id bigint, activity text, dimension text)
WHERE h.job_id = r.job_id
  AND (r.activity IS NULL OR (h.activity = r.activity AND h.dimension = r.dimension));

-- name: find_hooks
SELECT j.key, h.gid, h.activity, h.dimension
FROM mesh.hook_signals h JOIN mesh.jobs j ON j.id = h.job_id
WHERE h.app = %(app)s AND h.topic = %(topic)s
  AND (%(match_key)s::text IS NULL OR h.match_key = %(match_key)s)
  AND j.state = 'running';

-- name: buffer_signal
INSERT INTO mesh.buffered_signals (app, topic, match_key, data, code, expires_at)
VALUES (%(app)s, %(topic)s, %(match_key)s, %(data)s::jsonb, %(code)s,
        now() + %(ttl)s * interval '1 second');

-- name: running_children
SELECT key FROM mesh.jobs WHERE parent_id = %(id)s AND state = 'running';

-- name: withdraw_job_messages
-- The queued messages of jobs that ended early (interrupted, failed, terminated, scrubbed):
-- their activity requests and timers, sleeps and answers not yet claimed, in the
-- transaction that ends them (running requests: withdraw_running_requests).
-- Scans the app's unclaimed messages (the claim index): an operator's action, not a hot path.
DELETE FROM mesh.stream_messages AS m
USING jsonb_to_recordset(%(rows)s::jsonb) AS r(key text, gid text)
WHERE m.app = %(app)s AND m.lease_owner IS NULL
  AND m.payload->>'type' IN ('request', 'resume')
  AND m.payload->>'job_id' = r.key
  AND coalesce(m.payload->>'job_gid', m.payload->>'gid') = r.gid
RETURNING m.id;

-- name: withdraw_running_requests
-- The activity requests of jobs that ended early that a worker is running now: deleted, so
-- the holder's next heartbeat finds its lease gone and cancels the activity (an asyncio
-- activity sees CancelledError), and its outcome, fenced, changes nothing. Through the
-- index of leased messages (few: what the workers hold).
DELETE FROM mesh.stream_messages AS m
USING jsonb_to_recordset(%(rows)s::jsonb) AS r(key text, gid text)
WHERE m.lease_owner IS NOT NULL AND m.lease_expires_at > '-infinity'
  AND m.app = %(app)s AND m.payload->>'type' = 'request'
  AND m.payload->>'job_id' = r.key
  AND coalesce(m.payload->>'job_gid', m.payload->>'gid') = r.gid
RETURNING m.id;

-- name: announce
SELECT count(pg_notify(n.channel, n.payload))
FROM unnest(%(channels)b::text[], %(payloads)b::text[]) AS n(channel, payload);

-- name: job_summary
-- Columns in JobRecord's order after the id (error comes back decoded: jsonb).
SELECT j.id, j.key, j.gid, j.version, j.topic, j.entity, j.state, j.status, j.error,
       j.created_at, j.updated_at, j.completed_at, j.expires_at, p.key, j.persisted_at
FROM mesh.jobs j LEFT JOIN mesh.jobs p ON p.id = j.parent_id
WHERE j.app = %(app)s AND j.key = %(key)s;

-- name: job_attributes
SELECT dimension, symbol, value::text FROM mesh.jobs_attributes
WHERE job_id = %(id)s ORDER BY dimension, symbol;

-- name: job_results
-- Jobs by key, each with its data field 'result' (a code workflow's return value): columns
-- in JobRecord's order after the key's position, then the result as JSON text (or NULL).
-- One key probe per key (the lateral's LIMIT keeps it a nested loop; `app || ''` as in
-- lock_jobs): a join the planner may choose freely scanned the app's jobs per key once its
-- cached generic plan was older than the app's growth (22 ms a read after 25 s, and
-- growing). The parent's key by primary key (a join to it was hashed over every job).
SELECT k.ord, j.key, j.gid, j.version, j.topic, j.entity, j.state, j.status, j.error,
       j.created_at, j.updated_at, j.completed_at, j.expires_at,
       (SELECT p.key FROM mesh.jobs p WHERE p.id = j.parent_id), j.persisted_at,
       (SELECT a.value::text FROM mesh.jobs_attributes a
        WHERE a.job_id = j.id AND a.dimension = '' AND a.symbol = 'result')
FROM unnest(%(keys)s::text[]) WITH ORDINALITY AS k(key, ord)
CROSS JOIN LATERAL (
    SELECT * FROM mesh.jobs WHERE key = k.key AND app || '' = %(app)s LIMIT 1
) AS j;

-- name: job_raw
-- A job exactly as stored: its row, its attribute rows and its step rows, as JSON.
SELECT to_jsonb(j)::text,
       coalesce((SELECT jsonb_agg(to_jsonb(a) - 'job_id' ORDER BY a.dimension, a.symbol)
                 FROM mesh.jobs_attributes a WHERE a.job_id = j.id), '[]')::text,
       coalesce((SELECT jsonb_agg(to_jsonb(s) - 'job_id'
                                  ORDER BY s.at, s.dimension, s.leg, s.activity)
                 FROM mesh.job_steps s WHERE s.job_id = j.id), '[]')::text
FROM mesh.jobs j
WHERE j.app = %(app)s AND j.key = %(key)s;

-- name: job_timeline
-- A YAML job's activity legs; a code workflow's durable calls as legs of activities named
-- 'position:name' (made: leg 1; its outcome: leg 2, code 200 or the error's code), its
-- generation as the dimension; and the generations it continued from, whose calls are gone,
-- as 'generation N (C calls)' from its start (leg 1) to its end (leg 2).
SELECT activity, dimension, leg, code, at FROM (
    SELECT activity, dimension, leg, code, at FROM mesh.job_steps WHERE job_id = %(id)s
    UNION ALL
    SELECT format('generation %%s (%%s calls)', g.value->>'generation', g.value->>'calls'),
           g.value->>'gid', leg.n, 200,
           to_timestamp((g.value->>CASE leg.n WHEN 1 THEN 'started_at' ELSE 'ended_at' END)
                        ::float8)
    FROM mesh.jobs_attributes g CROSS JOIN (VALUES (1), (2)) AS leg(n)
    WHERE g.job_id = %(id)s AND g.dimension = '$generations'
    UNION ALL
    SELECT s.position || ':' || s.name, s.gid, 1, 200, s.created_at
    FROM mesh.workflow_steps s WHERE s.job_id = %(id)s
    UNION ALL
    SELECT s.position || ':' || s.name, s.gid, 2, coalesce((s.error->>'code')::int, 200),
           s.completed_at
    FROM mesh.workflow_steps s WHERE s.job_id = %(id)s AND s.done
) AS t
ORDER BY at, dimension, leg, activity;

-- name: list_jobs
SELECT key, topic, version, state, created_at, completed_at FROM mesh.jobs
WHERE app = %(app)s AND (%(status)s::text IS NULL OR state = %(status)s)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: job_counts
SELECT state, count(*) FROM mesh.jobs WHERE app = %(app)s GROUP BY state;

-- name: scrub_job
DELETE FROM mesh.jobs WHERE app = %(app)s AND key = %(key)s AND state <> 'running'
RETURNING id, gid;

-- name: prune_jobs
-- Finished jobs past their expiry, oldest first, with their data and steps (cascade);
-- expired buffered signals go too.
WITH doomed AS (
    SELECT id FROM mesh.jobs WHERE expires_at < now()
    ORDER BY expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), jobs AS (
    DELETE FROM mesh.jobs j USING doomed WHERE j.id = doomed.id RETURNING 1
), signals AS (
    DELETE FROM mesh.buffered_signals WHERE expires_at < now() RETURNING 1
)
SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM signals);

-- name: schema_installed
-- Whether mesh was ever installed in this database (before the version table is read).
SELECT to_regclass('mesh.schema_migrations') IS NOT NULL;

-- name: lock_migrations
-- One migration at a time, whoever runs it (held to the end of the transaction).
SELECT pg_advisory_xact_lock(%(key)s);

-- name: notify
SELECT pg_notify(%(channel)s, %(payload)s);

-- name: try_lock
-- Take a seat's lock for this session, unless the session holds it already: session locks
-- count re-entries, and a seat taken twice (a try whose answer came too late, then another)
-- would outlive the one unlock that gives it up.
SELECT CASE WHEN EXISTS (SELECT FROM pg_locks
                         WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted
                           AND classid = %(space)s::bigint::oid
                           AND objid = (%(key)s::bigint & 4294967295)::oid AND objsubid = 2)
            THEN true
            ELSE pg_try_advisory_lock(%(space)s::int, %(key)s::int) END;

-- name: unlock
-- Give up a seat and say so on the election channel (followers try for it at once).
SELECT pg_advisory_unlock(%(space)s::int, %(key)s::int), pg_notify(%(channel)s, '');

-- name: due_streams
-- The elected poller's look at one app (mesh.pg.leadership): the streams to wake, being
-- (a) those where delayed messages (retries, timers, sleeps) became visible since %(since)s
-- (the previous look's clock; NULL: any time), found through stream_messages_delayed; and
-- (b) those whose next message (in claim order) has waited over %(stale)s seconds, found by
-- a skip scan of the claim index and one probe per stream; with whether messages that run alone
-- wait. Also: the database clock, and the seconds until the next delayed message is due.
WITH RECURSIVE streams AS (
    (SELECT stream FROM mesh.stream_messages
     WHERE app = %(app)s AND lease_owner IS NULL
     ORDER BY stream LIMIT 1)
    UNION ALL
    SELECT (SELECT m.stream FROM mesh.stream_messages AS m
            WHERE m.app = %(app)s AND m.lease_owner IS NULL AND m.stream > s.stream
            ORDER BY m.stream LIMIT 1)
    FROM streams AS s
    WHERE s.stream IS NOT NULL
), stale AS (
    SELECT s.stream FROM streams AS s
    CROSS JOIN LATERAL (  -- the first entry in claim order: one index probe, even when
        -- delayed messages abound (a stale ready message behind delayed ones of a higher
        -- priority is left to the safety poll)
        SELECT m.visible_at FROM mesh.stream_messages AS m
        WHERE m.app = %(app)s AND m.stream = s.stream AND m.lease_owner IS NULL
        ORDER BY m.priority DESC, m.visible_at, m.id
        LIMIT 1
    ) AS head
    WHERE s.stream IS NOT NULL
      AND head.visible_at < now() - %(stale)s * interval '1 second'
), newly AS (
    SELECT DISTINCT stream FROM mesh.stream_messages
    WHERE app = %(app)s AND lease_owner IS NULL AND visible_at > enqueued_at
      AND visible_at > coalesce(to_timestamp(%(since)s::float8), '-infinity')
      AND visible_at <= now()
), due AS (
    SELECT stream, bool_or(is_stale) AS is_stale
    FROM (SELECT stream, true AS is_stale FROM stale
          UNION ALL SELECT stream, false FROM newly) AS both_kinds
    GROUP BY stream
)
SELECT extract(epoch FROM now()),
       (SELECT extract(epoch FROM min(visible_at) - now()) FROM mesh.stream_messages
        WHERE app = %(app)s AND lease_owner IS NULL AND visible_at > enqueued_at
          AND visible_at > now()),
       coalesce((SELECT array_agg(ARRAY[d.stream, d.is_stale::text,
                                        EXISTS (SELECT FROM mesh.stream_messages AS w
                                                WHERE w.app = %(app)s AND w.stream = d.stream
                                                  AND w.refunds >= 2 AND w.lease_owner IS NULL
                                                  AND w.visible_at <= now())::text])
                 FROM due AS d), '{}');

-- name: wake_streams
-- The elected poller's wake-ups: one NOTIFY per stream on its wake channel (which every
-- consumer answers, see mesh.runtime.consumer.wakeups), in one transaction.
SELECT count(pg_notify(mesh.stream_channel(%(app)s, s.stream) || '_w', s.payload))
FROM unnest(mesh.lines(%(streams)s), mesh.lines(%(payloads)s)) AS s(stream, payload);

-- name: session_timeouts
-- The timeouts this session runs with, in milliseconds (0: none).
SELECT current_setting('statement_timeout'),
       current_setting('idle_in_transaction_session_timeout');

-- name: ping
-- A round trip (the listener's check of its connection: no NOTIFY, see mesh.pg.listener).
SELECT 1;

-- name: server_facts
-- What `mesh db status` and the benchmarks report about the server.
SELECT current_setting('server_version'), current_setting('synchronous_commit');


-- name: demo_forget_jobs
-- `mesh demo` forgets an earlier run's jobs (its order ids repeat).
DELETE FROM mesh.jobs WHERE app = %(app)s;

-- name: demo_seeds_query
-- HotMesh's README query, verbatim, as `mesh demo` prints and runs it (the schema is on the
-- search path): status is the semaphore, 0 for a finished order.
SELECT j.key AS job_key, j.status AS semaphore, j.entity AS workflow, a.symbol AS attribute,
       a.dimension AS dimension, a.value AS value, j.created_at, j.updated_at
FROM jobs j JOIN jobs_attributes a ON a.job_id = j.id
WHERE j.key = 'order-456' ORDER BY a.symbol, a.dimension;

-- name: demo_code_steps_query
-- The calls of one order workflow written as code, as `mesh demo` prints them.
SELECT s.position, s.kind, s.name, s.args, s.result FROM workflow_steps s JOIN jobs j ON j.id = s.job_id WHERE j.key = 'code-order-456' ORDER BY s.position;

-- name: consumers_seen
-- A node's presence: a row per stream it consumes, refreshed. Rows no node refreshed for
-- %(forget)s seconds (their node died) are deleted on the way, skipping any another node
-- deletes at the same moment.
WITH gone AS (
    DELETE FROM mesh.stream_consumers
    WHERE (app, stream, node) IN (
        SELECT app, stream, node FROM mesh.stream_consumers
        WHERE app = %(app)s AND seen_at < now() - %(forget)s * interval '1 second'
        FOR UPDATE SKIP LOCKED)
)
INSERT INTO mesh.stream_consumers (app, stream, node, seen_at)
SELECT %(app)s, stream, %(node)s, now() FROM unnest(%(streams)s::text[]) AS s(stream)
ON CONFLICT (app, stream, node) DO UPDATE SET seen_at = excluded.seen_at;

-- name: consumers_gone
-- A node that stops says so.
DELETE FROM mesh.stream_consumers WHERE app = %(app)s AND node = %(node)s;

-- name: consumers_of
-- The nodes that said within %(within)s seconds that they consume these streams.
SELECT stream, node, extract(epoch FROM seen_at)::float8
FROM mesh.stream_consumers
WHERE app = %(app)s AND stream = ANY(%(streams)s::text[])
  AND seen_at > now() - %(within)s * interval '1 second'
ORDER BY stream, node;
