"""Engine transactions: a batch of engine messages handled in one commit.

``process`` takes the batch's claims (the fenced ack comes first, so a lost lease means no
effects), locks the jobs the messages name in id order, loads their state, applies each
message with the pure :class:`~mesh.model.engine.executor.Engine`, saves what changed,
enqueues what it caused and, optionally, claims the next batch, all in one transaction. A
crash at any point commits all of it or none of it. What clients ask directly (``pub``,
``signal``, ``interrupt``) is in :mod:`mesh.pg.operations`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import psycopg
from psycopg.pq import TransactionStatus

from mesh.errors import InvalidIdentifier, MeshError
from mesh.model.engine.app import CompiledApp
from mesh.model.engine.executor import Engine, InputInvalid
from mesh.model.engine.mapping import WorkflowError
from mesh.model.engine.state import JobState, lineage
from mesh.model.graph.manifest import Manifest
from mesh.model.ids import new_guid, new_message_id, validate_job_id
from mesh.model.messages import (
    ActivityResponse,
    EngineMessage,
    InterruptJob,
    Resume,
    StartJob,
)
from mesh.model.outcomes import Outgoing, to_parent
from mesh.pg import jobs as rows
from mesh.pg.database import Connection, Cursor
from mesh.pg.queries import query
from mesh.pg.streams import (
    DEFAULT_ATTEMPTS,
    StreamClaim,
    claim_params,
    enqueue_params,
    fence_params,
)


class UnknownTopic(MeshError):
    """``pub`` to a topic no graph of the active version subscribes to."""


class DuplicateJob(MeshError):
    """A job id that is already taken (until that job expires and is pruned)."""


class UnknownHook(MeshError):
    """A signal on a topic no hook of the active version listens to."""


class UnknownJob(MeshError):
    """A job id with no job (never started, or expired and pruned)."""


class NoActiveVersion(MeshError):
    """An app with nothing activated yet."""


class AppVersions:
    """Compiled app versions, loaded from ``mesh.app_versions`` once each (they never change)."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], CompiledApp] = {}

    def get(self, conn: Connection, app: str, version: str) -> CompiledApp:
        key = (app, version)
        compiled = self._compiled.get(key)
        if compiled is None:
            row = conn.execute(
                query("manifest_of_version"), {"app": app, "version": version}
            ).fetchone()
            if row is None:
                raise WorkflowError(f"version {version!r} of app {app!r} is not deployed")
            compiled = CompiledApp(msgspec.json.decode(row[0], type=Manifest))
            self._compiled[key] = compiled
        return compiled

    def active_from(self, conn: Connection, app: str, row: Any) -> CompiledApp:
        """The version named by a row of the ``active_version`` query, read in the caller's
        transaction (activation is one commit); None: there is no active version."""
        if row is None:
            raise no_active_version(app)
        return self.get(conn, app, row[0])


def no_active_version(app: str) -> NoActiveVersion:
    return NoActiveVersion(
        f"app {app!r} has no active version: run `mesh deploy PATH` and "
        "`mesh activate VERSION` first"
    )


@dataclass(frozen=True, slots=True)
class Delivery:
    message: EngineMessage
    claim: StreamClaim | None = None


@dataclass(slots=True)
class Result:
    outcome: str
    """applied, duplicate, stale, finished, or refused (see ``error``)."""
    job_id: str = ""
    error: MeshError | None = None


@dataclass(slots=True)
class BatchReport:
    results: list[Result] = field(default_factory=list)
    lost: int = 0
    """Claims whose lease was gone when the batch ran (another consumer has them)."""
    taken: set[int] = field(default_factory=set)
    """Ids of the claims this batch acked (the rest were lost)."""
    next_claims: list[StreamClaim] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NextClaim:
    stream: str
    limit: int
    lease: float
    max_attempts: int = DEFAULT_ATTEMPTS
    """For messages that carry no retry policy (the consumer's policy)."""


class _KeyTaken(Exception):
    """A new job's key was inserted by a concurrent transaction: run the batch again."""


def process(
    conn: Connection,
    app: str,
    versions: AppVersions,
    deliveries: Sequence[Delivery],
    *,
    owner: str = "",
    next_claim: NextClaim | None = None,
    new_id: Callable[[], str] = new_message_id,
) -> BatchReport:
    """Handle ``deliveries`` in one transaction (retried whole on a deadlock or a key race).

    The transaction is pipelined: BEGIN travels with the first statements and COMMIT with the
    last, so a batch of responses takes two round trips (ack, locks and reads; then writes,
    next claim and commit) and a batch of starts three (the insert's ids are read between).
    """
    for attempt in range(5):
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                report, claiming = _process(
                    conn, app, versions, deliveries, owner, next_claim, new_id
                )
                conn.execute("COMMIT")
            if claiming is not None:
                report.next_claims = [StreamClaim(*row) for row in claiming.fetchall()]
            return report
        except (_KeyTaken, psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            _roll_back(conn)
            if attempt == 4:
                raise
        except BaseException:
            _roll_back(conn)
            raise
    raise AssertionError("unreachable")


def _roll_back(conn: Connection) -> None:
    """End a transaction that failed midway. A connection that died needs nothing, and its
    error must not hide the one that ended the transaction (the pool discards it)."""
    if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")


def _process(
    conn: Connection,
    app: str,
    versions: AppVersions,
    deliveries: Sequence[Delivery],
    owner: str,
    next_claim: NextClaim | None,
    new_id: Callable[[], str],
) -> tuple[BatchReport, Cursor | None]:
    report = BatchReport()
    now = time.time()
    claimed = [d.claim for d in deliveries if d.claim is not None]
    wanted: dict[str, set[str]] = {}
    for delivery in deliveries:
        message = delivery.message
        if isinstance(message, ActivityResponse | Resume):
            wanted.setdefault(message.job_id, set()).update(lineage(message.dimension))
        elif isinstance(message, InterruptJob):
            wanted.setdefault(message.job_id, set()).add("")
    # One round trip: the fenced ack, the active version (for starts), the locks of the jobs
    # the messages name and then their state (read under the locks). A lost claim's job is
    # locked and read too, and left alone.
    with conn.pipeline():
        taking = (
            conn.execute(query("take_claims"), fence_params(owner, claimed)) if claimed else None
        )
        reading = (
            conn.execute(query("active_version"), {"app": app})
            if any(isinstance(d.message, StartJob) for d in deliveries)
            else None
        )
        locking = rows.send_lock_jobs(
            conn, app, {d.message.job_id for d in deliveries if not isinstance(d.message, StartJob)}
        )
        loading = rows.send_load_details(conn, app, wanted)
    jobs = rows.read_locked_jobs(app, locking)
    rows.read_details(jobs, loading)
    taken: set[int] = set()
    if taking is not None:
        taken = report.taken = {row[0] for row in taking.fetchall()}
        report.lost = len(claimed) - len(taken)
    live = [d for d in deliveries if d.claim is None or d.claim.id in taken]

    starts = [d for d in live if isinstance(d.message, StartJob)]
    active: CompiledApp | None = None
    planned: dict[int, tuple[str, bool]] = {}
    entities: dict[int, str | None] = {}
    refused: dict[int, MeshError] = {}
    if starts:
        assert reading is not None
        active = versions.active_from(conn, app, reading.fetchone())
        engine = Engine(active, now=now, new_id=new_id)
        for index, delivery in enumerate(live):
            message = delivery.message
            if not isinstance(message, StartJob):
                continue
            try:
                graph = active.graph(message.topic)
                if graph is None:
                    raise UnknownTopic(
                        f"no graph of app {app!r} (version {active.version}) subscribes to "
                        f"{message.topic!r}; subscribed: {', '.join(sorted(active.graphs))}"
                    )
                engine.check_input(graph, message.data)
                key, entity, chosen = engine.plan_start(graph, message.data)
                if message.job_id:
                    key, chosen = message.job_id, bool(message.parent is None)
                validate_job_id(key)
                planned[index] = (key, chosen)
                entities[index] = entity
            except (UnknownTopic, InputInvalid, WorkflowError, InvalidIdentifier) as error:
                refused[index] = error

    # Chosen ids may be taken: lock them to know. Fresh random ids cannot be.
    jobs.update(
        rows.lock_jobs(
            conn, app, {key for key, chosen in planned.values() if chosen and key not in jobs}
        )
    )

    created: list[JobState] = []
    outgoing: list[Outgoing] = []
    for index, delivery in enumerate(live):
        message = delivery.message
        if isinstance(message, StartJob):
            plan = planned.get(index)
            result = _start(
                jobs,
                created,
                message,
                (plan[0], entities[index]) if plan else None,
                refused.get(index),
                active,
                now,
                new_id,
            )
            if result.outcome == "refused" and message.parent is not None:
                outgoing.append(_refusal_to_parent(message, result.error, new_id, now))
            report.results.append(result)
            continue
        key = message.job_id
        job = jobs.get(key)
        if job is None:
            if delivery.claim is None and isinstance(message, InterruptJob):
                report.results.append(
                    Result("refused", key, UnknownJob(f"no job {key!r} in app {app!r}"))
                )
            else:
                report.results.append(Result("stale", key))
            continue
        engine = Engine(versions.get(conn, app, job.version), now=now, new_id=new_id)
        report.results.append(Result(engine.apply(job, message), key))

    if created:
        inserted = rows.insert_jobs(conn, created)
        if len(inserted) != len(created):
            raise _KeyTaken()  # taken since we looked: run again (it is a duplicate then)
    touched = list(jobs.values())
    # Sent without waiting: they travel with the COMMIT (run_commands waits only when a hook
    # registration's result is needed).
    rows.save_jobs(conn, touched)
    outgoing.extend(o for job in touched for o in job.outgoing)
    outgoing.extend(rows.run_commands(conn, touched, new_id, now))
    if outgoing:
        conn.execute(query("enqueue"), enqueue_params(outgoing))
    claiming = None
    if next_claim is not None:
        claiming = conn.execute(
            query("claim"),
            claim_params(
                app,
                next_claim.stream,
                owner,
                next_claim.limit,
                next_claim.lease,
                max_attempts=next_claim.max_attempts,
            ),
        )
    return report, claiming


def _start(
    jobs: dict[str, JobState],
    created: list[JobState],
    message: StartJob,
    plan: tuple[str, str | None] | None,
    error: MeshError | None,
    active: CompiledApp | None,
    now: float,
    new_id: Callable[[], str],
) -> Result:
    if error is not None or plan is None or active is None:
        return Result("refused", message.job_id, error)
    key, entity = plan
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
        entity=entity,
        status="running",
        semaphore=0,
        parent=message.parent,
        created_at=now,
        created=True,
        changed=True,
    )
    try:
        Engine(active, now=now, new_id=new_id).start(
            job, graph, message.data, pending=message.pending
        )
    except WorkflowError as failure:
        return Result("refused", key, failure)
    jobs[key] = job
    created.append(job)
    return Result("applied", key)


def _refusal_to_parent(
    message: StartJob, error: MeshError | None, new_id: Callable[[], str], now: float
) -> Outgoing:
    parent = message.parent
    assert parent is not None
    code = (
        409 if isinstance(error, DuplicateJob) else 400 if isinstance(error, InputInvalid) else 500
    )
    data = {"error": {"message": str(error), "type": type(error).__name__, "code": code}}
    return to_parent(message.app, parent, code, data, message_id=new_id(), now=now)
