-- 0009: the trace context a job's spans join (a W3C traceparent), when telemetry is on.
ALTER TABLE mesh.jobs ADD COLUMN trace text;
