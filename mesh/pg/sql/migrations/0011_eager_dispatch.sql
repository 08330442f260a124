-- 0011: eager dispatch (mesh.runtime.eager). A transaction may enqueue messages already leased
-- to its own node, whose consumer takes them without a claim; such rows need no NOTIFY.
CREATE OR REPLACE FUNCTION mesh.notify_stream_messages() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    target record;
BEGIN
    FOR target IN SELECT DISTINCT app, stream FROM new_rows
                  WHERE visible_at <= now() AND lease_owner IS NULL LOOP
        PERFORM pg_notify(mesh.stream_channel(target.app, target.stream), '');
    END LOOP;
    RETURN NULL;
END
$$;
