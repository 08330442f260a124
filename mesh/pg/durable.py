"""Workflow transactions: messages of a task queue's workflow stream, in one commit.

:func:`process` takes the batch's claims (the fenced ack first: a lost lease means no
effects), locks the workflows the messages name in id order, and for each message finds the
workflow's run: resident in this node when it holds the run that made the workflow's last step
(``jobs.cycles`` tells), else rebuilt from the recorded calls and replayed. The pure
:func:`~mesh.model.durable.plan.plan_step` decides; this module writes what it decided (the
outcome, the new calls, the requests and wakes, the workflow's end and its announcement) and
claims the next batch, all in one transaction. If the transaction fails, the runs it advanced
are dropped from memory (their next message replays them).

:func:`start` begins a workflow: its job, its data and the message that runs it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from mesh.errors import DuplicateJob, NondeterminismError
from mesh.model.durable.calls import Failure, Recorded
from mesh.model.durable.plan import StepPlan, Workflow, plan_step, workflow_stream
from mesh.model.durable.resident import ResidentRuns
from mesh.model.durable.run import WorkflowInfo, WorkflowRun
from mesh.model.engine.effects import announcement, announcement_payloads
from mesh.model.ids import job_channel, new_guid, new_message_id, validate_job_id
from mesh.model.limits import check_value
from mesh.model.messages import EngineMessage, StartJob, encode
from mesh.model.outcomes import Outgoing
from mesh.pg.database import Connection
from mesh.pg.queries import query
from mesh.pg.streams import StreamClaim, claim_params, enqueue_params, fence_params

WorkflowFunction = Callable[..., Coroutine[Any, Any, Any]]

_encode = msgspec.json.Encoder().encode


def start(
    conn: Connection,
    app: str,
    name: str,
    args: Sequence[Any],
    *,
    task_queue: str,
    workflow_id: str = "",
) -> str:
    """Start the workflow ``name`` with ``args`` on ``task_queue``; its id. A taken
    ``workflow_id`` is refused (:class:`DuplicateJob`), having written nothing."""
    key = validate_job_id(workflow_id) if workflow_id else new_guid()
    check_value(list(args), "the workflow's arguments")
    gid = new_guid()
    with conn.transaction():
        row = conn.execute(
            query("durable_start"),
            {
                "app": app,
                "key": key,
                "gid": gid,
                "name": name,
                "args": _encode(list(args)).decode(),
                "task_queue": workflow_stream(task_queue),
            },
        ).fetchone()
        if row is None:
            raise DuplicateJob(
                f"workflow id {key!r} is taken in app {app!r} (until that job expires); "
                "choose another id, or get a handle to the running one"
            )
        conn.execute(query("enqueue"), enqueue_params([_start_message(app, key, gid, task_queue)]))
    return key


def _start_message(app: str, key: str, gid: str, task_queue: str) -> Outgoing:
    message = StartJob(id=new_message_id(), app=app, topic="", data={"gid": gid}, job_id=key)
    return Outgoing(app, workflow_stream(task_queue), encode(message))


@dataclass
class DurableReport:
    taken: set[int] = field(default_factory=set)
    lost: int = 0
    applied: int = 0
    ended: int = 0
    next_claims: list[StreamClaim] = field(default_factory=list)


@dataclass(frozen=True)
class Runs:
    """A node's workflow functions by name and its resident runs (shared by the database
    threads: the dict under ``lock``, each run under its job's row lock)."""

    functions: Mapping[str, WorkflowFunction]
    resident: ResidentRuns
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Writes:
    calls: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Job id -> its row as the batch leaves it (one UPDATE may set a row only once)."""
    data: list[dict[str, Any]] = field(default_factory=list)
    outgoing: list[Outgoing] = field(default_factory=list)
    announced: list[bytes] = field(default_factory=list)
    kept: list[tuple[WorkflowRun, int]] = field(default_factory=list)
    runs: dict[str, WorkflowRun] = field(default_factory=dict)
    """The runs this batch moved, by workflow id: a later message of the same workflow in
    the batch continues from them (the database has not seen their steps yet)."""
    dropped: list[str] = field(default_factory=list)


def process(
    conn: Connection,
    app: str,
    runs: Runs,
    deliveries: Sequence[tuple[EngineMessage, StreamClaim]],
    *,
    owner: str,
    next_claim: tuple[str, int, float, int] | None = None,
) -> DurableReport:
    """Handle ``deliveries`` (messages with their claims) in one transaction."""
    report = DurableReport()
    writes = _Writes()
    touched: list[str] = []
    try:
        with conn.transaction():
            claims = [claim for _, claim in deliveries]
            taken = {r[0] for r in conn.execute(query("take_claims"), fence_params(owner, claims))}
            report.taken, report.lost = taken, len(claims) - len(taken)
            live = [message for message, claim in deliveries if claim.id in taken]
            keys = sorted({message.job_id for message in live})
            jobs = {
                row[1]: row
                for row in conn.execute(query("durable_lock_jobs"), {"app": app, "keys": keys})
            }
            for message in live:
                row = jobs.get(message.job_id)
                if row is None or row[4] != "running":
                    continue  # unknown, or ended: nothing to do
                touched.append(row[1])
                if _step(conn, app, runs, row, message, writes):
                    report.applied += 1
                    jobs[row[1]] = _after(row, writes)
            _write(conn, app, writes)
            report.ended = len(writes.announced)
            cursor = None
            if next_claim is not None:
                stream, limit, lease, attempts = next_claim
                cursor = conn.execute(
                    query("claim"),
                    claim_params(app, stream, owner, limit, lease, max_attempts=attempts),
                )
        if cursor is not None:
            report.next_claims = [StreamClaim(*row) for row in cursor.fetchall()]
    except BaseException:
        with runs.lock:
            for key in touched:
                runs.resident.drop(key)
        raise
    with runs.lock:
        for run, applied in writes.kept:
            run.applied = applied
            runs.resident.keep(run)
        for key in writes.dropped:
            runs.resident.drop(key)
    return report


def _after(row: tuple[Any, ...], writes: _Writes) -> tuple[Any, ...]:
    """The job's row as the step left it (a later message of the batch sees it)."""
    update = writes.jobs[row[0]]
    return (row[0], row[1], update["gid"], row[3], update["status"], update["cycles"], *row[6:])


def _step(
    conn: Connection,
    app: str,
    runs: Runs,
    row: tuple[Any, ...],
    message: EngineMessage,
    writes: _Writes,
) -> bool:
    """Apply one message to its workflow; False when it changed nothing."""
    job_id, key, gid, name, _, cycles, args, task_queue, created_at = row
    workflow = Workflow(app=app, key=key, gid=gid, task_queue=task_queue)
    is_start = isinstance(message, StartJob)
    if isinstance(message, StartJob) and (message.data or {}).get("gid") != gid:
        return False  # the start of an earlier generation
    run = writes.runs.get(key)
    if run is None:
        with runs.lock:
            run = runs.resident.take(key)
        if run is not None and (run.info.run_id != gid or run.applied != cycles):
            run = None  # another node moved the workflow on: replay it
    fresh = run is None
    now = time.time()
    try:
        if fresh:
            function = runs.functions.get(name)
            if function is None:
                raise LookupError(f"no workflow function {name!r} runs on this task queue")
            info = WorkflowInfo(key, name, task_queue, started_at=created_at, run_id=gid)
            run = WorkflowRun(function, list(args or []), info, _history(conn, job_id, gid))
            if not is_start:
                replay = run.start()
                if replay.calls or replay.finished:
                    raise NondeterminismError(
                        f"replaying workflow {key!r} made calls the history does not hold"
                    )
        elif is_start:
            return False
        assert run is not None
        if is_start and run.history:
            return False  # started already: a duplicate start
        plan = plan_step(
            run, workflow, None if is_start else message, now=now, new_id=new_message_id
        )
    except Exception as error:  # the workflow cannot go on: it fails with the reason
        _end(writes, row, "failed", _error(error))
        return True
    writes.runs[key] = run
    if plan.duplicate:
        writes.kept.append((run, cycles))
        return False
    _record(writes, job_id, gid, plan, now)
    progress = plan.progress
    if not progress.finished:
        _update(writes, job_id, cycles + 1, "running", gid, None)
        writes.kept.append((run, cycles + 1))
        return True
    writes.dropped.append(key)
    if progress.continue_with is not None:
        fresh_gid = new_guid()
        _update(writes, job_id, 0, "running", fresh_gid, None)
        writes.data.append(
            {
                "job_id": job_id,
                "dimension": "",
                "field": "args",
                "value": list(progress.continue_with),
            }
        )
        writes.outgoing.append(_start_message(app, key, fresh_gid, task_queue))
    elif progress.failure is not None:
        _end(writes, row, "failed", _failure_error(progress.failure))
    elif progress.cancelled:
        _end(
            writes,
            row,
            "interrupted",
            {"message": "cancelled", "type": "WorkflowCancelled", "code": 410},
        )
    else:
        writes.data.append(
            {"job_id": job_id, "dimension": "", "field": "result", "value": progress.result}
        )
        _end(writes, row, "done", None)
    return True


def _record(writes: _Writes, job_id: int, gid: str, plan: StepPlan, now: float) -> None:
    if plan.outcome is not None:
        position, outcome = plan.outcome
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
            }
        )
    writes.outgoing.extend(plan.outgoing)


def _update(
    writes: _Writes, job_id: int, cycles: int, status: str, gid: str, error: dict[str, Any] | None
) -> None:
    writes.jobs[job_id] = {
        "id": job_id,
        "cycles": cycles,
        "status": status,
        "gid": gid,
        "error": error,
    }


def _end(writes: _Writes, row: tuple[Any, ...], status: str, error: dict[str, Any] | None) -> None:
    job_id, key, gid, name, _, cycles = row[:6]
    _update(writes, job_id, cycles + 1, status, gid, error)
    writes.dropped.append(key)
    writes.announced.append(announcement(name, key, status))


def _rows(values: list[dict[str, Any]]) -> str:
    return _encode(values).decode()


def _write(conn: Connection, app: str, writes: _Writes) -> None:
    if writes.outcomes:
        conn.execute(query("durable_record_outcomes"), {"rows": _rows(writes.outcomes)})
    if writes.calls:
        conn.execute(query("durable_record_calls"), {"rows": _rows(writes.calls)})
    if writes.data:
        conn.execute(query("save_attributes"), {"rows": _rows(writes.data)})
    if writes.jobs:
        conn.execute(query("durable_update_jobs"), {"rows": _rows(list(writes.jobs.values()))})
    if writes.outgoing:
        conn.execute(query("enqueue"), enqueue_params(writes.outgoing))
    payloads = announcement_payloads(writes.announced)
    if payloads:
        channels = [job_channel(app)] * len(payloads)
        conn.execute(query("announce"), {"channels": channels, "payloads": payloads})


def _history(conn: Connection, job_id: int, gid: str) -> dict[int, Recorded]:
    history: dict[int, Recorded] = {}
    for position, kind, name, shape, done, result, error, at in conn.execute(
        query("durable_history"), {"job_id": job_id, "gid": gid}
    ):
        failure = msgspec.convert(error, Failure) if error else None
        history[position] = Recorded(
            kind=kind, name=name, shape=shape, done=done, result=result, error=failure, at=at
        )
    return history


def _failure_error(failure: Failure) -> dict[str, Any]:
    return {"message": failure.message, "type": failure.type, "code": failure.code}


def _error(error: Exception) -> dict[str, Any]:
    return {"message": str(error), "type": type(error).__name__, "code": 500}
