"""What every activity type shares: the manifest fields common to all, the protocol a type
implements, and the :class:`Leg` an activity's code works through.

An activity runs in two legs (HotMesh's model). Leg 1, *enter*, maps the activity's input and
starts its work: a worker request, a child job, a timer, a hook registration. Leg 2,
*complete*, stores the result and lets the transitions pick what runs next; the engine does
that part (:meth:`Leg.complete`). An activity whose work finishes at once (a signal, a
passthrough hook) completes within its Leg 1; one that waits is completed by the message that
ends the wait (:meth:`ActivityType.resume`, :meth:`ActivityType.respond`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from mesh.errors import WorkflowError
from mesh.model.graph.mapping import context_for, resolve_rule, topic_of
from mesh.model.graph.parts import ActivityFields, GraphView, HookRule
from mesh.model.graph.state import Command, JobState
from mesh.model.messages import ActivityResponse, EngineMessage, Resume
from mesh.model.outcomes import Outgoing, to_engine
from mesh.model.retry import RetryPolicy

A = TypeVar("A", bound=ActivityFields)


@dataclass(frozen=True, slots=True)
class GraphScope:
    """What an activity's manifest check may consult about the rest of its app."""

    ids: frozenset[str]
    """The activity ids of the graph."""
    subscribed: frozenset[str]
    """The topics the app's graphs subscribe to."""
    edges: dict[str, list[str]]
    """activity id -> the activities its transitions lead to."""

    def reaches(self, start: str, goal: str) -> bool:
        """Whether a path of transitions leads from ``start`` to ``goal``."""
        seen = {start}
        frontier = [start]
        while frontier:
            node = frontier.pop()
            for nxt in self.edges.get(node, []):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        return False


class AppView(Protocol):
    """A compiled app version as activities read it (a
    :class:`mesh.model.graph.app.CompiledApp`)."""

    def graph(self, topic: str) -> GraphView | None: ...

    @property
    def retry_policies(self) -> Mapping[str, RetryPolicy]: ...

    @property
    def hook_rules(self) -> Mapping[str, Sequence[HookRule]]: ...

    @property
    def hook_topics(self) -> Mapping[str, str]: ...

    def rule_for(self, topic: str, activity: str) -> HookRule | None: ...


class EngineView(Protocol):
    """What an activity's legs ask of the engine that runs them (a
    :class:`mesh.model.graph.executor.Engine`; a protocol, so that the types need not import
    the engine, which imports them)."""

    @property
    def app(self) -> AppView: ...

    @property
    def now(self) -> float: ...

    def new_id(self) -> str: ...

    def complete(self, leg: Leg, code: int, *, output: Any = None, hook: Any = None) -> None: ...

    def store_output(self, leg: Leg, data: Any) -> None: ...

    def interrupt(
        self, job: JobState, reason: str, code: int, *, descend: bool, throw: bool = True
    ) -> None: ...

    def announce_topic(self, graph: GraphView) -> str: ...


@dataclass(slots=True)
class Leg:
    """One activity of one job in one dimension, as its type's code sees it."""

    engine: EngineView
    job: JobState
    graph: GraphView
    aid: str
    dim: str
    activity: Any
    """The activity's struct (the type's own :class:`ActivityFields` subclass)."""
    data: dict[str, Any] = field(default_factory=dict)
    """The activity's mapped input (Leg 1)."""
    _context: dict[str, Any] | None = None

    @property
    def context(self) -> dict[str, Any]:
        """The data the activity's mappings read (computed once, see :meth:`refresh`)."""
        if self._context is None:
            self._context = context_for(self.job, self.graph, self.aid, self.dim)
        return self._context

    def refresh(self) -> None:
        """Forget the computed context: the job's data changed since."""
        self._context = None

    def resolve(self, rule: Any, where: str) -> Any:
        """``rule`` (a mapping value) resolved in this activity's context; a failure is a
        :class:`WorkflowError` naming the activity and ``where``."""
        return resolve_rule(rule, self.context, self.aid, where)

    def topic(self) -> str:
        """The activity's ``topic``, resolved and validated."""
        return topic_of(self.activity, self.context, self.aid)

    def complete(self, code: int = 200, *, output: Any = None, hook: Any = None) -> None:
        """Leg 2: store the result, apply the maps, enter what the transitions pick."""
        self.engine.complete(self, code, output=output, hook=hook)

    def send(self, message: EngineMessage, *, delay: float = 0.0) -> None:
        """Put ``message`` on the engine stream (after ``delay`` seconds) when the batch
        commits."""
        self.job.outgoing.append(to_engine(message, delay=delay))

    def enqueue(self, outgoing: Outgoing) -> None:
        """Send an encoded message to any stream when the batch commits."""
        self.job.outgoing.append(outgoing)

    def command(self, command: Command) -> None:
        """A database effect the batch carries out after the job's changes (hooks, signals,
        child interrupts, announcements)."""
        self.job.commands.append(command)

    def resume_message(self, kind: str, *, data: Any = None, code: int = 200) -> Resume:
        """A :class:`Resume` of ``kind`` addressed to this activity of this job."""
        return Resume(
            id=self.engine.new_id(),
            app=self.job.app,
            kind=kind,
            job_id=self.job.key,
            gid=self.job.gid,
            activity_id=self.aid,
            dimension=self.dim,
            code=code,
            data=data,
            sent_at=self.engine.now,
        )


class ActivityType(Generic[A]):
    """An activity type: its manifest struct, its checks and its two legs.

    Subclass it in a module of :mod:`mesh.model.graph.activities` and name an instance
    ``TYPE``; the registry finds it there.
    """

    struct: ClassVar[type[ActivityFields]]
    aliases: ClassVar[tuple[str, ...]] = ()
    """Other manifest names of this type (HotMesh's legacy names)."""
    literal_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields that hold plain values, not mappings (not checked for references)."""
    takes_signals: ClassVar[bool] = False
    """Whether a graph's ``hooks:`` rules may resume it."""

    @property
    def name(self) -> str:
        return str(self.struct.__struct_config__.tag)

    def problems(self, activity: dict[str, Any], path: str, scope: GraphScope) -> Iterator[str]:
        """Problems of the activity's manifest entry beyond its fields' shapes, as
        ``path.field: what is wrong``."""
        return iter(())

    def enter(self, leg: Leg) -> None:
        """Leg 1: start the activity's work (or complete it at once)."""
        raise WorkflowError(f"activity {leg.aid!r}: a {self.name} cannot be entered")

    def resume(self, leg: Leg, message: Resume) -> str:
        """End the activity's wait with ``message`` (never a ``reenter``): ``applied``, or
        ``stale`` when this type takes no such message."""
        return "stale"

    def respond(self, leg: Leg, response: ActivityResponse) -> str:
        """A worker's response to a request the activity sent: ``applied`` or ``stale``."""
        return "stale"
