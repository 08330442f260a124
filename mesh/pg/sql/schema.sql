-- The full current schema of mesh. A fresh database gets this file; an existing one gets the
-- numbered files in migrations/ above its recorded version. tests/test_migrations.py checks
-- that both paths produce the same catalog.

CREATE SCHEMA IF NOT EXISTS mesh;

CREATE TABLE mesh.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- The hot table of every stream of every app: only pending and leased messages live here.
-- Acked messages are deleted; dead letters move to mesh.dead_letters.
CREATE TABLE mesh.stream_messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app text NOT NULL,
    stream text NOT NULL,
    priority smallint NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    visible_at timestamptz NOT NULL DEFAULT now(),
    -- Claims so far. Incremented at claim time: it is the fencing token of the current lease,
    -- and a message whose handler kills its process still spends an attempt.
    attempts integer NOT NULL DEFAULT 0,
    -- 0: the message carries no retry policy; the consumer's applies from its first claim.
    max_attempts integer NOT NULL DEFAULT 3,
    lease_owner text,
    lease_expires_at timestamptz,
    last_error text,
    payload jsonb NOT NULL,
    -- Claims that did not count as attempts: the holder died (or stopped heartbeating) while
    -- it held other messages too, any of which may have been the cause. Attempts spent =
    -- attempts - refunds. At 2 the message is claimed only on its own, by a consumer that
    -- holds nothing else, and from then on its holder's death counts (see the reap query).
    refunds smallint NOT NULL DEFAULT 0,
    CONSTRAINT stream_messages_lease_whole
        CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
) WITH (
    fillfactor = 80,
    -- A queue table churns: every message is inserted, updated at claim and deleted at ack.
    -- Vacuum it after a fixed number of dead rows, not a fraction of a (tiny) live size.
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0.0,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0
);

-- Serves the claim: the column order matches its ORDER BY (tests/test_streams_explain.py).
CREATE INDEX stream_messages_claim
    ON mesh.stream_messages (app, stream, priority DESC, visible_at, id)
    WHERE lease_owner IS NULL;

-- Serves the claim of messages that run on their own.
CREATE INDEX stream_messages_alone
    ON mesh.stream_messages (app, stream, priority DESC, visible_at, id)
    WHERE refunds >= 2 AND lease_owner IS NULL;

-- Serves the elected poller: delayed messages (retries, timers, sleeps) as they come due.
CREATE INDEX stream_messages_delayed
    ON mesh.stream_messages (app, visible_at)
    WHERE lease_owner IS NULL AND visible_at > enqueued_at;

-- Serves the withdrawal of a workflow's timers by its id (0013).
CREATE INDEX stream_messages_timers
    ON mesh.stream_messages (app, (payload->>'job_id'))
    WHERE lease_owner IS NULL AND visible_at > enqueued_at;

-- Serves the reaper.
CREATE INDEX stream_messages_leases
    ON mesh.stream_messages (lease_expires_at)
    WHERE lease_owner IS NOT NULL;

-- Which live nodes consume which streams (presence rows, refreshed by each node; 0015).
CREATE TABLE mesh.stream_consumers (
    app text NOT NULL,
    stream text NOT NULL,
    node text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, stream, node)
);

-- Schedules: the leader fires their due ticks (0016; mesh/model/schedules.py).
CREATE TABLE mesh.schedules (
    app text NOT NULL,
    id text NOT NULL,
    spec jsonb NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    next_tick timestamptz NOT NULL,
    -- next_tick plus its jitter: when the leader looks at it.
    next_fire_at timestamptz NOT NULL,
    -- buffer_one: a tick held back while the previous run went on.
    buffered_tick timestamptz,
    last_run text,
    recent jsonb NOT NULL DEFAULT '[]',
    fired bigint NOT NULL DEFAULT 0,
    skipped bigint NOT NULL DEFAULT 0,
    missed bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, id)
);

CREATE INDEX schedules_due ON mesh.schedules (app, next_fire_at) WHERE NOT paused;

CREATE TABLE mesh.dead_letters (
    id bigint PRIMARY KEY,
    app text NOT NULL,
    stream text NOT NULL,
    priority smallint NOT NULL,
    enqueued_at timestamptz NOT NULL,
    dead_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    last_owner text,
    last_error text NOT NULL,
    payload jsonb NOT NULL
);

CREATE INDEX dead_letters_stream ON mesh.dead_letters (app, stream, dead_at);

-- Splits a newline-joined batch parameter into an array (see the head of queries.sql).
CREATE FUNCTION mesh.lines(joined text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN string_to_array(joined, E'\n');

-- HotMesh's semaphore as jobs.status shows it: the open activities ``open``, less
-- 1,000,000,000 once the job failed or was interrupted (HotMesh's interrupt rule), once.
CREATE FUNCTION mesh.semaphore(state text, open integer) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN state IN ('failed', 'interrupted') AND open > -100000000
                THEN open - 1000000000 ELSE open END;

-- Must match mesh.model.ids.stream_channel().
CREATE FUNCTION mesh.stream_channel(app text, stream text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 'mesh_s_' || left(md5(app || '/' || stream), 24);

-- One NOTIFY per stream per statement (Postgres folds repeats within a transaction), only for
-- rows visible now and not leased already (eager dispatch). Delayed rows are found by the
-- elected poller.
CREATE FUNCTION mesh.notify_stream_messages() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    target record;
BEGIN
    FOR target IN SELECT DISTINCT app, stream FROM new_rows
                  WHERE visible_at <= now() AND lease_owner IS NULL LOOP
        PERFORM pg_notify(mesh.stream_channel(target.app, target.stream), '');
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER stream_messages_notify
    AFTER INSERT ON mesh.stream_messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mesh.notify_stream_messages();

-- Persisted throttles: one row per scope; "" means not targeted. Setting a scope deletes the
-- narrower scopes it covers (queries.sql: set_throttle), so the most specific row always wins.
CREATE TABLE mesh.throttles (
    app text NOT NULL,
    topic text NOT NULL DEFAULT '',
    guid text NOT NULL DEFAULT '',
    throttle_ms integer NOT NULL CHECK (throttle_ms >= -1),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- HMAC of the row with the quorum secret; nodes with a secret ignore rows without it.
    signature text NOT NULL DEFAULT '',
    PRIMARY KEY (app, topic, guid)
);

-- The fingerprint of the secret an app's nodes sign with: commands without that secret are
-- refused before they write control state the nodes would ignore.
CREATE TABLE mesh.quorum_keys (
    app text PRIMARY KEY,
    key_id text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Quorum messages over the NOTIFY payload limit: the notification carries the id.
CREATE TABLE mesh.quorum_payloads (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app text NOT NULL,
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX quorum_payloads_created ON mesh.quorum_payloads (created_at);

-- Every deployed version of an app's manifest, validated before it was stored.
CREATE TABLE mesh.app_versions (
    app text NOT NULL,
    version text NOT NULL,
    manifest jsonb NOT NULL,
    deployed_at timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    PRIMARY KEY (app, version)
);

-- The version engines run for new jobs; switched in one commit by activation.
CREATE TABLE mesh.apps (
    app text PRIMARY KEY,
    active_version text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (app, active_version) REFERENCES mesh.app_versions (app, version)
);

-- One row per workflow run. key is the job id users see (unique per app); gid changes when a
-- key is reused after the old job was removed, so stale messages for the old run are refused.
-- The columns mean what HotMesh's do, so its SQL runs as written: status is the semaphore,
-- the job's open activities (0 when it is done; below -100,000,000 when it failed or was
-- interrupted: HotMesh's interrupt subtracts 1,000,000,000); the job completes when it falls
-- to threshold. state is the job's state in words (pending: reserved by pub, nothing run).
-- entity: a label to query by (a code workflow's name). persisted_at: when a running job
-- first answered (persist, persistent).
CREATE TABLE mesh.jobs (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    app text NOT NULL,
    key text NOT NULL,
    gid text NOT NULL,
    version text NOT NULL,
    topic text NOT NULL,
    entity text,
    state text NOT NULL DEFAULT 'running'
        CONSTRAINT jobs_state_check
        CHECK (state IN ('running', 'pending', 'done', 'failed', 'interrupted')),
    status integer NOT NULL,
    threshold integer NOT NULL DEFAULT 0,
    cycles integer NOT NULL DEFAULT 0,
    parent_id bigint REFERENCES mesh.jobs (id) ON DELETE SET NULL,
    parent_gid text,
    parent_activity text,
    parent_dimension text,
    error jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    expires_at timestamptz,
    persisted_at timestamptz,
    -- The trace context the job's spans join (a W3C traceparent), when telemetry is on.
    trace text,
    -- A workflow written as code: the steps applied so far (a node that holds its run in
    -- memory knows from it whether another node moved it on since). 0 for graphs.
    applied_steps integer NOT NULL DEFAULT 0,
    UNIQUE (app, key)
) WITH (fillfactor = 80);

CREATE INDEX jobs_key ON mesh.jobs (key);
CREATE INDEX jobs_state ON mesh.jobs (app, state, created_at);
CREATE INDEX jobs_expires ON mesh.jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX jobs_parent ON mesh.jobs (parent_id) WHERE parent_id IS NOT NULL;

-- A job's data: one row per job data field (dimension ''), and one per activity part
-- ('<activity>/input', '<activity>/output', '<activity>/hook') in the dimension the
-- activity ran in ('' until a cycle re-enters; then '/1', '/2', ... nested as '/1/3').
-- symbol is the name (HotMesh's column; its symbols are compressed codes, these are read
-- as they are).
CREATE TABLE mesh.jobs_attributes (
    job_id bigint NOT NULL REFERENCES mesh.jobs (id) ON DELETE CASCADE,
    dimension text NOT NULL DEFAULT '',
    symbol text NOT NULL,
    value jsonb NOT NULL,
    PRIMARY KEY (job_id, dimension, symbol)
) WITH (fillfactor = 80);

-- The activity timeline and the exactly-once ledger: leg 1 is an activity's entry, leg 2 its
-- completion. A duplicate delivery finds its row and does nothing.
CREATE TABLE mesh.job_steps (
    job_id bigint NOT NULL REFERENCES mesh.jobs (id) ON DELETE CASCADE,
    activity text NOT NULL,
    dimension text NOT NULL DEFAULT '',
    leg smallint NOT NULL CHECK (leg IN (1, 2)),
    code integer NOT NULL DEFAULT 200,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (job_id, dimension, activity, leg)
);

-- Hook activities waiting for a signal: topic plus the match key the hook rule resolved
-- (JSON text, so 1 and "1" differ as with ===).
CREATE TABLE mesh.hook_signals (
    app text NOT NULL,
    topic text NOT NULL,
    match_key text NOT NULL,
    job_id bigint NOT NULL REFERENCES mesh.jobs (id) ON DELETE CASCADE,
    gid text NOT NULL,
    activity text NOT NULL,
    dimension text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, topic, match_key, job_id, activity, dimension)
);

CREATE INDEX hook_signals_job ON mesh.hook_signals (job_id);

-- Signals that arrived before their hook registered: delivered when it does, or expired.
CREATE TABLE mesh.buffered_signals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app text NOT NULL,
    topic text NOT NULL,
    match_key text NOT NULL,
    data jsonb NOT NULL,
    code integer NOT NULL DEFAULT 200,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX buffered_signals_key ON mesh.buffered_signals (app, topic, match_key, id);
CREATE INDEX buffered_signals_expires ON mesh.buffered_signals (expires_at);

-- Workflows written as code: each durable call of a job's generation, by position (0007;
-- named durable_steps until 0014, which left a view of that name for a release).
CREATE TABLE mesh.workflow_steps (
    job_id bigint NOT NULL REFERENCES mesh.jobs (id) ON DELETE CASCADE,
    gid text NOT NULL,
    position integer NOT NULL CHECK (position >= 0),
    kind text NOT NULL,
    name text NOT NULL,
    shape text NOT NULL,
    args jsonb NOT NULL DEFAULT '[]',
    done boolean NOT NULL DEFAULT false,
    result jsonb,
    error jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (job_id, gid, position)
) WITH (fillfactor = 80);  -- room on each page for the outcome's update (HOT: no index entry)

CREATE VIEW mesh.durable_steps AS SELECT * FROM mesh.workflow_steps;
