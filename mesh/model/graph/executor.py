"""What engine messages do to a job: HotMesh's activity legs, transitions and completion.

Every activity runs in two legs. Leg 1 (entry) maps the activity's input and starts its work:
a worker request, a child job, a timer, a hook registration. Leg 2 (completion) stores the
result, applies the output and job maps, and enters the children whose transition conditions
hold. Activities without outside work (passthrough hooks, signals, interrupts of other jobs,
fire-and-forget awaits) complete within their Leg 1. Both legs are recorded as steps, so a
duplicate delivery finds its step and changes nothing.

The job's semaphore counts its open activities: entering adds one, completing subtracts one.
When it falls to the threshold (0) after a message, the job is done, once: the caller holds
the job's row lock, and a finished job accepts no more messages.

A job *persists* when an activity's ``persist`` holds as it completes, or when a
``persistent`` graph's job falls to its threshold with activities still open: its waiters and
its parent get its data as its answer, and it keeps running (signals and cycles can still
re-enter it) until its last activity closes or it is interrupted. A *pending* start
(``pub(..., pending=S)``) writes the trigger's data and runs nothing: a reservation, pruned
after S seconds unless interrupted first.

What each activity type does in its legs is in its module of
:mod:`mesh.model.graph.activities`; this module runs the legs' common part (steps, input and
output maps, transitions, the semaphore) and ends jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesh.errors import InputInvalid, WorkflowError
from mesh.model.graph.activities import Leg, type_of
from mesh.model.graph.activities.cycle import REENTERED
from mesh.model.graph.activities.trigger import TYPE as TRIGGER
from mesh.model.graph.app import CompiledApp
from mesh.model.graph.manifest import Graph, Transition
from mesh.model.graph.mapping import (
    apply_job_maps,
    context_for,
    map_values,
    resolve_rule,
    to_seconds,
)
from mesh.model.graph.parts import GraphView
from mesh.model.graph.schema import schema_problems
from mesh.model.graph.state import (
    Announce,
    InterruptChildren,
    JobState,
    UnregisterHooks,
    Withdraw,
)
from mesh.model.messages import ActivityResponse, EngineMessage, InterruptJob, Resume
from mesh.model.outcomes import Outgoing, to_parent
from mesh.model.pipe.js import UNDEFINED, strict_equals, to_number, truthy

DEFAULT_EXPIRE_SECONDS = 86_400.0


class Engine:
    """Applies messages to jobs of one app version. ``now`` is wall-clock seconds."""

    def __init__(self, app: CompiledApp, *, now: float, new_id: Callable[[], str]) -> None:
        self.app = app
        self.now = now
        self.new_id = new_id

    # -- starting a job ----------------------------------------------------------------------

    def check_input(self, graph: Graph, data: Any) -> None:
        """:class:`InputInvalid` when ``data`` fails the graph's input schema."""
        schema = graph.input.get("schema")
        if schema is not None:
            problems = schema_problems(schema, data)
            if problems:
                raise InputInvalid(graph.subscribes, problems)

    def plan_start(self, graph: Graph, data: Any) -> tuple[str, str | None, bool]:
        """The job id and entity a new job of ``graph`` gets for ``data`` (trigger stats),
        and whether the id was chosen (by the mapping) rather than freshly made."""
        trigger_id = graph.trigger_id
        trigger: Any = graph.activities[trigger_id]
        key, entity = TRIGGER.identity(trigger_id, trigger, data)
        return key or self.new_id(), entity, key is not None

    def start(
        self, job: JobState, graph: Graph, data: Any, *, pending: float | None = None
    ) -> None:
        """Run the trigger of a new job: its data, then its first activities (none for a
        ``pending`` start: the job is reserved, with its data, for ``pending`` seconds)."""
        trigger_id = graph.trigger_id
        trigger = graph.activities[trigger_id]
        job.add_step(trigger_id, "", 1)
        job.set_part(trigger_id, "", "output", data)
        context = context_for(job, graph, trigger_id, "")
        if trigger.statusThreshold is not None:
            job.threshold = int(
                to_number(
                    resolve_rule(trigger.statusThreshold, context, trigger_id, "statusThreshold")
                )
            )
        apply_job_maps(job, trigger, context, trigger_id)
        job.add_step(trigger_id, "", 2)
        job.changed = True
        if pending is not None:
            job.status = "pending"
            job.expire_seconds = pending
            return
        children = self._children(trigger_id, context, 200)
        # Adjust, not assign: children that complete at once (passthrough hooks, detached
        # awaits) have already subtracted themselves.
        job.adjust(sum(self.enter(job, graph, child, "") for child in children))
        self._settle(job, graph)

    # -- messages ----------------------------------------------------------------------------

    def apply(self, job: JobState, message: EngineMessage) -> str:
        """Apply one message to ``job`` (locked, loaded); returns what happened:
        ``applied``, or ``duplicate``/``stale``/``finished`` when it changed nothing."""
        if isinstance(message, InterruptJob):
            if not job.running and job.status != "pending":
                return "finished"
            graph = self._graph(job)
            self.interrupt(job, message.reason, message.code, descend=message.descend)
            return "applied"
        gid = (
            message.job_gid
            if isinstance(message, ActivityResponse)
            else getattr(message, "gid", "")
        )
        if gid and gid != job.gid:
            return "stale"
        if not job.running:
            return "finished"
        graph = self._graph(job)
        snapshot = job.snapshot()
        try:
            outcome = self._dispatch(job, graph, message)
        except WorkflowError as error:
            job.restore(snapshot)
            self.fail(job, graph, str(error), error.code)
            return "applied"
        if outcome == "stale":
            job.restore(snapshot)  # refused by the activity's type: nothing happened
        self._settle(job, graph)
        return outcome

    def _dispatch(self, job: JobState, graph: Graph, message: EngineMessage) -> str:
        if isinstance(message, ActivityResponse):
            aid, dim = message.activity_id, message.dimension
            if aid not in graph.activities:
                return "stale"
        elif isinstance(message, Resume):
            aid, dim = message.activity_id, message.dimension
            if aid not in graph.activities:
                raise WorkflowError(
                    f"message for unknown activity {aid!r} of graph {graph.subscribes!r}"
                )
            if message.kind == "reenter":
                if job.has_step(aid, dim, 1):
                    return "duplicate"
                self.enter(job, graph, aid, dim, reentry=message.data)
                return "applied"
        else:
            return "stale"  # a start is not a message to a job
        if not job.has_step(aid, dim, 1) or job.has_step(aid, dim, 2):
            return "duplicate"
        activity = graph.activities[aid]
        leg = Leg(self, job, graph, aid, dim, activity)
        if isinstance(message, ActivityResponse):
            return type_of(activity).respond(leg, message)
        return type_of(activity).resume(leg, message)

    # -- legs --------------------------------------------------------------------------------

    def enter(
        self, job: JobState, graph: Graph, aid: str, dim: str, *, reentry: Any = UNDEFINED
    ) -> int:
        """Leg 1 of ``aid`` in ``dim``; returns 1 if it entered, 0 if it had already."""
        if job.has_step(aid, dim, 1):
            return 0  # converging branches: an activity runs once per dimension
        job.add_step(aid, dim, 1, REENTERED if reentry is not UNDEFINED else 200)
        activity = graph.activities[aid]
        leg = Leg(self, job, graph, aid, dim, activity)
        if reentry is not UNDEFINED:
            data = reentry if isinstance(reentry, dict) else {}
        else:
            data = map_values(activity.input.get("maps"), leg.context, aid, "input.maps")
        if data:
            job.set_part(aid, dim, "input", data)
            leg.context["$self"]["input"] = {"data": data}
        leg.data = data
        type_of(activity).enter(leg)
        return 1

    def complete(self, leg: Leg, code: int, *, output: Any = None, hook: Any = None) -> None:
        """Leg 2: store the result, apply maps, enter the children the transitions pick."""
        job, aid, dim = leg.job, leg.aid, leg.dim
        graph = self._graph(job)
        job.add_step(aid, dim, 2, code)
        if hook is not None:
            job.set_part(aid, dim, "hook", hook)
        if output is not None:
            self.store_output(leg, output)
        context = context_for(job, graph, aid, dim)
        activity = leg.activity
        apply_job_maps(job, activity, context, aid)
        children = self._children(aid, context, code)
        if code >= 400 and not children:
            error = output.get("error") if isinstance(output, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            self.fail(
                job,
                graph,
                f"activity {aid!r} failed with code {code}"
                + (f": {message}" if message else "")
                + f" (no transition from {aid!r} handles code {code})",
                code,
            )
            return
        entered = sum(self.enter(job, graph, child, dim) for child in children)
        job.adjust(entered - 1)
        if truthy(resolve_rule(activity.emit, context, aid, "emit")):
            job.commands.append(Announce(self.announce_topic(graph), "emitted"))
        if job.running and truthy(resolve_rule(activity.persist, context, aid, "persist")):
            self._persist(job, graph)

    def store_output(self, leg: Leg, data: Any) -> None:
        """Store ``data`` as the activity's output, with its ``output.maps`` applied."""
        job, aid, dim = leg.job, leg.aid, leg.dim
        maps = leg.activity.output.get("maps")
        if maps:
            job.set_part(aid, dim, "output", data)
            context = context_for(job, leg.graph, aid, dim)
            data = {
                **(data if isinstance(data, dict) else {}),
                **map_values(maps, context, aid, "output.maps"),
            }
        job.set_part(aid, dim, "output", data)
        leg.refresh()

    # -- ending a job ------------------------------------------------------------------------

    def interrupt(
        self, job: JobState, reason: str, code: int, *, descend: bool, throw: bool = True
    ) -> None:
        job.error = {"message": reason, "type": "Interrupted", "code": code} if throw else None
        if descend:
            job.commands.append(InterruptChildren(reason, code))
        self._finish(job, self._graph(job), "interrupted", code if throw else 200)

    def fail(self, job: JobState, graph: Graph, message: str, code: int = 500) -> None:
        job.error = {"message": message, "type": "WorkflowError", "code": code}
        self._finish(job, graph, "failed", code)

    def _settle(self, job: JobState, graph: Graph) -> None:
        if not job.running or job.semaphore > job.threshold:
            return
        if job.semaphore > 0 and self._persistent(job, graph):
            if not job.persisted:
                self._persist(job, graph)
            return
        self._finish(job, graph, "done", 200)

    def _persistent(self, job: JobState, graph: Graph) -> bool:
        context = context_for(job, graph, graph.trigger_id, "")
        return truthy(resolve_rule(graph.persistent, context, graph.trigger_id, "persistent"))

    def _persist(self, job: JobState, graph: Graph) -> None:
        """Answer now and stay open: waiters hear ``persisted`` and read the job's data; the
        parent's await completes with it (once: the parent takes one answer)."""
        if not job.persisted and job.parent is not None:
            job.outgoing.append(self._result_for_parent(job, 200))
        job.persisted = True
        job.changed = True
        job.commands.append(Announce(self.announce_topic(graph), "persisted"))

    def _finish(self, job: JobState, graph: Graph, status: str, code: int) -> None:
        job.status = status
        job.changed = True
        job.expire_seconds = self._expire(job, graph)
        if any(aid in graph.activities for aid in self.app.hook_topics):
            job.commands.append(UnregisterHooks())  # hooks of this job may still wait
        if job.parent is not None and not job.persisted:  # a persisted job has answered
            job.outgoing.append(self._result_for_parent(job, code))
        if status in ("interrupted", "failed"):
            job.commands.append(Withdraw())  # its queued work would run for nothing
        job.commands.append(Announce(self.announce_topic(graph), status))

    def _result_for_parent(self, job: JobState, code: int) -> Outgoing:
        assert job.parent is not None
        data = job.data if code < 400 else {"error": job.error}
        return to_parent(job.app, job.parent, code, data, message_id=self.new_id(), now=self.now)

    def _expire(self, job: JobState, graph: Graph) -> float | None:
        if graph.expire is None:
            return DEFAULT_EXPIRE_SECONDS
        try:
            value = resolve_rule(
                graph.expire,
                context_for(job, graph, graph.trigger_id, ""),
                graph.trigger_id,
                "expire",
            )
            seconds = to_seconds(value, graph.trigger_id)
        except WorkflowError:
            return DEFAULT_EXPIRE_SECONDS
        return seconds if seconds > 0 else None

    # -- helpers -----------------------------------------------------------------------------

    def _graph(self, job: JobState) -> Graph:
        graph = self.app.graph(job.topic)
        if graph is None:
            raise WorkflowError(
                f"version {job.version} of app {job.app!r} has no graph for {job.topic!r}"
            )
        return graph

    def announce_topic(self, graph: GraphView) -> str:
        return graph.publishes or graph.subscribes

    def _children(self, aid: str, context: dict[str, Any], code: int) -> list[str]:
        return [
            t.to for t in self.app.transitions.get(aid, []) if self._taken(t, context, code, aid)
        ]

    def _taken(self, transition: Transition, context: dict[str, Any], code: int, aid: str) -> bool:
        conditions = transition.conditions
        codes = conditions.code if conditions is not None else None
        if codes is None:
            codes = [200]
        elif isinstance(codes, int):
            codes = [codes]
        if code not in codes:
            return False  # errors follow only transitions that name their code
        if conditions is None or not conditions.match:
            return True
        results = (
            strict_equals(
                resolve_rule(rule.actual, context, aid, f"transitions.{aid}.conditions"),
                rule.expected,
            )
            for rule in conditions.match
        )
        return all(results) if conditions.gate == "and" else any(results)
