"""The worker activity: Leg 1 sends a request to the workers of ``topic`` (with the
activity's ``retry:`` policy, if any); their response completes it, or, when ``pending``,
stores interim data and keeps it open."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mesh.errors import InvalidIdentifier, WorkflowError
from mesh.model.graph.activities.base import ActivityType, GraphScope, Leg
from mesh.model.graph.mapping import preview
from mesh.model.graph.parts import ActivityFields
from mesh.model.graph.schema import schema_problems
from mesh.model.graph.state import Announce
from mesh.model.ids import ENGINE_STREAM, validate_topic
from mesh.model.messages import PRIORITY_REQUEST, ActivityRequest, ActivityResponse, encode
from mesh.model.outcomes import Outgoing
from mesh.model.pipe.js import truthy


class Worker(ActivityFields, tag="worker", frozen=True):
    topic: Any = None


class WorkerType(ActivityType[Worker]):
    struct = Worker

    def problems(self, activity: dict[str, Any], path: str, scope: GraphScope) -> Iterator[str]:
        topic = activity.get("topic")
        if not topic:
            yield f"{path}.topic: required for a worker activity"
        if isinstance(topic, str) and not topic.startswith("{"):
            try:
                validate_topic(topic)
            except InvalidIdentifier as error:
                yield f"{path}.topic: {error}"
            if topic in scope.subscribed:
                yield f"{path}.topic: {topic!r} is a graph's trigger topic; a worker topic must differ"

    def enter(self, leg: Leg) -> None:
        topic = leg.topic()
        job, engine = leg.job, leg.engine
        policy = engine.app.retry_policies.get(leg.aid)
        request = ActivityRequest(
            id=engine.new_id(),
            app=job.app,
            topic=topic,
            data=leg.data,
            job_id=job.key,
            activity_id=leg.aid,
            reply_to=ENGINE_STREAM,
            retry=policy,
            sent_at=engine.now,
            job_gid=job.gid,
            dimension=leg.dim,
            trace=job.trace,
        )
        # Without a policy of the activity's own, the worker's applies: max_attempts 0 tells
        # the stream to take it from the worker's first claim.
        attempts = policy.maximum_attempts if policy else 0
        leg.enqueue(
            Outgoing(job.app, topic, encode(request), PRIORITY_REQUEST, max_attempts=attempts)
        )

    def respond(self, leg: Leg, response: ActivityResponse) -> str:
        if response.status == "error":
            error = response.error
            detail = {
                "message": error.message if error else "the worker reported an error",
                "type": error.type if error else "Error",
                "code": response.code,
            }
            leg.complete(response.code, output={"error": detail})
            return "applied"
        data = response.data
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise WorkflowError(
                f"activity {leg.aid!r} (topic {response.topic!r}) returned "
                f"{type(data).__name__} {preview(data)}; an activity returns a JSON object "
                f"(or nothing), read as {{{leg.aid}.output.data.<field>}}"
            )
        schema = leg.activity.output.get("schema")
        if isinstance(schema, dict):
            problems = schema_problems(schema, data)
            if problems:
                raise WorkflowError(
                    f"activity {leg.aid!r} (topic {response.topic!r}) returned data that does "
                    f"not match its output schema: {'; '.join(problems)}"
                )
        if response.status == "pending":
            leg.engine.store_output(leg, data)
            if truthy(leg.resolve(leg.activity.emit, "emit")):
                leg.command(Announce(leg.engine.announce_topic(leg.graph), "emitted"))
            return "applied"
        leg.complete(200, output=data)
        return "applied"


TYPE = WorkerType()
