-- 0006: poison isolation, signed control state.
--
-- refunds: claims of a message that did not count as attempts, because its holder died (or
-- stopped heartbeating) while holding other messages too, any of which may have been the
-- cause. Attempts spent = attempts - refunds. At 2 the message is claimed only on its own,
-- by a consumer that holds nothing else, and from then on its holder's death counts.
ALTER TABLE mesh.stream_messages ADD COLUMN refunds smallint NOT NULL DEFAULT 0;
CREATE INDEX stream_messages_alone
    ON mesh.stream_messages (app, stream, priority DESC, visible_at, id)
    WHERE refunds >= 2 AND lease_owner IS NULL;

-- A throttle row counts only when its signature is the quorum secret's (nodes with a secret
-- ignore others); '' when written by a mesh without a secret.
ALTER TABLE mesh.throttles ADD COLUMN signature text NOT NULL DEFAULT '';

-- The fingerprint of the secret an app's nodes sign with: commands without that secret are
-- refused before they write control state the nodes would ignore.
CREATE TABLE mesh.quorum_keys (
    app text PRIMARY KEY,
    key_id text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
