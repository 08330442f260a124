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

from benchmarks.db import query
from mesh.model.ids import new_guid
from mesh.pg.database import connect_sync


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
        with connect_sync(dsn, "mesh-bench-raw") as conn:
            for offset in range(0, total, batch):
                conn.execute(
                    query("baseline_insert"),
                    {"app": app, "payloads": payloads[offset : offset + batch]},
                )

    def work() -> None:
        nonlocal round_trips
        owner = new_guid()
        with connect_sync(dsn, "mesh-bench-raw") as conn:
            while not finished.is_set():
                rows = conn.execute(
                    query("baseline_claim"),
                    {"app": app, "stream": "bench", "limit": batch, "owner": owner},
                ).fetchall()
                with lock:
                    round_trips += 1
                if not rows:
                    time.sleep(0.001)
                    continue
                conn.execute(
                    query("baseline_ack_and_respond"),
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
        with connect_sync(dsn, "mesh-bench-raw") as conn:
            while not finished.is_set():
                rows = conn.execute(
                    query("baseline_claim"),
                    {"app": app, "stream": "engine", "limit": batch * 4, "owner": owner},
                ).fetchall()
                if not rows:
                    time.sleep(0.001)
                    continue
                conn.execute(
                    query("baseline_ack"),
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
