"""One durable step decided: the outcome a message records, the calls that follow and the
messages that perform them (no database)."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

from mesh.model.messages import ActivityRequest, ActivityResponse, ErrorInfo, Resume, decode
from mesh.model.retry import RetryPolicy
from mesh.model.workflow import api as workflow
from mesh.model.workflow.calls import Failure
from mesh.model.workflow.plan import Workflow, activity_stream, plan_step, workflow_stream
from mesh.model.workflow.run import WorkflowInfo, WorkflowRun

WORKFLOW = Workflow(app="shop", key="order-9", gid="g1", task_queue="orders")
INFO = WorkflowInfo("order-9", "ship", "orders")


async def pack(item: str) -> str:
    raise AssertionError("not called in a workflow")


async def ship(item: str) -> Any:
    acts = workflow.proxy_activities(pack, retry=RetryPolicy(maximum_attempts=4))
    label = await acts.pack(item)
    await workflow.sleep("2 hours")
    both = await workflow.gather(acts.pack(label), acts.pack("extra"))
    return {"label": label, "both": both}


def ids() -> Any:
    counter = itertools.count()
    return lambda: f"m{next(counter)}"


def response(request: ActivityRequest, result: Any = None, **fields: Any) -> ActivityResponse:
    values: dict[str, Any] = {
        "request_id": request.id,
        "app": request.app,
        "topic": request.topic,
        "status": "success",
        "code": 200,
        "data": {"result": result},
        "job_id": request.job_id,
        "activity_id": request.activity_id,
        "job_gid": request.job_gid,
    }
    values.update(fields)
    return ActivityResponse(**values)


def test_streams__named_like_hotmeshs() -> None:
    assert (workflow_stream("orders"), activity_stream("orders")) == ("orders", "orders-activity")


def test_plan__start_requests_the_first_activity_on_the_activity_stream() -> None:
    run = WorkflowRun(ship, ["box"], INFO)
    plan = plan_step(run, WORKFLOW, None, now=10.0, new_id=ids())
    ((position, recorded, args),) = plan.calls
    assert args == ["box"]
    assert (position, recorded.name, recorded.done) == (0, "pack", False)
    (out,) = plan.outgoing
    request = decode(out.payload)
    assert isinstance(request, ActivityRequest) and out.stream == "orders-activity"
    assert request.data == {"activity": "pack", "args": ["box"], "timeout": None}
    assert (request.reply_to, request.activity_id, request.job_gid) == ("orders", "0", "g1")
    assert out.max_attempts == 4 and request.retry == RetryPolicy(maximum_attempts=4)


def test_plan__outcomes_record_once_and_drive_the_next_calls() -> None:
    run = WorkflowRun(ship, ["box"], INFO)
    new_id = ids()
    first = decode(plan_step(run, WORKFLOW, None, now=10.0, new_id=new_id).outgoing[0].payload)
    answer = response(first, "L-1")
    plan = plan_step(run, WORKFLOW, answer, now=11.0, new_id=new_id)
    ((position, outcome),) = plan.outcomes
    assert (position, outcome.result, outcome.at) == (0, "L-1", 11.0)
    (wake_out,) = plan.outgoing
    wake = decode(wake_out.payload)
    assert isinstance(wake, Resume) and wake_out.stream == "orders" and wake_out.delay == 7200.0
    assert (wake.kind, wake.activity_id, wake.gid) == ("wake", "1", "g1")
    assert plan_step(run, WORKFLOW, answer, now=12.0, new_id=new_id).duplicate
    plan = plan_step(run, WORKFLOW, wake, now=7300.0, new_id=new_id)
    requests = [decode(o.payload) for o in plan.outgoing]
    assert [(r.activity_id, r.data["args"]) for r in requests] == [("2", ["L-1"]), ("3", ["extra"])]
    plan_step(run, WORKFLOW, response(requests[1], "x"), now=7301.0, new_id=new_id)
    end = plan_step(run, WORKFLOW, response(requests[0], "y"), now=7302.0, new_id=new_id)
    assert end.progress.finished and end.progress.result == {"label": "L-1", "both": ["y", "x"]}


def test_plan__other_generations_and_unknown_positions_change_nothing() -> None:
    run = WorkflowRun(ship, ["box"], INFO)
    first = decode(plan_step(run, WORKFLOW, None, now=1.0, new_id=ids()).outgoing[0].payload)
    assert plan_step(run, WORKFLOW, response(first, job_gid="g0"), now=2.0, new_id=ids()).duplicate
    stray = response(first, activity_id="7")
    assert plan_step(run, WORKFLOW, stray, now=2.0, new_id=ids()).duplicate
    forged = response(first, activity_id="not a position")
    assert plan_step(run, WORKFLOW, forged, now=2.0, new_id=ids()).duplicate
    assert run.history[0].done is False


def test_plan__an_error_response_is_the_activitys_failure_in_the_workflow() -> None:
    run = WorkflowRun(ship, ["box"], INFO)
    first = decode(plan_step(run, WORKFLOW, None, now=1.0, new_id=ids()).outgoing[0].payload)
    info = ErrorInfo(
        "no stock",
        "StockError",
        503,
        retryable=False,
        traceback="Traceback ...\nStockError: no stock",
        details={"sku": "s-1"},
    )
    failing = response(first, status="error", code=503, data=None, error=info)
    plan = plan_step(run, WORKFLOW, failing, now=2.0, new_id=ids())
    failure = plan.progress.failure
    assert plan.progress.finished and failure is not None
    # The workflow failed where it awaited the activity: its own traceback, and as its
    # cause the activity's failure with everything the worker reported.
    assert (failure.type, failure.message, failure.code) == ("StockError", "no stock", 503)
    assert "in ship" in failure.traceback, failure.traceback
    assert failure.cause == Failure(
        "StockError",
        "no stock",
        503,
        details={"sku": "s-1"},
        non_retryable=True,
        traceback="Traceback ...\nStockError: no stock",
        activity="pack",
    )


async def waits_for_approval() -> Any:
    return await workflow.condition("approved")


def test_plan__a_condition_is_the_runtimes_with_a_timer_when_it_has_a_timeout() -> None:
    run = WorkflowRun(waits_for_approval, [], INFO)
    plan = plan_step(run, WORKFLOW, None, now=1.0, new_id=ids())
    ((position, call),) = plan.effects
    assert (position, call.kind, call.name) == (0, "condition", "approved")
    assert plan.outgoing == []  # no timeout: no timer
    signal = Resume(
        id="s",
        app="shop",
        kind="signal",
        job_id="order-9",
        gid="g1",
        activity_id="approved",
        dimension="",
        data={"ok": True},
    )
    end = plan_step(run, WORKFLOW, signal, now=2.0, new_id=ids())
    assert end.progress.finished and end.progress.result == {"ok": True}
    early = plan_step(
        WorkflowRun(waits_for_approval, [], INFO), WORKFLOW, signal, now=2.0, new_id=ids()
    )
    assert early.buffered == ("approved", {"ok": True})  # nobody waits yet: kept
    # A signal is addressed to the workflow: sent while an earlier generation was current
    # (the workflow continued as new since), the current one takes it. Outcomes are not.
    renewed = WorkflowRun(waits_for_approval, [], INFO)
    plan_step(renewed, WORKFLOW, None, now=1.0, new_id=ids())
    older = msgspec.structs.replace(signal, gid="g0")
    end = plan_step(renewed, WORKFLOW, older, now=2.0, new_id=ids())
    assert end.progress.finished and end.progress.result == {"ok": True}


def test_plan__an_outcome_of_the_wrong_kind_for_its_call_changes_nothing() -> None:
    run = WorkflowRun(ship, ["box"], INFO)
    plan_step(run, WORKFLOW, None, now=1.0, new_id=ids())  # position 0: an activity
    for kind in ("wake", "timeout", "child", "made-up"):
        forged = Resume(
            id="f",
            app="shop",
            kind=kind,
            job_id="order-9",
            gid="g1",
            activity_id="0",
            dimension="",
            data={"result": "forged"},
        )
        assert plan_step(run, WORKFLOW, forged, now=2.0, new_id=ids()).duplicate, kind
    assert run.history[0].done is False
