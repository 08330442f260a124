"""Reading jobs for people and tools: one job's state and timeline, lists, scrub, prune."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from mesh.errors import MeshError
from mesh.model.ids import validate_job_id
from mesh.pg.database import Connection
from mesh.pg.queries import query

FINAL = frozenset({"done", "failed", "interrupted"})


@dataclass(frozen=True, slots=True)
class StepRecord:
    activity: str
    dimension: str
    leg: int
    code: int
    at: datetime


@dataclass(slots=True)
class JobRecord:
    key: str
    gid: str
    version: str
    topic: str
    entity: str | None
    status: str
    semaphore: int
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    expires_at: datetime | None
    parent: str | None
    persisted_at: datetime | None = None
    """When the job answered while staying open (``persist``, ``persistent``)."""
    data: dict[str, Any] = field(default_factory=dict)
    activities: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """activity -> dimension -> part (input, output, hook) -> data."""
    timeline: list[StepRecord] = field(default_factory=list)

    @property
    def persisted(self) -> bool:
        """Running, having answered its waiters (``persist``, ``persistent``)."""
        return self.status == "running" and self.persisted_at is not None

    @property
    def answered(self) -> bool:
        """What a waiter waits for: the job finished, or persisted."""
        return self.status in FINAL or self.persisted

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what ``mesh job ID --json`` prints."""
        return {
            "job_id": self.key,
            "gid": self.gid,
            "app_version": self.version,
            "topic": self.topic,
            "entity": self.entity,
            "status": self.status,
            "semaphore": self.semaphore,
            "error": self.error,
            "parent": self.parent,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "persisted_at": self.persisted_at.isoformat() if self.persisted_at else None,
            "data": self.data,
            "activities": self.activities,
            "timeline": [
                {
                    "activity": s.activity,
                    "dimension": s.dimension,
                    "leg": s.leg,
                    "code": s.code,
                    "at": s.at.isoformat(),
                }
                for s in self.timeline
            ],
        }


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
        decoded = msgspec.json.decode(value)
        activity, slash, part = name.partition("/")
        if slash:
            record.activities.setdefault(activity, {}).setdefault(dimension, {})[part] = decoded
        else:
            record.data[name] = decoded
    record.timeline = [StepRecord(*r) for r in conn.execute(query("job_timeline"), {"id": id_})]
    return record


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
    return conn.execute(query("scrub_job"), {"app": app, "key": key}).fetchone() is not None


def prune(conn: Connection, limit: int = 1000) -> tuple[int, int]:
    """Delete expired jobs (and expired buffered signals); returns both counts."""
    row = conn.execute(query("prune_jobs"), {"limit": limit}).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


class JobFailed(MeshError):
    """A job that ended ``failed`` or ``interrupted``; ``job`` holds its state and error."""

    def __init__(self, job: JobRecord) -> None:
        self.job = job
        error = job.error or {}
        super().__init__(
            f"job {job.key!r} ended {job.status}: {error.get('message', 'no error recorded')}"
        )


class JobTimeout(MeshError):
    """A job still running when a wait's time ran out (it goes on; wait again or interrupt)."""
