-- 0015: which live nodes consume which streams. Each node writes a row per stream it serves
-- when it starts and every few seconds after (its presence), and deletes them when it stops;
-- a row not refreshed for a while is a node that died. describe() shows a workflow's task
-- queue's consumers, and a client warns when it starts a workflow that no live node serves
-- ("no pollers").
CREATE TABLE mesh.stream_consumers (
    app text NOT NULL,
    stream text NOT NULL,
    node text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, stream, node)
);
