"""A batch of engine messages, decided: the pure core of one engine transaction.

The database layer locks and loads what a batch names (:func:`jobs_named`,
:func:`details_wanted`), then hands the messages whose claims it holds to a :class:`Batch`:

1. :meth:`Batch.admit` plans the starts against the active version: the new jobs' ids (and
   the ids a mapping chose, which the caller must lock to know whether they are taken), and
   the refusals (unknown topic, bad input, a malformed id).
2. :meth:`Batch.apply` applies every message to its job and starts the admitted jobs; it
   returns a :class:`Plan`: the result of each message, the jobs to insert and to save, and
   the messages to enqueue (the jobs' own, and the refusals a parent must hear).

The caller saves what the plan says and carries out the jobs' commands
(:mod:`mesh.model.graph.effects` turns the database's answers into messages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mesh.errors import (
    DuplicateJob,
    InputInvalid,
    InvalidIdentifier,
    MeshError,
    UnknownJob,
    UnknownTopic,
    WorkflowError,
)
from mesh.model.graph.app import CompiledApp
from mesh.model.graph.executor import Engine
from mesh.model.graph.state import JobState, lineage
from mesh.model.ids import new_guid, validate_job_id
from mesh.model.messages import ActivityResponse, EngineMessage, InterruptJob, Resume, StartJob
from mesh.model.outcomes import Outgoing, to_parent


@dataclass(frozen=True, slots=True)
class Result:
    """What one message did."""

    outcome: str
    """applied, duplicate, stale, finished, or refused (see ``error``)."""
    job_id: str = ""
    error: MeshError | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A message of the batch. ``direct``: asked by a client in this transaction (not
    claimed from a stream), so a refusal is raised to it rather than ignored."""

    body: EngineMessage
    direct: bool = False


@dataclass(slots=True)
class Plan:
    """What the transaction must write."""

    results: list[Result] = field(default_factory=list)
    created: list[JobState] = field(default_factory=list)
    """New jobs, to insert (whole)."""
    touched: list[JobState] = field(default_factory=list)
    """Every job the batch holds (new ones too), to save what changed and run commands of."""
    outgoing: list[Outgoing] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Admitted:
    key: str
    entity: str | None
    chosen: bool


def jobs_named(messages: Iterable[EngineMessage]) -> set[str]:
    """The ids of the existing jobs the messages address (to lock, in id order)."""
    return {m.job_id for m in messages if not isinstance(m, StartJob)}


def details_wanted(messages: Iterable[EngineMessage]) -> dict[str, set[str]]:
    """job id -> the dimensions whose data the messages read (to load under the locks)."""
    wanted: dict[str, set[str]] = {}
    for message in messages:
        if isinstance(message, ActivityResponse | Resume):
            wanted.setdefault(message.job_id, set()).update(lineage(message.dimension))
        elif isinstance(message, InterruptJob):
            wanted.setdefault(message.job_id, set()).add("")
    return wanted


def has_starts(messages: Iterable[EngineMessage]) -> bool:
    return any(isinstance(m, StartJob) for m in messages)


class Batch:
    """The messages of one transaction of ``app``, applied in order."""

    def __init__(
        self,
        app: str,
        messages: Sequence[Message],
        *,
        now: float,
        new_id: Callable[[], str],
    ) -> None:
        self.app = app
        self.messages = messages
        self.now = now
        self.new_id = new_id
        self._active: CompiledApp | None = None
        self._admitted: dict[int, _Admitted] = {}
        self._refused: dict[int, MeshError] = {}

    def admit(self, active: CompiledApp) -> set[str]:
        """Plan the starts against ``active``; returns the ids mappings chose (the caller
        locks them, and passes the jobs that hold them to :meth:`apply`)."""
        self._active = active
        engine = Engine(active, now=self.now, new_id=self.new_id)
        for index, message in enumerate(self.messages):
            start = message.body
            if not isinstance(start, StartJob):
                continue
            try:
                graph = active.graph(start.topic)
                if graph is None:
                    raise UnknownTopic(
                        f"no graph of app {self.app!r} (version {active.version}) subscribes to "
                        f"{start.topic!r}; subscribed: {', '.join(sorted(active.graphs))}"
                    )
                engine.check_input(graph, start.data)
                key, entity, chosen = engine.plan_start(graph, start.data)
                if start.job_id:
                    key, chosen = start.job_id, start.parent is None
                validate_job_id(key)
                self._admitted[index] = _Admitted(key, entity, chosen)
            except (UnknownTopic, InputInvalid, WorkflowError, InvalidIdentifier) as error:
                self._refused[index] = error
        return {a.key for a in self._admitted.values() if a.chosen}

    def versions_needed(self, jobs: Mapping[str, JobState]) -> set[str]:
        """The app versions of the jobs the messages address (compiled for :meth:`apply`)."""
        named = jobs_named(m.body for m in self.messages)
        return {job.version for key, job in jobs.items() if key in named}

    def apply(self, versions: Mapping[str, CompiledApp], jobs: dict[str, JobState]) -> Plan:
        """Apply the messages to ``jobs`` (locked and loaded: those the messages address and
        those holding the chosen ids); new jobs are added to ``jobs``."""
        plan = Plan()
        for index, message in enumerate(self.messages):
            body = message.body
            if isinstance(body, StartJob):
                result = self._start(index, body, jobs, plan)
                if result.outcome == "refused" and body.parent is not None:
                    plan.outgoing.append(self._refusal_to_parent(body, result.error))
                plan.results.append(result)
                continue
            key = body.job_id
            job = jobs.get(key)
            if job is None:
                if message.direct and isinstance(body, InterruptJob):
                    error = UnknownJob(f"no job {key!r} in app {self.app!r}")
                    plan.results.append(Result("refused", key, error))
                else:
                    plan.results.append(Result("stale", key))
                continue
            engine = Engine(versions[job.version], now=self.now, new_id=self.new_id)
            plan.results.append(Result(engine.apply(job, body), key))
        plan.touched = list(jobs.values())
        plan.outgoing.extend(o for job in plan.touched for o in job.outgoing)
        return plan

    def _start(
        self, index: int, message: StartJob, jobs: dict[str, JobState], plan: Plan
    ) -> Result:
        admitted = self._admitted.get(index)
        active = self._active
        if admitted is None or active is None:
            return Result("refused", message.job_id, self._refused.get(index))
        key = admitted.key
        if key in jobs:
            return Result(
                "refused",
                key,
                DuplicateJob(
                    f"job id {key!r} is taken by a job of app {message.app!r} (it stays taken "
                    "until that job expires); choose another id or scrub the old job"
                ),
            )
        graph = active.graph(message.topic)
        assert graph is not None
        job = JobState(
            id=0,  # assigned by the insert
            app=message.app,
            key=key,
            gid=new_guid(),
            version=active.version,
            topic=message.topic,
            entity=admitted.entity,
            status="running",
            semaphore=0,
            parent=message.parent,
            created_at=self.now,
            created=True,
            changed=True,
            trace=message.trace,
        )
        try:
            Engine(active, now=self.now, new_id=self.new_id).start(
                job, graph, message.data, pending=message.pending
            )
        except WorkflowError as failure:
            return Result("refused", key, failure)
        jobs[key] = job
        plan.created.append(job)
        return Result("applied", key)

    def _refusal_to_parent(self, message: StartJob, error: MeshError | None) -> Outgoing:
        """The answer a parent's await gets for a child that could not start."""
        parent = message.parent
        assert parent is not None
        code = refusal_code(error)
        data = {"error": {"message": str(error), "type": type(error).__name__, "code": code}}
        return to_parent(message.app, parent, code, data, message_id=self.new_id(), now=self.now)


def refusal_code(error: MeshError | None) -> int:
    """The status code of a refused start: 409 a taken id, 400 bad input, else 500."""
    if isinstance(error, DuplicateJob):
        return 409
    if isinstance(error, InputInvalid):
        return 400
    return 500
