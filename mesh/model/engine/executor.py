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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesh.errors import MeshError
from mesh.model.engine.app import CompiledApp
from mesh.model.engine.mapping import (
    WorkflowError,
    apply_job_maps,
    context_for,
    map_values,
    preview,
    resolve_rule,
    signal_key,
    text,
    to_seconds,
    topic_of,
)
from mesh.model.engine.state import (
    Announce,
    DeliverSignal,
    InterruptChildren,
    JobState,
    RegisterHook,
    UnregisterHooks,
    lineage,
)
from mesh.model.graph.manifest import Activity, Graph, Transition
from mesh.model.graph.schema import schema_problems
from mesh.model.ids import ENGINE_STREAM
from mesh.model.messages import (
    PRIORITY_REQUEST,
    ActivityRequest,
    ActivityResponse,
    EngineMessage,
    InterruptJob,
    ParentRef,
    Resume,
    StartJob,
    encode,
)
from mesh.model.outcomes import Outgoing, to_engine, to_parent
from mesh.model.pipe.js import UNDEFINED, strict_equals, to_number, truthy

MAX_CYCLES = 10_000
DEFAULT_EXPIRE_SECONDS = 86_400.0
REENTERED = 100
"""The code of a Leg 1 step entered by a cycle's re-entry (a plain entry records 200)."""


class InputInvalid(MeshError):
    """Job input that fails the graph's input schema; ``problems`` lists each reason."""

    def __init__(self, topic: str, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"input for {topic!r} does not match the graph's input schema; no job was "
            f"started:\n{listing}"
        )


class Engine:
    """Applies messages to jobs of one app version. ``now`` is wall-clock seconds."""

    def __init__(self, app: CompiledApp, *, now: float, new_id: Callable[[], str]) -> None:
        self.app = app
        self.now = now
        self.new_id = new_id

    # -- starting a job ----------------------------------------------------------------------

    def check_input(self, graph: Graph, data: Any) -> None:
        schema = graph.input.get("schema")
        if schema is not None:
            problems = schema_problems(schema, data)
            if problems:
                raise InputInvalid(graph.subscribes, problems)

    def plan_start(self, graph: Graph, data: Any) -> tuple[str, str | None, bool]:
        """The job id and entity a new job of ``graph`` gets for ``data`` (trigger stats),
        and whether the id was chosen (by the mapping) rather than freshly made."""
        trigger = graph.activities[graph.trigger_id]
        context = {"$self": {"input": {"data": data}, "output": {"data": data}}}
        key: str | None = None
        if "id" in trigger.stats:
            resolved = resolve_rule(trigger.stats["id"], context, graph.trigger_id, "stats.id")
            if resolved not in (None, UNDEFINED, ""):
                key = resolved if isinstance(resolved, str) else text(resolved)
        entity = None
        if trigger.entity is not None:
            resolved = resolve_rule(trigger.entity, context, graph.trigger_id, "entity")
            entity = None if resolved in (None, UNDEFINED) else text(resolved)
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
        job.adjust(sum(self._enter(job, graph, child, "") for child in children))
        self._settle(job, graph)

    # -- messages ----------------------------------------------------------------------------

    def apply(self, job: JobState, message: EngineMessage) -> str:
        """Apply one message to ``job`` (locked, loaded); returns what happened:
        ``applied``, or ``duplicate``/``stale``/``finished`` when it changed nothing."""
        if isinstance(message, InterruptJob):
            if not job.running and job.status != "pending":
                return "finished"
            graph = self._graph(job)
            self.interrupt(job, graph, message.reason, message.code, descend=message.descend)
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
        self._settle(job, graph)
        return outcome

    def _dispatch(self, job: JobState, graph: Graph, message: EngineMessage) -> str:
        if isinstance(message, ActivityResponse):
            return self._worker_result(job, graph, message)
        assert isinstance(message, Resume)
        aid, dim = message.activity_id, message.dimension
        if aid not in graph.activities:
            raise WorkflowError(
                f"message for unknown activity {aid!r} of graph {graph.subscribes!r}"
            )
        if message.kind == "reenter":
            if job.has_step(aid, dim, 1):
                return "duplicate"
            self._enter(job, graph, aid, dim, reentry=message.data)
            return "applied"
        if not job.has_step(aid, dim, 1) or job.has_step(aid, dim, 2):
            return "duplicate"
        if message.kind == "wake":
            job.commands.append(UnregisterHooks(aid, dim))
            self._complete(job, graph, aid, dim, 200, hook=job.part(aid, dim, "hook") or {})
        elif message.kind == "signal":
            if message.code == 202:  # the hook stays open for more signals
                job.set_part(aid, dim, "hook", message.data)
                return "applied"
            job.commands.append(UnregisterHooks(aid, dim))
            self._complete(job, graph, aid, dim, message.code, hook=message.data)
        else:  # child
            self._complete(job, graph, aid, dim, message.code, output=message.data)
        return "applied"

    def _worker_result(self, job: JobState, graph: Graph, response: ActivityResponse) -> str:
        aid, dim = response.activity_id, response.dimension
        if aid not in graph.activities:
            return "stale"
        if not job.has_step(aid, dim, 1) or job.has_step(aid, dim, 2):
            return "duplicate"
        activity = graph.activities[aid]
        if response.status == "error":
            error = response.error
            detail = {
                "message": error.message if error else "the worker reported an error",
                "type": error.type if error else "Error",
                "code": response.code,
            }
            self._complete(job, graph, aid, dim, response.code, output={"error": detail})
            return "applied"
        data = response.data
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise WorkflowError(
                f"activity {aid!r} (topic {response.topic!r}) returned "
                f"{type(data).__name__} {preview(data)}; an activity returns a JSON object "
                f"(or nothing), read as {{{aid}.output.data.<field>}}"
            )
        schema = activity.output.get("schema")
        if isinstance(schema, dict):
            problems = schema_problems(schema, data)
            if problems:
                raise WorkflowError(
                    f"activity {aid!r} (topic {response.topic!r}) returned data that does not "
                    f"match its output schema: {'; '.join(problems)}"
                )
        if response.status == "pending":
            self._store_output(job, graph, aid, dim, data)
            if truthy(resolve_rule(activity.emit, context_for(job, graph, aid, dim), aid, "emit")):
                job.commands.append(Announce(self._announce_topic(graph), "emitted"))
            return "applied"
        self._complete(job, graph, aid, dim, 200, output=data)
        return "applied"

    # -- legs --------------------------------------------------------------------------------

    def _enter(
        self, job: JobState, graph: Graph, aid: str, dim: str, *, reentry: Any = UNDEFINED
    ) -> int:
        """Leg 1 of ``aid`` in ``dim``; returns 1 if it entered, 0 if it had already."""
        if job.has_step(aid, dim, 1):
            return 0  # converging branches: an activity runs once per dimension
        job.add_step(aid, dim, 1, REENTERED if reentry is not UNDEFINED else 200)
        activity = graph.activities[aid]
        context = context_for(job, graph, aid, dim)
        if reentry is not UNDEFINED:
            data = reentry if isinstance(reentry, dict) else {}
        else:
            data = map_values(activity.input.get("maps"), context, aid, "input.maps")
        if data:
            job.set_part(aid, dim, "input", data)
            context["$self"]["input"] = {"data": data}
        kind = activity.type
        if kind == "worker":
            self._request_work(job, activity, aid, dim, data, context)
        elif kind == "await":
            self._start_child(job, graph, activity, aid, dim, data, context)
        elif kind == "hook":
            self._hook(job, graph, activity, aid, dim, data, context)
        elif kind == "signal":
            self._signal(job, graph, activity, aid, dim, context)
        elif kind == "cycle":
            self._cycle(job, graph, activity, aid, dim, data)
        elif kind == "interrupt":
            self._interrupt_activity(job, graph, activity, aid, dim, context)
        else:
            raise WorkflowError(f"activity {aid!r}: a {kind} cannot be entered")
        return 1

    def _complete(
        self,
        job: JobState,
        graph: Graph,
        aid: str,
        dim: str,
        code: int,
        *,
        output: Any = None,
        hook: Any = None,
    ) -> None:
        """Leg 2: store the result, apply maps, enter the children the transitions pick."""
        job.add_step(aid, dim, 2, code)
        if hook is not None:
            job.set_part(aid, dim, "hook", hook)
        if output is not None:
            self._store_output(job, graph, aid, dim, output)
        context = context_for(job, graph, aid, dim)
        activity = graph.activities[aid]
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
        entered = sum(self._enter(job, graph, child, dim) for child in children)
        job.adjust(entered - 1)
        if truthy(resolve_rule(activity.emit, context, aid, "emit")):
            job.commands.append(Announce(self._announce_topic(graph), "emitted"))
        if job.running and truthy(resolve_rule(activity.persist, context, aid, "persist")):
            self._persist(job, graph)

    def _store_output(self, job: JobState, graph: Graph, aid: str, dim: str, data: Any) -> None:
        activity = graph.activities[aid]
        maps = activity.output.get("maps")
        if maps:
            job.set_part(aid, dim, "output", data)
            context = context_for(job, graph, aid, dim)
            data = {
                **(data if isinstance(data, dict) else {}),
                **map_values(maps, context, aid, "output.maps"),
            }
        job.set_part(aid, dim, "output", data)

    # -- activity types ----------------------------------------------------------------------

    def _request_work(
        self,
        job: JobState,
        activity: Activity,
        aid: str,
        dim: str,
        data: dict[str, Any],
        context: dict[str, Any],
    ) -> None:
        topic = topic_of(activity, context, aid)
        policy = self.app.retry_policies.get(aid)
        request = ActivityRequest(
            id=self.new_id(),
            app=job.app,
            topic=topic,
            data=data,
            job_id=job.key,
            activity_id=aid,
            reply_to=ENGINE_STREAM,
            retry=policy,
            sent_at=self.now,
            job_gid=job.gid,
            dimension=dim,
        )
        # Without a policy of the activity's own, the worker's applies: max_attempts 0 tells
        # the stream to take it from the worker's first claim.
        attempts = policy.maximum_attempts if policy else 0
        job.outgoing.append(
            Outgoing(job.app, topic, encode(request), PRIORITY_REQUEST, max_attempts=attempts)
        )

    def _start_child(
        self,
        job: JobState,
        graph: Graph,
        activity: Activity,
        aid: str,
        dim: str,
        data: dict[str, Any],
        context: dict[str, Any],
    ) -> None:
        topic = topic_of(activity, context, aid)
        if self.app.graph(topic) is None:
            raise WorkflowError(
                f"activity {aid!r}: no graph of app {job.app!r} subscribes to {topic!r}"
            )
        wait = truthy(resolve_rule(activity.await_, context, aid, "await"))
        child_key = self.new_id()
        parent = ParentRef(job.key, job.gid, aid, dim) if wait else None
        start = StartJob(
            id=self.new_id(),
            app=job.app,
            topic=topic,
            data=data,
            job_id=child_key,
            parent=parent,
            sent_at=self.now,
        )
        job.outgoing.append(to_engine(start))
        if not wait:
            self._complete(job, graph, aid, dim, 200, output={"job_id": child_key})

    def _hook(
        self,
        job: JobState,
        graph: Graph,
        activity: Activity,
        aid: str,
        dim: str,
        data: dict[str, Any],
        context: dict[str, Any],
    ) -> None:
        topic = self.app.hook_topics.get(aid)
        if topic is not None:
            rule = self.app.rule_for(topic, aid)
            expected: Any = UNDEFINED
            if rule is not None and rule.conditions is not None and rule.conditions.match:
                expected = resolve_rule(
                    rule.conditions.match[0].expected, context, aid, f"hooks.{topic}.expected"
                )
            job.commands.append(RegisterHook(topic, signal_key(expected), aid, dim))
        if activity.sleep is not None:
            seconds = to_seconds(resolve_rule(activity.sleep, context, aid, "sleep"), aid)
            wake = Resume(
                id=self.new_id(),
                app=job.app,
                kind="wake",
                job_id=job.key,
                gid=job.gid,
                activity_id=aid,
                dimension=dim,
                sent_at=self.now,
            )
            job.outgoing.append(to_engine(wake, delay=seconds))
        if topic is None and activity.sleep is None:
            self._complete(job, graph, aid, dim, 200, output=data)  # passthrough

    def _signal(
        self,
        job: JobState,
        graph: Graph,
        activity: Activity,
        aid: str,
        dim: str,
        context: dict[str, Any],
    ) -> None:
        topic = topic_of(activity, context, aid)
        payload = map_values(activity.signal.get("maps"), context, aid, "signal.maps")
        code = activity.code if activity.code is not None else activity.status
        code = int(to_number(resolve_rule(code, context, aid, "code"))) if code is not None else 200
        if activity.subtype == "all":
            key = None
            if activity.key_value is not None:
                key = signal_key(resolve_rule(activity.key_value, context, aid, "key_value"))
            job.commands.append(DeliverSignal(topic, key, payload, code, buffer=False))
        else:
            job.commands.extend(self.signal_deliveries(topic, payload, code))
        self._complete(job, graph, aid, dim, 200, output=payload)

    def signal_deliveries(self, topic: str, data: Any, code: int = 200) -> list[DeliverSignal]:
        """Where a signal on ``topic`` goes: one delivery per distinct match key its hook
        rules resolve from ``data``. Empty when no hook of this app listens to ``topic``."""
        keys: list[str] = []
        hook_context = {"$self": {"hook": {"data": data}}, "$hook": {"data": data}}
        for rule in self.app.hook_rules.get(topic, []):
            actual: Any = UNDEFINED
            if rule.conditions is not None and rule.conditions.match:
                actual = resolve_rule(
                    rule.conditions.match[0].actual, hook_context, rule.to, f"hooks.{topic}.actual"
                )
            key = signal_key(actual)
            if key not in keys:
                keys.append(key)
        return [DeliverSignal(topic, key, data, code) for key in keys]

    def _cycle(
        self,
        job: JobState,
        graph: Graph,
        activity: Activity,
        aid: str,
        dim: str,
        data: dict[str, Any],
    ) -> None:
        ancestor = activity.ancestor
        # New rounds hang off the round the loop started in, not off the previous round, so
        # dimensions stay as deep as the loops are nested however often they turn.
        base = next(
            (d for d in lineage(dim) if job.steps.get((ancestor, d, 1), REENTERED) != REENTERED),
            "",
        )
        job.cycles += 1
        job.changed = True
        if job.cycles > MAX_CYCLES:
            raise WorkflowError(
                f"activity {aid!r} re-entered {ancestor!r} more than {MAX_CYCLES} times"
            )
        job.add_step(aid, dim, 2)
        reenter = Resume(
            id=self.new_id(),
            app=job.app,
            kind="reenter",
            job_id=job.key,
            gid=job.gid,
            activity_id=ancestor,
            dimension=f"{base}/{job.cycles}",
            data=data,
            sent_at=self.now,
        )
        job.outgoing.append(to_engine(reenter))
        # The cycle closes and the re-entered ancestor opens: the semaphore stays.

    def _interrupt_activity(
        self,
        job: JobState,
        graph: Graph,
        activity: Activity,
        aid: str,
        dim: str,
        context: dict[str, Any],
    ) -> None:
        target = (
            resolve_rule(activity.target, context, aid, "target")
            if activity.target is not None
            else job.key
        )
        reason = (
            resolve_rule(activity.reason, context, aid, "reason")
            if activity.reason is not None
            else None
        )
        code = (
            int(to_number(resolve_rule(activity.code, context, aid, "code")))
            if activity.code is not None
            else 410
        )
        descend = truthy(resolve_rule(activity.descend, context, aid, "descend"))
        throw = truthy(resolve_rule(activity.throw, context, aid, "throw"))
        reason_text = (
            text(reason) if reason not in (None, UNDEFINED) else f"interrupted by activity {aid!r}"
        )
        if not isinstance(target, str) or target in ("", job.key):
            job.add_step(aid, dim, 2, code)
            self.interrupt(job, graph, reason_text, code, descend=descend, throw=throw)
            return
        message = InterruptJob(
            id=self.new_id(),
            app=job.app,
            job_id=target,
            reason=reason_text,
            code=code,
            descend=descend,
            sent_at=self.now,
        )
        job.outgoing.append(to_engine(message))
        self._complete(job, graph, aid, dim, 200, output={"job_id": target})

    # -- ending a job ------------------------------------------------------------------------

    def interrupt(
        self,
        job: JobState,
        graph: Graph,
        reason: str,
        code: int,
        *,
        descend: bool,
        throw: bool = True,
    ) -> None:
        job.error = {"message": reason, "type": "Interrupted", "code": code} if throw else None
        if descend:
            job.commands.append(InterruptChildren(reason, code))
        self._finish(job, graph, "interrupted", code if throw else 200)

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
        job.commands.append(Announce(self._announce_topic(graph), "persisted"))

    def _finish(self, job: JobState, graph: Graph, status: str, code: int) -> None:
        job.status = status
        job.changed = True
        job.expire_seconds = self._expire(job, graph)
        if any(aid in graph.activities for aid in self.app.hook_topics):
            job.commands.append(UnregisterHooks())  # hooks of this job may still wait
        if job.parent is not None and not job.persisted:  # a persisted job has answered
            job.outgoing.append(self._result_for_parent(job, code))
        job.commands.append(Announce(self._announce_topic(graph), status))

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

    def _announce_topic(self, graph: Graph) -> str:
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
