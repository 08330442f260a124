-- Schedules (mesh/pg/schedules.py, mesh/model/schedules.py).

-- name: schedule_create
INSERT INTO mesh.schedules (app, id, spec, next_tick, next_fire_at)
VALUES (%(app)s, %(id)s, %(spec)s::jsonb, %(next_tick)s, %(next_fire_at)s)
ON CONFLICT (app, id) DO NOTHING
RETURNING id;

-- name: schedule_replace
-- A new spec: its ticks start after now (the runs and counts stay).
UPDATE mesh.schedules
SET spec = %(spec)s::jsonb, next_tick = %(next_tick)s, next_fire_at = %(next_fire_at)s,
    buffered_tick = NULL, updated_at = now()
WHERE app = %(app)s AND id = %(id)s
RETURNING id;

-- name: schedule_get
SELECT id, spec::text, paused, next_tick, next_fire_at, buffered_tick, last_run, recent::text,
       fired, skipped, missed, created_at, updated_at
FROM mesh.schedules WHERE app = %(app)s AND id = %(id)s;

-- name: schedule_list
SELECT id, spec::text, paused, next_tick, next_fire_at, buffered_tick, last_run, recent::text,
       fired, skipped, missed, created_at, updated_at
FROM mesh.schedules WHERE app = %(app)s AND id > %(after)s
ORDER BY id LIMIT %(limit)s;

-- name: schedule_pause
UPDATE mesh.schedules SET paused = %(paused)s, updated_at = now()
WHERE app = %(app)s AND id = %(id)s
RETURNING id;

-- name: schedule_resume
-- Unpaused, its ticks go on from now: those that fell while it was paused are not run.
UPDATE mesh.schedules
SET paused = false, next_tick = %(next_tick)s, next_fire_at = %(next_fire_at)s,
    updated_at = now()
WHERE app = %(app)s AND id = %(id)s
RETURNING id;

-- name: schedule_delete
DELETE FROM mesh.schedules WHERE app = %(app)s AND id = %(id)s RETURNING id;

-- name: schedules_due
-- The leader's look: due schedules (and those holding a tick back for a running run),
-- locked; another leader's look at the same moment skips them.
SELECT id, spec::text, next_tick, buffered_tick, last_run, recent::text, now()
FROM mesh.schedules
WHERE app = %(app)s AND NOT paused
  AND (next_fire_at <= now() OR buffered_tick IS NOT NULL)
ORDER BY next_fire_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: schedule_advance
UPDATE mesh.schedules
SET next_tick = %(next_tick)s, next_fire_at = %(next_fire_at)s,
    buffered_tick = %(buffered_tick)s, last_run = %(last_run)s, recent = %(recent)s::jsonb,
    fired = fired + %(fired)s, skipped = skipped + %(skipped)s, missed = missed + %(missed)s,
    updated_at = now()
WHERE app = %(app)s AND id = %(id)s;

-- name: schedule_lock
SELECT recent::text FROM mesh.schedules WHERE app = %(app)s AND id = %(id)s FOR UPDATE;

-- name: schedule_backfilled
UPDATE mesh.schedules
SET recent = %(recent)s::jsonb, fired = fired + %(fired)s, updated_at = now()
WHERE app = %(app)s AND id = %(id)s;

-- name: schedules_next_fire
-- When the leader should look again.
SELECT min(next_fire_at) FROM mesh.schedules WHERE app = %(app)s AND NOT paused;

-- name: run_states
SELECT key, state FROM mesh.jobs WHERE key = ANY(%(keys)s::text[]) AND app || '' = %(app)s;

-- name: schedules_changed
-- Tell the leader (it looks at the schedules at once); sent with the change's commit.
SELECT pg_notify(%(channel)s, '');

-- name: database_now
-- The database's clock (schedules compute their ticks from it, not from a node's).
SELECT now();
