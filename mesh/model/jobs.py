"""What a job looks like to its readers: its record (state, data, timeline) and the events
its waiters and subscribers hear. Filled by :mod:`mesh.pg.job_queries` and the job channel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from mesh.errors import InvalidPayload, JobFailed
from mesh.model.limits import check_json_text


class WorkflowStatus(StrEnum):
    """Where a job (a workflow or a graph's job) stands; each compares equal to its string
    (``WorkflowStatus.DONE == "done"``)."""

    RUNNING = "running"
    PENDING = "pending"
    """Reserved by a pending start, not yet running (graphs)."""
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """Terminated, or cancelled and ended without a result."""


FINAL = frozenset({WorkflowStatus.DONE, WorkflowStatus.FAILED, WorkflowStatus.INTERRUPTED})
EXPORT_PARTS = ("data", "state", "status", "timeline")
"""What an export may hold (HotMesh's ``export`` options)."""


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

    def failure(self) -> JobFailed:
        """The error a waiter raises for this job, which ended failed or interrupted."""
        return JobFailed(self.key, self.status, self.error, job=self)

    @property
    def answered(self) -> bool:
        """What a waiter waits for: the job finished, or persisted."""
        return self.status in FINAL or self.persisted

    def state(self, app: str) -> dict[str, Any]:
        """``{"metadata": {...}, "data": {...}}``: HotMesh's job state shape."""
        return {
            "metadata": {
                "jid": self.key,
                "gid": self.gid,
                "app": app,
                "vrs": self.version,
                "tpc": self.topic,
                "status": self.status,
                "js": self.semaphore,
                "err": self.error,
                "jc": self.created_at.isoformat(),
                "ju": self.updated_at.isoformat(),
            },
            "data": self.data,
        }

    def export(self, app: str, allow: Sequence[str] | None = None) -> dict[str, Any]:
        """HotMesh's ``export``: the parts ``allow`` names (``data``, ``state``, ``status``,
        ``timeline``; all of them by default). :class:`InvalidPayload` for another name."""
        parts = list(EXPORT_PARTS if allow is None else allow)
        unknown = [part for part in parts if part not in EXPORT_PARTS]
        if unknown:
            raise InvalidPayload(
                f"cannot export {', '.join(map(repr, unknown))}: choose among "
                f"{', '.join(EXPORT_PARTS)}"
            )
        whole = self.as_dict()
        views = {"data": whole["data"], "status": self.status, "timeline": whole["timeline"]}
        return {part: self.state(app) if part == "state" else views[part] for part in parts}

    def query_state(self, fields: list[str]) -> dict[str, Any]:
        """Chosen fields: job data names, or ``activity/part`` (``checkInventory/output``,
        from the activity's latest dimension)."""
        found: dict[str, Any] = {}
        for name in fields:
            activity, slash, part = name.partition("/")
            if slash:
                dims = self.activities.get(activity, {})
                if dims:
                    found[name] = dims[max(dims, key=len)].get(part)
            elif name in self.data:
                found[name] = self.data[name]
        return found

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


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A job reached ``status``, heard on the app's job channel."""

    topic: str
    job_id: str
    status: str
    """done, failed, interrupted; emitted (an interim result); persisted (answered, and still
    running: ``persist``, ``persistent``)."""


class _JobNotice(msgspec.Struct, frozen=True):
    topic: str
    job_id: str
    status: str


_JOB_NOTICES = msgspec.json.Decoder(list[_JobNotice] | _JobNotice)


def job_events(payload: str) -> list[JobEvent]:
    """The job events a job-channel notification carries (a JSON array of ``{topic, job_id,
    status}``, or one object from older nodes); :class:`InvalidPayload` for anything else,
    nested too deep included. Any login can NOTIFY: an event only says what to re-read."""
    try:
        check_json_text(payload, "a job notification")
        decoded = _JOB_NOTICES.decode(payload)
    except (msgspec.DecodeError, RecursionError) as error:
        raise InvalidPayload(f"not a job notification: {error}") from None
    notices = decoded if isinstance(decoded, list) else [decoded]
    return [JobEvent(n.topic, n.job_id, n.status) for n in notices]
