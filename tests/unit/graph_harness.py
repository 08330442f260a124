"""Runs the engine's pure core the way ``mesh.pg.graphs`` does, with a dict for the
database: each :meth:`Mesh.run` is one transaction (admit, apply, then what would be saved is
marked saved). No Postgres, no trio."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import yaml

from mesh.model.graph.app import CompiledApp
from mesh.model.graph.batch import Batch, Message, Plan
from mesh.model.graph.state import Command, JobState
from mesh.model.graph.validation import validate_manifest
from mesh.model.ids import ENGINE_STREAM
from mesh.model.messages import (
    ActivityRequest,
    ActivityResponse,
    EngineMessage,
    ErrorInfo,
    InterruptJob,
    StartJob,
    decode,
)
from mesh.model.outcomes import Outgoing

NOW = 1_700_000_000.0


def compile_app(text: str) -> CompiledApp:
    return CompiledApp(validate_manifest(yaml.safe_load(text)))


@dataclass
class Sent:
    """A message one transaction enqueued, decoded."""

    stream: str
    message: Any
    delay: float
    max_attempts: int


@dataclass
class Mesh:
    app: CompiledApp
    jobs: dict[str, JobState] = field(default_factory=dict)
    commands: dict[str, list[Command]] = field(default_factory=dict)
    """job key -> the commands its transactions left (hooks, signals, announcements)."""
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def new_id(self) -> str:
        return f"id{next(self._ids)}"

    def run(self, *messages: EngineMessage, direct: bool = False) -> tuple[Plan, list[Sent]]:
        """One transaction of ``messages``; returns its plan and what it enqueued."""
        batch = Batch(
            self.app.id,
            [Message(m, direct=direct) for m in messages],
            now=NOW,
            new_id=self.new_id,
        )
        if any(isinstance(m, StartJob) for m in messages):
            batch.admit(self.app)
        jobs = dict(self.jobs)
        plan = batch.apply({self.app.version: self.app}, jobs)
        sent = [_sent(o) for o in plan.outgoing]
        for job in plan.touched:
            self.commands.setdefault(job.key, []).extend(job.commands)
            _mark_saved(job)
            self.jobs[job.key] = job
        return plan, sent

    def start(self, topic: str, data: Any = None, **fields: Any) -> tuple[JobState, list[Sent]]:
        message = StartJob(id=self.new_id(), app=self.app.id, topic=topic, data=data, **fields)
        plan, sent = self.run(message, direct=True)
        result = plan.results[0]
        assert result.outcome == "applied", result
        return self.jobs[result.job_id], sent

    def respond(
        self, request: ActivityRequest, data: Any = None, **fields: Any
    ) -> ActivityResponse:
        values: dict[str, Any] = {
            "request_id": request.id,
            "app": request.app,
            "topic": request.topic,
            "status": "success",
            "code": 200,
            "data": data,
            "job_id": request.job_id,
            "activity_id": request.activity_id,
            "job_gid": request.job_gid,
            "dimension": request.dimension,
        }
        values.update(fields)
        return ActivityResponse(**values)

    def fail(
        self, request: ActivityRequest, code: int = 500, message: str = "no"
    ) -> ActivityResponse:
        return self.respond(
            request, status="error", code=code, error=ErrorInfo(message=message, code=code)
        )

    def interrupt(self, job_id: str, *, code: int = 410, descend: bool = False) -> InterruptJob:
        return InterruptJob(
            id=self.new_id(),
            app=self.app.id,
            job_id=job_id,
            reason="stop",
            code=code,
            descend=descend,
        )


def _sent(outgoing: Outgoing) -> Sent:
    return Sent(outgoing.stream, decode(outgoing.payload), outgoing.delay, outgoing.max_attempts)


def _mark_saved(job: JobState) -> None:
    job.created = job.changed = False
    job.dirty_data.clear()
    job.dirty_parts.clear()
    job.new_steps.clear()
    job.outgoing.clear()
    job.commands.clear()


def requests(sent: list[Sent]) -> list[ActivityRequest]:
    return [s.message for s in sent if isinstance(s.message, ActivityRequest)]


def to_engine(sent: list[Sent]) -> list[Any]:
    return [s.message for s in sent if s.stream == ENGINE_STREAM]
