-- 0014: one vocabulary, graphs (YAML) and workflows (code). A workflow's recorded calls are
-- mesh.workflow_steps; mesh.durable_steps stays for a release as a view of it, for the SQL
-- people wrote against the old name. A workflow's count of applied steps gets a column of
-- its own (it was kept in jobs.cycles, a graph's count of cycles).
ALTER TABLE mesh.durable_steps RENAME TO workflow_steps;
ALTER INDEX mesh.durable_steps_pkey RENAME TO workflow_steps_pkey;
ALTER TABLE mesh.workflow_steps RENAME CONSTRAINT durable_steps_position_check
    TO workflow_steps_position_check;
ALTER TABLE mesh.workflow_steps RENAME CONSTRAINT durable_steps_job_id_fkey
    TO workflow_steps_job_id_fkey;
CREATE VIEW mesh.durable_steps AS SELECT * FROM mesh.workflow_steps;

ALTER TABLE mesh.jobs ADD COLUMN applied_steps integer NOT NULL DEFAULT 0;
UPDATE mesh.jobs SET applied_steps = cycles, cycles = 0 WHERE version = 'code' AND cycles <> 0;
