-- 0013: a workflow's timers (delayed wakes and condition timeouts) are found by its id, so
-- that they are withdrawn when nothing waits for them any more (a condition answered by a
-- signal, a workflow that ended or continued as new) instead of staying queued until they
-- come due. Only delayed, unclaimed messages are in it: enqueues without a delay do not
-- maintain it.
CREATE INDEX stream_messages_timers
    ON mesh.stream_messages (app, (payload->>'job_id'))
    WHERE lease_owner IS NULL AND visible_at > enqueued_at;
