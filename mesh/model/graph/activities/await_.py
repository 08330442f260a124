"""The await activity: Leg 1 starts a job of the graph subscribed to ``topic``. With
``await: true`` (the default) the child's answer completes it (``child`` resume); without,
it completes at once with the child's job id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from mesh.errors import WorkflowError
from mesh.model.graph.activities.base import ActivityType, GraphScope, Leg
from mesh.model.graph.parts import ActivityFields
from mesh.model.messages import ParentRef, Resume, StartJob
from mesh.model.pipe.js import truthy


class Await(ActivityFields, tag="await", frozen=True):
    topic: Any = None
    await_: Any = msgspec.field(default=True, name="await")


class AwaitType(ActivityType[Await]):
    struct = Await

    def problems(self, activity: dict[str, Any], path: str, scope: GraphScope) -> Iterator[str]:
        topic = activity.get("topic")
        if not topic:
            yield f"{path}.topic: required for an await activity"
        elif isinstance(topic, str) and not topic.startswith("{") and topic not in scope.subscribed:
            yield f"{path}.topic: no graph of this app subscribes to {topic!r} (an await starts that graph)"

    def enter(self, leg: Leg) -> None:
        topic = leg.topic()
        job, engine = leg.job, leg.engine
        if engine.app.graph(topic) is None:
            raise WorkflowError(
                f"activity {leg.aid!r}: no graph of app {job.app!r} subscribes to {topic!r}"
            )
        wait = truthy(leg.resolve(leg.activity.await_, "await"))
        child_key = engine.new_id()
        parent = ParentRef(job.key, job.gid, leg.aid, leg.dim) if wait else None
        start = StartJob(
            id=engine.new_id(),
            app=job.app,
            topic=topic,
            data=leg.data,
            job_id=child_key,
            parent=parent,
            sent_at=engine.now,
            trace=job.trace,  # the child's spans join its parent's trace
        )
        leg.send(start)
        if not wait:
            leg.complete(200, output={"job_id": child_key})

    def resume(self, leg: Leg, message: Resume) -> str:
        if message.kind != "child":
            return "stale"
        leg.complete(message.code, output=message.data)
        return "applied"


TYPE = AwaitType()
