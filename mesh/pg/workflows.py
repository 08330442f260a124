"""Workflow transactions: messages of a task queue's workflow stream, in one commit.

:func:`process` takes the batch's claims (the fenced ack first: a lost lease means no
effects), locks the workflows the messages name in id order, and for each message finds the
workflow's run: resident in this node when it holds the run that made the workflow's last step
(``jobs.applied_steps`` tells), else rebuilt from the recorded calls and replayed. The pure
:func:`~mesh.model.workflow.plan.plan_step` decides; this module writes what it decided (the
outcome, the new calls, the requests and wakes, the workflow's end and its announcement) and
claims the next batch, all in one transaction (:func:`mesh.pg.batch.transact`). If the
transaction fails, the runs it advanced are forgotten (their next message replays them): the
runs kept in memory are the runtime's (:class:`RunCache`).

Starting, signalling and cancelling a workflow are in :mod:`mesh.pg.workflow_messages`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from mesh import telemetry
from mesh.errors import NondeterminismError
from mesh.model.ids import new_guid, new_message_id
from mesh.model.messages import EngineMessage, Resume, StartJob
from mesh.model.quorum import JobNotices
from mesh.model.workflow.calls import Call, Failure, stored_time
from mesh.model.workflow.plan import (
    CANCEL,
    SIGNAL,
    TERMINATE,
    StepPlan,
    Workflow,
    child_answer,
    no_target,
    plan_outcome,
    plan_step,
    taken_id,
)
from mesh.model.workflow.run import Progress, WorkflowInfo, WorkflowRun
from mesh.pg import workflow_messages
from mesh.pg.batch import Delivery, NextClaim, transact
from mesh.pg.database import Connection, Cursor
from mesh.pg.eager import Eager, leased_claims
from mesh.pg.streams import StreamClaim
from mesh.pg.workflow_rows import (
    SIGNALS,
    WorkflowRow,
    Writes,
    after,
    continued,
    history,
    read_locked,
    record,
    send_take_and_lock,
    update,
    write,
)

WorkflowFunction = Callable[..., Coroutine[Any, Any, Any]]

_encode = msgspec.json.Encoder().encode


@dataclass
class WorkflowReport:
    taken: set[int] = field(default_factory=set)
    lost: int = 0
    applied: int = 0
    ended: int = 0
    next_claims: list[StreamClaim] = field(default_factory=list)
    failed: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    """Workflows the batch ended failed: (name, key, error)."""
    leased: dict[tuple[str, str], list[StreamClaim]] = field(default_factory=dict)
    """Messages enqueued leased to this node (eager dispatch), by (app, stream)."""


class RunCache(Protocol):
    """The workflow functions of a node and the runs it keeps in memory between steps, as a
    transaction uses them from a database thread (the node's implementation is
    :class:`mesh.runtime.workflows.ResidentCache`)."""

    def function(self, name: str) -> WorkflowFunction | None:
        """The workflow function registered under ``name``."""

    def take(self, key: str) -> WorkflowRun | None:
        """The run of workflow ``key`` kept in memory, if any (the caller holds the
        workflow's row lock)."""

    def committed(self, kept: Sequence[tuple[WorkflowRun, int]], dropped: Sequence[str]) -> None:
        """After a commit: keep these runs (each with the steps the workflow has applied
        now), forget these workflows."""

    def forget(self, keys: Sequence[str]) -> None:
        """After a rollback: the runs of these workflows moved on in memory only."""


def process(
    conn: Connection,
    app: str,
    runs: RunCache,
    deliveries: Sequence[Delivery],
    *,
    owner: str,
    next_claim: NextClaim | None = None,
    notices: JobNotices | None = None,
    eager: Eager | None = None,
) -> WorkflowReport:
    """Handle ``deliveries`` (messages with their claims: a workflow stream's, or an activity
    request's whose response is applied at its ack) in one transaction
    (:func:`mesh.pg.batch.transact`: two round trips for a batch of resident workflows).
    ``notices``: ended workflows are also told to the quorum (the app asked). ``eager``:
    requests for these streams are leased to this node as they are enqueued (eager
    dispatch)."""
    touched: list[str] = []

    def work(conn: Connection) -> tuple[WorkflowReport, Writes, Cursor | None]:
        touched.clear()
        report = WorkflowReport()
        writes = Writes()
        claims = [d.claim for d in deliveries if d.claim is not None]
        keys = sorted({d.message.job_id for d in deliveries})
        taken, jobs = read_locked(send_take_and_lock(conn, app, owner, claims, keys))
        report.taken, report.lost = taken, len(claims) - len(taken)
        live = [d.message for d in deliveries if d.claim is not None and d.claim.id in taken]
        for message in live:
            row = jobs.get(message.job_id)
            if row is None or row.status != "running":
                continue  # unknown, or ended: nothing to do
            touched.append(row.key)
            if _step(conn, app, runs, row, message, writes):
                report.applied += 1
                jobs[row.key] = after(row, writes)
        leasing = write(conn, app, writes, notices, eager=eager, owner=owner)
        report.ended = len(writes.announced)
        report.failed = [
            (row.name, row.key, writes.jobs.get(row.id, {}).get("error") or {})
            for row, status in writes.ended
            if status == "failed"
        ]
        return report, writes, leasing

    (report, writes, leasing), report_claims = transact(
        conn, app, owner, work, next_claim=next_claim, on_failure=lambda: runs.forget(touched)
    )
    report.next_claims = report_claims
    if leasing is not None:
        report.leased = leased_claims(leasing.fetchall())
    runs.committed(writes.kept, writes.dropped)
    _trace_ended(app, writes)
    return report


def _trace_ended(app: str, writes: Writes) -> None:
    """Spans of the workflows the committed batch ended (telemetry on)."""
    spans = telemetry.current()
    if not spans.enabled:
        return
    for row, status in writes.ended:
        parent_trace = row.trace if isinstance(row.parent, dict) else ""
        spans.job_ended(
            app, row.name, row.key, status, row.trace, row.created_at, parent_trace=parent_trace
        )


def _step(
    conn: Connection,
    app: str,
    runs: RunCache,
    row: WorkflowRow,
    message: EngineMessage,
    writes: Writes,
) -> bool:
    """Apply one message to its workflow; False when it changed nothing."""
    job_id, key, gid, steps = row.id, row.key, row.gid, row.steps
    workflow = Workflow(app=app, key=key, gid=gid, task_queue=row.task_queue, trace=row.trace)
    is_start = isinstance(message, StartJob)
    if isinstance(message, StartJob) and (message.data or {}).get("gid") != gid:
        return False  # the start of an earlier generation
    now = stored_time(time.time())  # what a replay reads back: the same value
    if isinstance(message, Resume) and message.kind == TERMINATE:
        reason = (message.data or {}).get("reason") if isinstance(message.data, dict) else None
        error = {"message": str(reason or "terminated"), "type": "WorkflowTerminated", "code": 410}
        _end(writes, app, row, "interrupted", error)
        return True
    try:
        run = _run_of(conn, runs, row, writes, replay=not is_start)
        if run is None:
            return _before_start(app, row, message, writes)
        if is_start and (run.history or key in writes.runs):
            return False  # started already: a duplicate start
        plan = plan_step(
            run, workflow, None if is_start else message, now=now, new_id=new_message_id
        )
        writes.runs[key] = run
        if plan.duplicate:
            writes.kept.append((run, steps))
            return False
        _perform_effects(conn, run, workflow, plan, row, writes, now)
    except Exception as error:  # the workflow cannot go on: it fails with the reason
        _end(writes, app, row, "failed", _error(error))
        return True
    record(writes, job_id, key, gid, plan, now)
    _conclude(writes, app, run, row, plan.progress, now)
    return True


def _run_of(
    conn: Connection, runs: RunCache, row: WorkflowRow, writes: Writes, *, replay: bool
) -> WorkflowRun | None:
    """The workflow's run: moved earlier in this batch, resident (if this node made the
    workflow's last step), or rebuilt from its recorded calls (and replayed, unless the
    message is its start). None: a message came before the start ran (a signal, a cancel)."""
    key, gid = row.key, row.gid
    run = writes.runs.get(key)
    if run is not None:
        return run
    run = runs.take(key)
    if run is not None and run.info.run_id == gid and run.applied == row.steps:
        return run
    function = runs.function(row.name)
    if function is None:
        raise LookupError(f"no workflow function {row.name!r} runs on this task queue")
    info = WorkflowInfo(
        key,
        row.name,
        row.task_queue,
        generation=row.generation,
        started_at=row.started_at,
        run_id=gid,
    )
    # A generation records its first calls with its first step.
    recorded = history(conn, row.id, gid) if row.steps else {}
    if replay and not recorded:
        return None  # its start has not run yet
    run = WorkflowRun(function, list(row.args or []), info, recorded)
    if replay:
        replayed = run.start()
        if replayed.calls or replayed.finished:
            raise NondeterminismError(
                f"replaying workflow {key!r} made calls its recorded history does not hold"
            )
    return run


def _before_start(app: str, row: WorkflowRow, message: EngineMessage, writes: Writes) -> bool:
    """A message for a workflow whose start has not run yet: a signal waits for it, a
    cancel ends it before it began; anything else is not for this generation."""
    if isinstance(message, Resume) and message.kind == SIGNAL:
        queue = list((row.signals or {}).get(message.activity_id, []))
        writes.data[(row.id, SIGNALS, message.activity_id)] = [*queue, message.data]
        return True
    if isinstance(message, Resume) and message.kind == CANCEL:
        error = {"message": "cancelled before it started", "type": "WorkflowCancelled", "code": 410}
        _end(writes, app, row, "interrupted", error)
        return True
    return False


def _perform_effects(
    conn: Connection,
    run: WorkflowRun,
    workflow: Workflow,
    plan: StepPlan,
    row: WorkflowRow,
    writes: Writes,
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
        if outcome is not None and call.kind == "condition":
            plan.timers.pop(position, None)  # answered by a waiting signal: no timeout to send
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
    writes: Writes,
    now: float,
) -> dict[str, Any] | None:
    """Perform one call in the database; its outcome fields if it completed at once."""
    app = workflow.app
    if call.kind == "condition":
        waiting = signals.get(call.name)
        return {"result": {"data": waiting.pop(0)}} if waiting else None
    if call.kind == "signal":
        message = workflow_messages.signal_message(
            conn, app, call.workflow_id, call.name, call.args[0]
        )
        if message is None:
            return {"error": no_target(call.workflow_id)}
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
    start_message = workflow_messages.insert(
        conn, app, child, call.name, call.args, queue, parent=parent, trace=workflow.trace
    )
    if start_message is None:
        return {"error": taken_id(child)}
    writes.outgoing.append(start_message)
    return {"result": child} if call.kind == "start_child" else None


def _conclude(
    writes: Writes,
    app: str,
    run: WorkflowRun,
    row: WorkflowRow,
    progress: Progress,
    now: float,
) -> None:
    """Write how the step left the workflow: going on, continued as new, or ended."""
    job_id, key, gid, steps = row.id, row.key, row.gid, row.steps
    if not progress.finished:
        update(writes, job_id, steps + 1, "running", gid, None, open_calls=run.open_calls)
        writes.kept.append((run, steps + 1))
        return
    writes.dropped.append(key)
    ended_well = progress.failure is None and not progress.cancelled  # else all is withdrawn
    if ended_well and run.timers_pending():  # a wake or a timeout nothing waits for now
        writes.timers.append({"key": key, "gid": gid, "position": None})
    if progress.continue_with is not None:
        fresh_gid = new_guid()
        update(writes, job_id, 0, "running", fresh_gid, None, open_calls=1)  # its start
        continued(writes, row, run, list(progress.continue_with), now)
        writes.outgoing.append(workflow_messages.start_message(app, key, fresh_gid, row.task_queue))
    elif progress.failure is not None:
        _end(writes, app, row, "failed", _failure_error(progress.failure))
    elif progress.cancelled:
        error = {"message": "cancelled", "type": "WorkflowCancelled", "code": 410}
        _end(writes, app, row, "interrupted", error)
    else:
        writes.data[(job_id, "", "result")] = progress.result
        _end(writes, app, row, "done", None, result=progress.result)


def _end(
    writes: Writes,
    app: str,
    row: WorkflowRow,
    status: str,
    error: dict[str, Any] | None,
    *,
    result: Any = None,
) -> None:
    """The workflow ended: its row, its announcement, and its parent's answer (a child)."""
    parent = row.parent
    update(writes, row.id, row.steps + 1, status, row.gid, error)
    if status != "done":  # ended early: what it still had queued would run for nothing
        writes.withdrawn.append({"key": row.key, "gid": row.gid})
    writes.ended.append((row, status))
    writes.dropped.append(row.key)
    writes.announced.append((row.name, row.key, status))
    if isinstance(parent, dict):
        waiting = Workflow(
            app=app, key=parent["workflow_id"], gid=parent["gid"], task_queue=parent["task_queue"]
        )
        answer = child_answer(waiting, parent["position"], result, error, new_id=new_message_id)
        writes.outgoing.append(answer)


def _failure_error(failure: Failure) -> dict[str, Any]:
    return failure.as_dict()


def _error(error: Exception) -> dict[str, Any]:
    return {"message": str(error), "type": type(error).__name__, "code": 500}
