"""Reading jobs for people and tools: one job's state and timeline, lists, scrub, prune."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from mesh.model.ids import validate_job_id
from mesh.model.jobs import JobRecord, StepRecord
from mesh.pg.database import Connection
from mesh.pg.jobs import withdraw
from mesh.pg.queries import query


def get_job(conn: Connection, app: str, key: str, *, details: bool = True) -> JobRecord | None:
    validate_job_id(key)
    row = conn.execute(query("job_summary"), {"app": app, "key": key}).fetchone()
    if row is None:
        return None
    id_, *columns = row
    record = JobRecord(*columns)
    if not details:
        return record
    for dimension, name, value in conn.execute(query("job_attributes"), {"id": id_}):
        if dimension.startswith("$"):
            continue  # a code workflow's own books: waiting signals, ended generations
        decoded = msgspec.json.decode(value)
        activity, slash, part = name.partition("/")
        if slash:
            record.activities.setdefault(activity, {}).setdefault(dimension, {})[part] = decoded
        else:
            record.data[name] = decoded
    record.timeline = [StepRecord(*r) for r in conn.execute(query("job_timeline"), {"id": id_})]
    return record


def get_results(conn: Connection, app: str, keys: Sequence[str]) -> list[JobRecord | None]:
    """The jobs ``keys`` (None where unknown), each in one read with only its ``result``
    data field (a code workflow's return value), as a waiter for results needs them."""
    for key in keys:
        validate_job_id(key)
    records: list[JobRecord | None] = [None] * len(keys)
    for position, *columns, result in conn.execute(
        query("job_results"), {"app": app, "keys": list(keys)}
    ):
        record = JobRecord(*columns)
        if result is not None:
            record.data["result"] = msgspec.json.decode(result)
        records[position - 1] = record
    return records


def get_raw(conn: Connection, app: str, key: str) -> dict[str, Any] | None:
    """The job exactly as stored: ``{"job": row, "attributes": [rows], "steps": [rows]}``."""
    row = conn.execute(query("job_raw"), {"app": app, "key": key}).fetchone()
    if row is None:
        return None
    job, attributes, steps = (msgspec.json.decode(part) for part in row)
    return {"job": job, "attributes": attributes, "steps": steps}


@dataclass(frozen=True, slots=True)
class JobListing:
    key: str
    topic: str
    version: str
    status: str
    created_at: datetime
    completed_at: datetime | None


def list_jobs(
    conn: Connection, app: str, *, status: str | None = None, limit: int = 50
) -> list[JobListing]:
    rows = conn.execute(query("list_jobs"), {"app": app, "status": status, "limit": limit})
    return [JobListing(*row) for row in rows]


def job_counts(conn: Connection, app: str) -> dict[str, int]:
    return {status: count for status, count in conn.execute(query("job_counts"), {"app": app})}


def scrub(conn: Connection, app: str, key: str) -> bool:
    """Delete a finished job and its data now; False if it is running or unknown."""
    validate_job_id(key)
    with conn.transaction():
        row = conn.execute(query("scrub_job"), {"app": app, "key": key}).fetchone()
        if row is not None:  # anything it left queued would run for a job that is gone
            withdraw(conn, app, [{"key": key, "gid": row[1]}])
    return row is not None


def prune(conn: Connection, limit: int = 1000) -> tuple[int, int]:
    """Delete expired jobs (and expired buffered signals); returns both counts."""
    row = conn.execute(query("prune_jobs"), {"limit": limit}).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
