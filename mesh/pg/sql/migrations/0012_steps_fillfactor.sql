-- 0012: a durable call's row is updated once, with its outcome; room on each page lets the
-- update stay on the page (a HOT update, with no new index entry). Pages written from now on.
ALTER TABLE mesh.durable_steps SET (fillfactor = 80);
