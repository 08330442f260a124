-- 0010: the elected poller finds delayed messages (retries, timers, sleeps) as they become
-- visible, and when the next one is due, through this index. It holds only messages that
-- were delayed and are not leased, so enqueues without a delay do not maintain it.
CREATE INDEX stream_messages_delayed
    ON mesh.stream_messages (app, visible_at)
    WHERE lease_owner IS NULL AND visible_at > enqueued_at;
