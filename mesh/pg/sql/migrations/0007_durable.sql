-- 0007: workflows written as code. A code workflow is a job in mesh.jobs (version 'code',
-- topic = the workflow's name); each durable call it makes is a row here, keyed by the job,
-- its generation (gid: a continued workflow starts a new one) and the call's position. The
-- outcome is written once (done flips from false to true in one statement that requires
-- false), so a redelivered outcome changes nothing.
CREATE TABLE mesh.durable_steps (
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
);
