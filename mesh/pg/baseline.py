"""The raw-SQL baseline for ``mesh bench streams --baseline``: the physical limit.

Plain threads with one psycopg connection each and no framework: a producer inserts request
batches; ``workers`` threads loop claim-a-batch (with a lease) then, in one statement, ack the
batch and insert one response per request; a collector thread claims and deletes responses.
The same work the mesh does, minus trio, actors, msgspec and the pool.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from mesh.model.ids import new_guid
from mesh.pg.database import Connection

_CLAIM = """
WITH c AS MATERIALIZED (
    SELECT id FROM mesh.stream_messages
    WHERE app = %(app)s AND stream = %(stream)s AND lease_owner IS NULL AND visible_at <= now()
    ORDER BY priority DESC, visible_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
UPDATE mesh.stream_messages m SET lease_owner = %(owner)s,
    lease_expires_at = now() + interval '30 seconds', attempts = m.attempts + 1
FROM c WHERE m.id = c.id RETURNING m.id, m.attempts, m.payload::text
"""
_ACK_AND_RESPOND = """
WITH acked AS (
    DELETE FROM mesh.stream_messages m USING unnest(%(ids)b::bigint[], %(attempts)b::int[]) a(id, attempt)
    WHERE m.id = a.id AND m.attempts = a.attempt AND m.lease_owner = %(owner)s RETURNING m.id)
INSERT INTO mesh.stream_messages (app, stream, priority, payload)
SELECT %(app)s, 'engine', 2, r.payload::jsonb
FROM unnest(%(ids)b::bigint[], %(responses)b::text[]) r(id, payload) JOIN acked USING (id)
"""
_ACK = """
DELETE FROM mesh.stream_messages m USING unnest(%(ids)b::bigint[], %(attempts)b::int[]) a(id, attempt)
WHERE m.id = a.id AND m.attempts = a.attempt AND m.lease_owner = %(owner)s
"""
_INSERT = """
INSERT INTO mesh.stream_messages (app, stream, priority, payload)
SELECT %(app)s, 'bench', 1, p::jsonb FROM unnest(%(payloads)b::text[]) p
"""


def server_facts(conn: Connection) -> dict[str, Any]:
    row = conn.execute(
        "SELECT current_setting('server_version'), current_setting('synchronous_commit')"
    ).fetchone()
    assert row is not None
    return {"postgres": row[0], "synchronous_commit": row[1]}


def vacuum_streams(conn: Connection) -> None:
    """Start a measurement from a vacuumed table, so one run's dead rows stay its own."""
    conn.execute("VACUUM (ANALYZE) mesh.stream_messages")


def run_raw_sql_baseline(
    dsn: str, *, payloads: list[str], batch: int, workers: int
) -> dict[str, Any]:
    app = f"raw-{new_guid()[:8].lower()}"
    total = len(payloads)
    collected = 0
    round_trips = 0
    lock = threading.Lock()
    finished = threading.Event()
    errors: list[BaseException] = []

    def guarded(fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except BaseException as error:  # report, and stop the others
                errors.append(error)
                finished.set()

        return run

    def produce() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for offset in range(0, total, batch):
                conn.execute(_INSERT, {"app": app, "payloads": payloads[offset : offset + batch]})

    def work() -> None:
        nonlocal round_trips
        owner = new_guid()
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not finished.is_set():
                rows = conn.execute(
                    _CLAIM, {"app": app, "stream": "bench", "limit": batch, "owner": owner}
                ).fetchall()
                with lock:
                    round_trips += 1
                if not rows:
                    time.sleep(0.001)
                    continue
                conn.execute(
                    _ACK_AND_RESPOND,
                    {
                        "app": app,
                        "owner": owner,
                        "ids": [r[0] for r in rows],
                        "attempts": [r[1] for r in rows],
                        "responses": [r[2] for r in rows],
                    },
                )

    def collect() -> None:
        nonlocal collected
        owner = new_guid()
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not finished.is_set():
                rows = conn.execute(
                    _CLAIM, {"app": app, "stream": "engine", "limit": batch * 4, "owner": owner}
                ).fetchall()
                if not rows:
                    time.sleep(0.001)
                    continue
                conn.execute(
                    _ACK,
                    {"owner": owner, "ids": [r[0] for r in rows], "attempts": [r[1] for r in rows]},
                )
                with lock:
                    collected += len(rows)
                    if collected >= total:
                        finished.set()

    threads = [threading.Thread(target=guarded(produce)), threading.Thread(target=guarded(collect))]
    threads += [threading.Thread(target=guarded(work)) for _ in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return {
        "messages": total,
        "seconds": round(seconds, 3),
        "throughput_per_s": round(total / seconds, 1),
        "worker_claims": round_trips,
        "method": f"{workers} threads x (claim {batch} with lease; ack + insert responses in one statement), 1 producer, 1 collector; sync psycopg, no framework",
    }
