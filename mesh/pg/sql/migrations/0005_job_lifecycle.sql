-- 0005: pending jobs (reserved by `pub(..., pending=S)`: data written, nothing run, pruned
-- after S seconds unless interrupted first) and persisted jobs (`persist`, `persistent`:
-- the job answered its waiters and its parent at persisted_at, and stays open).
ALTER TABLE mesh.jobs ADD COLUMN persisted_at timestamptz;
ALTER TABLE mesh.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE mesh.jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('running', 'pending', 'done', 'failed', 'interrupted'));
