-- 0002: quorum (persisted throttles, oversized quorum payloads).

-- One row per throttle scope; "" means not targeted. Setting a scope deletes the narrower
-- scopes it covers (see queries.sql: set_throttle), so the most specific row always wins.
CREATE TABLE mesh.throttles (
    app text NOT NULL,
    topic text NOT NULL DEFAULT '',
    guid text NOT NULL DEFAULT '',
    throttle_ms integer NOT NULL CHECK (throttle_ms >= -1),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, topic, guid)
);

-- Quorum messages over the NOTIFY payload limit: the notification carries the id.
CREATE TABLE mesh.quorum_payloads (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app text NOT NULL,
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX quorum_payloads_created ON mesh.quorum_payloads (created_at);
