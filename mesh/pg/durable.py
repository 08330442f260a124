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
from typing import Any, NamedTuple

import msgspec

from mesh.errors import DuplicateJob, NondeterminismError
from mesh.model.durable.calls import Call, Failure, Recorded
from mesh.model.durable.plan import (
    CANCEL,
    CHILD,
    SIGNAL,
    StepPlan,
    Workflow,
    plan_outcome,
    plan_step,
    workflow_stream,
)
from mesh.model.durable.resident import ResidentRuns
from mesh.model.durable.run import Progress, WorkflowInfo, WorkflowRun
from mesh.model.engine.effects import announcement, announcement_payloads
from mesh.model.ids import job_channel, new_guid, new_message_id, validate_job_id
from mesh.model.limits import check_value
from mesh.model.messages import EngineMessage, Resume, StartJob, encode
from mesh.model.outcomes import Outgoing
from mesh.pg.database import Connection
from mesh.pg.queries import query
from mesh.pg.streams import StreamClaim, claim_params, enqueue_params, fence_params

WorkflowFunction = Callable[..., Coroutine[Any, Any, Any]]

_encode = msgspec.json.Encoder().encode

SIGNALS = "$signals"
"""The data dimension where signals wait for their condition."""


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
    with conn.transaction():
        start_message = _insert(conn, app, key, name, list(args), task_queue, parent=None)
        if start_message is None:
            raise DuplicateJob(
                f"workflow id {key!r} is taken in app {app!r} (until that job expires); "
                "choose another id, or get a handle to the running one"
            )
        conn.execute(query("enqueue"), enqueue_params([start_message]))
    return key


def _insert(
    conn: Connection,
    app: str,
    key: str,
    name: str,
    args: list[Any],
    task_queue: str,
    *,
    parent: dict[str, Any] | None,
) -> Outgoing | None:
    """Insert a workflow's job; the message that starts it, or None when the id is taken."""
    gid = new_guid()
    row = conn.execute(
        query("durable_start"),
        {
            "app": app,
            "key": key,
            "gid": gid,
            "name": name,
            "args": _encode(args).decode(),
            "task_queue": workflow_stream(task_queue),
            "parent": _encode(parent).decode() if parent else None,
        },
    ).fetchone()
    return None if row is None else _start_message(app, key, gid, task_queue)


def signal(conn: Connection, app: str, workflow_id: str, signal_id: str, data: Any) -> bool:
    """Send ``data`` as the signal ``signal_id`` to a running workflow; False if there is
    none by that id. A signal its workflow does not wait for yet waits for it."""
    validate_job_id(workflow_id)
    check_value(data, "the signal data")
    message = _signal_message(conn, app, workflow_id, signal_id, data)
    if message is None:
        return False
    conn.execute(query("enqueue"), enqueue_params([message]))
    return True


def cancel(conn: Connection, app: str, workflow_id: str) -> bool:
    """Ask a running workflow to stop: it sees :class:`WorkflowCancelled` at its next
    durable call (at once, if it waits for one). False if there is none by that id."""
    validate_job_id(workflow_id)
    row = conn.execute(query("durable_target"), {"app": app, "key": workflow_id}).fetchone()
    if row is None:
        return False
    gid, task_queue = row
    message = Resume(
        id=new_message_id(),
        app=app,
        kind=CANCEL,
        job_id=workflow_id,
        gid=gid,
        activity_id="",
        dimension="",
    )
    conn.execute(query("enqueue"), enqueue_params([Outgoing(app, task_queue, encode(message))]))
    return True


def _signal_message(
    conn: Connection, app: str, workflow_id: str, signal_id: str, data: Any
) -> Outgoing | None:
    row = conn.execute(query("durable_target"), {"app": app, "key": workflow_id}).fetchone()
    if row is None:
        return None
    gid, task_queue = row
    message = Resume(
        id=new_message_id(),
        app=app,
        kind=SIGNAL,
        job_id=workflow_id,
        gid=gid,
        activity_id=signal_id,
        dimension="",
        data=data,
    )
    return Outgoing(app, task_queue, encode(message))


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


class WorkflowRow(NamedTuple):
    """A workflow's job as ``durable_lock_jobs`` reads it (under its lock)."""

    id: int
    key: str
    gid: str
    name: str
    status: str
    cycles: int
    args: Any
    task_queue: str
    created_at: float
    parent: Any
    signals: Any
    """signal id -> the data of signals nobody waited for yet, oldest first."""


@dataclass
class _Writes:
    calls: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Job id -> its row as the batch leaves it (one UPDATE may set a row only once)."""
    data: dict[tuple[int, str, str], Any] = field(default_factory=dict)
    """(job id, dimension, field) -> the value the batch leaves there."""
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
            found = conn.execute(query("durable_lock_jobs"), {"app": app, "keys": keys})
            jobs = {row.key: row for row in map(WorkflowRow._make, found)}
            for message in live:
                row = jobs.get(message.job_id)
                if row is None or row.status != "running":
                    continue  # unknown, or ended: nothing to do
                touched.append(row.key)
                if _step(conn, app, runs, row, message, writes):
                    report.applied += 1
                    jobs[row.key] = _after(row, writes)
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


def _after(row: WorkflowRow, writes: _Writes) -> WorkflowRow:
    """The job's row as the step left it (a later message of the batch sees it)."""
    update = writes.jobs.get(row.id)
    if update is None:
        return row
    args = writes.data.get((row.id, "", "args"), row.args)
    signals = dict(row.signals or {})
    signals.update({f: v for (i, d, f), v in writes.data.items() if i == row.id and d == SIGNALS})
    return row._replace(
        gid=update["gid"],
        status=update["status"],
        cycles=update["cycles"],
        args=args,
        signals=signals,
    )


def _step(
    conn: Connection,
    app: str,
    runs: Runs,
    row: WorkflowRow,
    message: EngineMessage,
    writes: _Writes,
) -> bool:
    """Apply one message to its workflow; False when it changed nothing."""
    job_id, key, gid, cycles = row.id, row.key, row.gid, row.cycles
    workflow = Workflow(app=app, key=key, gid=gid, task_queue=row.task_queue)
    is_start = isinstance(message, StartJob)
    if isinstance(message, StartJob) and (message.data or {}).get("gid") != gid:
        return False  # the start of an earlier generation
    now = time.time()
    try:
        run = _run_of(conn, runs, row, writes, replay=not is_start)
        if is_start and (run.history or key in writes.runs):
            return False  # started already: a duplicate start
        plan = plan_step(
            run, workflow, None if is_start else message, now=now, new_id=new_message_id
        )
        writes.runs[key] = run
        if plan.duplicate:
            writes.kept.append((run, cycles))
            return False
        _perform_effects(conn, run, workflow, plan, row, writes, now)
    except Exception as error:  # the workflow cannot go on: it fails with the reason
        _end(writes, app, row, "failed", _error(error))
        return True
    _record(writes, job_id, gid, plan, now)
    _conclude(writes, app, run, row, plan.progress)
    return True


def _run_of(
    conn: Connection, runs: Runs, row: WorkflowRow, writes: _Writes, *, replay: bool
) -> WorkflowRun:
    """The workflow's run: moved earlier in this batch, resident (if this node made the
    workflow's last step), or rebuilt from its recorded calls (and replayed, unless the
    message is its start)."""
    key, gid = row.key, row.gid
    run = writes.runs.get(key)
    if run is not None:
        return run
    with runs.lock:
        run = runs.resident.take(key)
    if run is not None and run.info.run_id == gid and run.applied == row.cycles:
        return run
    function = runs.functions.get(row.name)
    if function is None:
        raise LookupError(f"no workflow function {row.name!r} runs on this task queue")
    info = WorkflowInfo(key, row.name, row.task_queue, started_at=row.created_at, run_id=gid)
    run = WorkflowRun(function, list(row.args or []), info, _history(conn, row.id, gid))
    if replay:
        replayed = run.start()
        if replayed.calls or replayed.finished:
            raise NondeterminismError(
                f"replaying workflow {key!r} made calls its recorded history does not hold"
            )
    return run


def _perform_effects(
    conn: Connection,
    run: WorkflowRun,
    workflow: Workflow,
    plan: StepPlan,
    row: WorkflowRow,
    writes: _Writes,
    now: float,
) -> None:
    """Carry out the calls the database performs (signals, children, conditions a signal
    already waits for); those that complete at once move the run on, which may make more."""
    before: dict[str, list[Any]] = row.signals or {}
    signals = {signal_id: list(queue) for signal_id, queue in before.items()}
    if plan.buffered is not None:
        signal_id, data = plan.buffered
        signals.setdefault(signal_id, []).append(data)
    done = 0
    while done < len(plan.effects):
        position, call = plan.effects[done]
        done += 1
        outcome = _effect(conn, workflow, position, call, signals, writes, now)
        if outcome is not None:
            known = run.history[position]
            finished = msgspec.structs.replace(known, done=True, at=now, **outcome)
            plan_outcome(plan, run, workflow, position, finished, now=now, new_id=new_message_id)
    for signal_id, queue in signals.items():
        if queue != before.get(signal_id):
            writes.data[(row.id, SIGNALS, signal_id)] = queue


def _effect(
    conn: Connection,
    workflow: Workflow,
    position: int,
    call: Call,
    signals: dict[str, list[Any]],
    writes: _Writes,
    now: float,
) -> dict[str, Any] | None:
    """Perform one call in the database; its outcome fields if it completed at once."""
    app = workflow.app
    if call.kind == "condition":
        waiting = signals.get(call.name)
        return {"result": {"data": waiting.pop(0)}} if waiting else None
    if call.kind == "signal":
        message = _signal_message(conn, app, call.workflow_id, call.name, call.args[0])
        if message is None:
            failure = Failure("UnknownJob", f"no running workflow {call.workflow_id!r}", 404)
            return {"error": failure}
        writes.outgoing.append(message)
        return {}
    child = call.workflow_id or f"{workflow.key}-{position}"
    parent = None
    if call.kind == "child":
        parent = {
            "workflow_id": workflow.key,
            "gid": workflow.gid,
            "position": position,
            "task_queue": workflow.task_queue,
        }
    queue = call.task_queue or workflow.task_queue
    start_message = _insert(conn, app, child, call.name, call.args, queue, parent=parent)
    if start_message is None:
        return {"error": Failure("DuplicateJob", f"workflow id {child!r} is taken", 409)}
    writes.outgoing.append(start_message)
    return {"result": child} if call.kind == "start_child" else None


def _conclude(
    writes: _Writes, app: str, run: WorkflowRun, row: WorkflowRow, progress: Progress
) -> None:
    """Write how the step left the workflow: going on, continued as new, or ended."""
    job_id, key, gid, cycles = row.id, row.key, row.gid, row.cycles
    if not progress.finished:
        _update(writes, job_id, cycles + 1, "running", gid, None)
        writes.kept.append((run, cycles + 1))
        return
    writes.dropped.append(key)
    if progress.continue_with is not None:
        fresh_gid = new_guid()
        _update(writes, job_id, 0, "running", fresh_gid, None)
        writes.data[(job_id, "", "args")] = list(progress.continue_with)
        writes.outgoing.append(_start_message(app, key, fresh_gid, row.task_queue))
    elif progress.failure is not None:
        _end(writes, app, row, "failed", _failure_error(progress.failure))
    elif progress.cancelled:
        error = {"message": "cancelled", "type": "WorkflowCancelled", "code": 410}
        _end(writes, app, row, "interrupted", error)
    else:
        writes.data[(job_id, "", "result")] = progress.result
        _end(writes, app, row, "done", None, result=progress.result)


def _record(writes: _Writes, job_id: int, gid: str, plan: StepPlan, now: float) -> None:
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


def _end(
    writes: _Writes,
    app: str,
    row: WorkflowRow,
    status: str,
    error: dict[str, Any] | None,
    *,
    result: Any = None,
) -> None:
    """The workflow ended: its row, its announcement, and its parent's answer (a child)."""
    parent = row.parent
    _update(writes, row.id, row.cycles + 1, status, row.gid, error)
    writes.dropped.append(row.key)
    writes.announced.append(announcement(row.name, row.key, status))
    if isinstance(parent, dict):
        answer = Resume(
            id=new_message_id(),
            app=app,
            kind=CHILD,
            job_id=parent["workflow_id"],
            gid=parent["gid"],
            activity_id=str(parent["position"]),
            dimension="",
            data={"result": result} if error is None else {"error": error},
        )
        writes.outgoing.append(Outgoing(app, parent["task_queue"], encode(answer)))


def _rows(values: list[dict[str, Any]]) -> str:
    return _encode(values).decode()


def _write(conn: Connection, app: str, writes: _Writes) -> None:
    # Calls first: a call that completed at once is recorded, then its outcome.
    if writes.calls:
        conn.execute(query("durable_record_calls"), {"rows": _rows(writes.calls)})
    if writes.outcomes:
        conn.execute(query("durable_record_outcomes"), {"rows": _rows(writes.outcomes)})
    if writes.data:
        data = [
            {"job_id": job_id, "dimension": dimension, "field": name, "value": value}
            for (job_id, dimension, name), value in writes.data.items()
        ]
        conn.execute(query("save_attributes"), {"rows": _rows(data)})
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
