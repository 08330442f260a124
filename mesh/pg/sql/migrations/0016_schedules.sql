-- 0016: schedules. The elected leader starts each due tick's run and advances the schedule
-- in one transaction; the run's id is derived from the schedule and the tick, so a tick runs
-- once whoever fires it (mesh/model/schedules.py).
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
