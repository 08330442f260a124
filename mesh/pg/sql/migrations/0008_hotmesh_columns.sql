-- 0008: the job tables' columns mean what HotMesh's do, so its SQL runs as written:
-- jobs.status is the semaphore (open activities; 0 when done; below -100,000,000 when
-- failed or interrupted), jobs.state the job's state in words, jobs_attributes.symbol the
-- attribute's name. A code workflow's entity is its name.
ALTER TABLE mesh.jobs RENAME COLUMN status TO state;
ALTER TABLE mesh.jobs RENAME COLUMN semaphore TO status;
ALTER TABLE mesh.jobs RENAME CONSTRAINT jobs_status_check TO jobs_state_check;
ALTER INDEX mesh.jobs_status RENAME TO jobs_state;
ALTER TABLE mesh.jobs_attributes RENAME COLUMN field TO symbol;
UPDATE mesh.jobs SET status = status - 1000000000
WHERE state IN ('failed', 'interrupted') AND status > -100000000;  -- as mesh.semaphore()
UPDATE mesh.jobs SET entity = topic WHERE version = 'code' AND entity IS NULL;

-- HotMesh's semaphore as jobs.status shows it: the open activities ``open``, less
-- 1,000,000,000 once the job failed or was interrupted (HotMesh's interrupt rule), once.
CREATE FUNCTION mesh.semaphore(state text, open integer) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN state IN ('failed', 'interrupted') AND open > -100000000
                THEN open - 1000000000 ELSE open END;
