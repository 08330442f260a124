"""The rows of a workflow batch: the workflows as locked and read, what the batch writes
(collected while its messages are applied, written together at the end), and the recorded
calls a replay starts from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec

from mesh.model.outcomes import Outgoing
from mesh.model.quorum import JobNotices
from mesh.model.workflow.calls import Failure, Recorded
from mesh.model.workflow.plan import StepPlan
from mesh.model.workflow.run import WorkflowRun
from mesh.pg.database import Connection, Cursor
from mesh.pg.eager import Eager, enqueue_leased_params, split_eager
from mesh.pg.jobs import announce, withdraw
from mesh.pg.queries import query
from mesh.pg.streams import StreamClaim, enqueue_params, fence_params

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

SIGNALS = "$signals"
"""The data dimension where signals wait for their condition."""


class WorkflowRow(NamedTuple):
    """A workflow's job as ``durable_read_jobs`` reads it (after its lock)."""

    id: int
    key: str
    gid: str
    name: str
    status: str
    steps: int
    """Steps applied to the workflow (``jobs.applied_steps``): a node holding its run knows
    from it whether another node moved it on since."""
    args: Any
    task_queue: str
    created_at: float
    parent: Any
    signals: Any
    """signal id -> the data of signals nobody waited for yet, oldest first."""
    trace: str
    """The trace context the workflow's spans join ('' without telemetry)."""
    generation: int = 0
    """How many times the workflow continued as new."""
    started_at: float = 0.0
    """When the generation started: the job's creation, or the end of the generation
    before (``workflow.now()`` never goes back across ``continue_as_new``)."""


GENERATION = "generation"
"""The data field of a continued workflow: ``{"number": n, "started_at": seconds}``."""

GENERATIONS = "$generations"
"""The data dimension where the last :data:`KEPT_GENERATIONS` ended generations are
summarised (their calls are deleted when the next one starts)."""

KEPT_GENERATIONS = 10


def send_take_and_lock(
    conn: Connection, app: str, owner: str, claims: list[StreamClaim], keys: list[str]
) -> tuple[Cursor, Cursor]:
    """Send the fenced ack of ``claims`` with the lock of the workflows ``keys`` names, then
    the read of what a step needs of them (read both with :func:`read_locked`). In a
    pipeline both travel together; the read is a statement of its own, so it sees every
    commit made before the locks were granted."""
    params = {**fence_params(owner, claims), "app": app, "keys": keys}
    return conn.execute(query("workflow_lock_jobs"), params), conn.execute(
        query("workflow_read_jobs"), params
    )


def read_locked(sent: tuple[Cursor, Cursor]) -> tuple[set[int], dict[str, WorkflowRow]]:
    """The ids of the claims :func:`send_take_and_lock` took, and the workflows it locked,
    by key (a row the lock did not take, such as a job inserted between the two
    statements, is left out)."""
    locking, reading = sent
    taken: set[int] = set()
    locked: set[int] = set()
    for kind, id_ in locking.fetchall():
        (taken if kind == "taken" else locked).add(id_)
    rows: dict[str, WorkflowRow] = {}
    for id_, key, gid, name, status, steps, created_at, text, signals, trace in reading.fetchall():
        if id_ not in locked:
            continue
        data = _decode(text) if text else {}
        generation = data.get(GENERATION)
        number, started_at = 0, created_at
        if isinstance(generation, dict):
            number = int(generation.get("number", 0))
            started_at = float(generation.get("started_at") or created_at)
        rows[key] = WorkflowRow(
            id_,
            key,
            gid,
            name,
            status,
            steps,
            data.get("args"),
            data.get("task_queue") or "",
            created_at,
            data.get("parent"),
            _decode(signals) if signals else None,
            trace,
            number,
            started_at,
        )
    return taken, rows


@dataclass
class Writes:
    calls: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Job id -> its row as the batch leaves it (one UPDATE may set a row only once)."""
    data: dict[tuple[int, str, str], Any] = field(default_factory=dict)
    """(job id, dimension, field) -> the value the batch leaves there."""
    outgoing: list[Outgoing] = field(default_factory=list)
    announced: list[tuple[str, str, str]] = field(default_factory=list)
    """Workflows that ended: (name, key, status), for the job channel (and the quorum)."""
    withdrawn: list[dict[str, str]] = field(default_factory=list)
    """Workflows that ended early ({"key", "gid"}): their queued messages are withdrawn."""
    timers: list[dict[str, Any]] = field(default_factory=list)
    """Timers nothing waits for any more ({"key", "gid", "position"}; position None: every
    timer of that generation): a condition a signal answered, a generation that ended."""
    generations: list[dict[str, Any]] = field(default_factory=list)
    """Generations that continued as new: their calls are deleted, a summary is kept."""
    ended: list[tuple[WorkflowRow, str]] = field(default_factory=list)
    """Workflows that ended, with their status (for their spans, once committed)."""
    kept: list[tuple[WorkflowRun, int]] = field(default_factory=list)
    runs: dict[str, WorkflowRun] = field(default_factory=dict)
    """The runs this batch moved, by workflow id: a later message of the same workflow in
    the batch continues from them (the database has not seen their steps yet)."""
    dropped: list[str] = field(default_factory=list)


def after(row: WorkflowRow, writes: Writes) -> WorkflowRow:
    """The job's row as the step left it (a later message of the batch sees it)."""
    update = writes.jobs.get(row.id)
    if update is None:
        return row
    args = writes.data.get((row.id, "", "args"), row.args)
    signals = dict(row.signals or {})
    signals.update({f: v for (i, d, f), v in writes.data.items() if i == row.id and d == SIGNALS})
    generation = writes.data.get((row.id, "", GENERATION))
    return row._replace(
        gid=update["gid"],
        status=update["status"],
        steps=update["steps"],
        args=args,
        signals=signals,
        generation=generation["number"] if generation else row.generation,
        started_at=generation["started_at"] if generation else row.started_at,
    )


def continued(
    writes: Writes, row: WorkflowRow, run: WorkflowRun, args: list[Any], now: float
) -> None:
    """The generation of ``row`` ended by continuing as new with ``args``: the next one's
    data (its number, and its start, no earlier than anything this one saw), and this one's
    summary in place of its calls."""
    ended = max(run.now, now)
    writes.data[(row.id, "", "args")] = args
    writes.data[(row.id, "", GENERATION)] = {"number": row.generation + 1, "started_at": ended}
    writes.generations.append(
        {
            "job_id": row.id,
            "gid": row.gid,
            "number": row.generation,
            "forget": row.generation - KEPT_GENERATIONS,
            "summary": {
                "generation": row.generation,
                "gid": row.gid,
                "started_at": row.started_at,
                "ended_at": ended,
                "calls": run.position,
            },
        }
    )


def record(writes: Writes, job_id: int, key: str, gid: str, plan: StepPlan, now: float) -> None:
    for position, outcome in plan.outcomes:
        writes.outcomes.append(
            {
                "job_id": job_id,
                "gid": gid,
                "position": position,
                "result": outcome.result,
                "error": msgspec.to_builtins(outcome.error) if outcome.error else None,
                "at": outcome.at,
            }
        )
    for position, recorded, args in plan.calls:
        writes.calls.append(
            {
                "job_id": job_id,
                "gid": gid,
                "position": position,
                "kind": recorded.kind,
                "name": recorded.name,
                "shape": recorded.shape,
                "args": args,
                "done": recorded.done,
                "result": recorded.result,
                "error": None,
                "at": recorded.at or now,
                # A call is made after the outcome that led to it (stamped at ``now`` in
                # the same step): 10 µs later, so the timeline lists them in that order
                # (1 µs could round to the same microsecond: a float near 1.7e9 carries
                # about a quarter-microsecond).
                "made": now + 1e-5,
            }
        )
    writes.outgoing.extend(plan.outgoing)
    writes.outgoing.extend(plan.timers.values())
    for position in plan.answered:
        writes.timers.append({"key": key, "gid": gid, "position": str(position)})


def update(
    writes: Writes,
    job_id: int,
    steps: int,
    status: str,
    gid: str,
    error: dict[str, Any] | None,
    *,
    open_calls: int = 0,
) -> None:
    """The job's new state; ``open_calls``: the calls it waits for (HotMesh's semaphore,
    ``jobs.status``: 0 once it ended)."""
    writes.jobs[job_id] = {
        "id": job_id,
        "steps": steps,
        "status": status,
        "open": open_calls,
        "gid": gid,
        "error": error,
    }


def _rows(values: list[dict[str, Any]]) -> str:
    return _encode(values).decode()


def write(
    conn: Connection,
    app: str,
    writes: Writes,
    notices: JobNotices | None = None,
    *,
    eager: Eager | None = None,
    owner: str = "",
) -> Cursor | None:
    """Send the batch's writes (in a pipeline: nothing is waited for). ``eager``: messages
    for these streams are enqueued leased to ``owner``; the returned cursor yields their
    claims (see :func:`mesh.pg.eager.leased_claims`)."""
    leasing = None
    # Calls first: a call that completed at once is recorded, then its outcome.
    if writes.calls:
        conn.execute(query("workflow_record_calls"), {"rows": _rows(writes.calls)})
    if writes.outcomes:
        conn.execute(query("workflow_record_outcomes"), {"rows": _rows(writes.outcomes)})
    if writes.data:
        data = [
            {"job_id": job_id, "dimension": dimension, "field": name, "value": value}
            for (job_id, dimension, name), value in writes.data.items()
        ]
        conn.execute(query("save_attributes"), {"rows": _rows(data)})
    if writes.jobs:
        conn.execute(query("workflow_update_jobs"), {"rows": _rows(list(writes.jobs.values()))})
    if writes.outgoing:
        # A workflow that ended early has its queued messages withdrawn below: none of this
        # batch's may be running by then (rare: the batch goes the ordinary way).
        offers = eager if eager and not writes.withdrawn else {}
        normal, leased = split_eager(writes.outgoing, offers)
        if normal:
            conn.execute(query("enqueue"), enqueue_params(normal))
        if leased:
            leasing = conn.execute(query("enqueue_leased"), enqueue_leased_params(leased, owner))
    if writes.generations:
        conn.execute(query("workflow_generations_ended"), {"rows": _rows(writes.generations)})
    if writes.withdrawn:  # after the enqueue: this batch's own messages for them go too
        withdraw(conn, app, writes.withdrawn)
    if writes.timers:
        conn.execute(query("withdraw_timers"), {"app": app, "rows": _rows(writes.timers)})
    if writes.announced:
        announce(conn, {app: writes.announced}, notices)
    return leasing


def history(conn: Connection, job_id: int, gid: str) -> dict[int, Recorded]:
    history: dict[int, Recorded] = {}
    for position, kind, name, shape, done, result, error, at in conn.execute(
        query("workflow_history"), {"job_id": job_id, "gid": gid}
    ):
        failure = msgspec.convert(error, Failure) if error else None
        history[position] = Recorded(
            kind=kind, name=name, shape=shape, done=done, result=result, error=failure, at=at
        )
    return history


def waiting(conn: Connection, app: str) -> int:
    """How many of ``app``'s workflows wait for a signal."""
    row = conn.execute(query("workflow_waiting"), {"app": app}).fetchone()
    return int(row[0]) if row else 0
