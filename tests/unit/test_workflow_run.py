"""Workflows as code, decided purely: positions, replay, determinism, the in-workflow API
(no database; the test plays the runtime's part)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mesh.errors import ActivityFailed, NondeterminismError, WorkflowCancelled
from mesh.model.retry import RetryPolicy
from mesh.model.workflow import api as workflow
from mesh.model.workflow.calls import Failure, Recorded
from mesh.model.workflow.run import Progress, WorkflowInfo, WorkflowRun

INFO = WorkflowInfo("order-1", "order_workflow", "orders", started_at=1000.0)


async def check_inventory(item_id: str) -> int:
    raise AssertionError("activities run in workers, never in the workflow")


async def reserve_item(item_id: str, quantity: int) -> str:
    raise AssertionError("activities run in workers, never in the workflow")


def notify_backorder(item_id: str) -> None:
    raise AssertionError("activities run in workers, never in the workflow")


runs_of_the_body: list[str] = []


async def order_workflow(item_id: str, qty: int) -> str:
    runs_of_the_body.append(item_id)
    acts = workflow.proxy_activities(
        check_inventory, reserve_item, notify_backorder, retry=RetryPolicy(maximum_attempts=5)
    )
    available = await acts.check_inventory(item_id)
    if available >= qty:
        return await acts.reserve_item(item_id, qty)
    await acts.notify_backorder(item_id)
    return "backordered"


def done(progress: Progress, position: int, result: Any = None, at: float = 0.0) -> Recorded:
    """The outcome the runtime records for the new call at ``position``."""
    call = dict(progress.calls)[position]
    return Recorded(
        kind=call.kind, name=call.name, shape=call.shape, done=True, result=result, at=at
    )


def failed(progress: Progress, position: int, error: Failure) -> Recorded:
    call = dict(progress.calls)[position]
    return Recorded(kind=call.kind, name=call.name, shape=call.shape, done=True, error=error)


def test_order_workflow__runs_in_place_one_call_at_a_time() -> None:
    runs_of_the_body.clear()
    run = WorkflowRun(order_workflow, ["sku-1", 2], INFO)
    first = run.start()
    ((position, call),) = first.calls
    assert (position, call.kind, call.name, call.args) == (
        0,
        "activity",
        "check_inventory",
        ["sku-1"],
    )
    assert call.retry is not None and call.retry.maximum_attempts == 5
    second = run.deliver(0, done(first, 0, 5))
    ((position, call),) = second.calls
    assert (position, call.name, call.args) == (1, "reserve_item", ["sku-1", 2])
    end = run.deliver(1, done(second, 1, "reserved"))
    assert end.finished and end.result == "reserved" and end.failure is None
    assert runs_of_the_body == ["sku-1"], "the function ran once, resumed in place"


def test_replay__answers_recorded_calls_and_waits_for_the_pending_one() -> None:
    runs_of_the_body.clear()
    history = {
        0: Recorded(kind="activity", name="check_inventory", shape="[str]", done=True, result=0),
        1: Recorded(kind="activity", name="notify_backorder", shape="[str]"),  # pending
    }
    run = WorkflowRun(order_workflow, ["sku-2", 3], INFO, history)
    replayed = run.start()
    assert replayed.calls == [] and not replayed.finished  # nothing is asked again
    outcome = Recorded(kind="activity", name="notify_backorder", shape="[str]", done=True)
    end = run.deliver(1, outcome)
    assert end.finished and end.result == "backordered"
    assert runs_of_the_body == ["sku-2"]


def test_replay__another_call_at_a_recorded_position_is_refused() -> None:
    history = {
        0: Recorded(kind="activity", name="reserve_item", shape="[str, number]", done=True),
    }
    run = WorkflowRun(order_workflow, ["sku-3", 1], INFO, history)
    with pytest.raises(NondeterminismError) as refused:
        run.start()
    text = str(refused.value)
    assert "position 0" in text and "activity check_inventory(str)" in text
    assert "activity reserve_item(str, number)" in text and "patched" in text


def test_replay__arguments_of_another_shape_are_refused() -> None:
    history = {0: Recorded(kind="activity", name="check_inventory", shape="[number]")}
    with pytest.raises(NondeterminismError, match=r"check_inventory\(str\)"):
        WorkflowRun(order_workflow, ["sku-4", 1], INFO, history).start()


async def fan_out(items: list[str]) -> list[Any]:
    acts = workflow.proxy_activities(check_inventory)
    return await workflow.gather(*(acts.check_inventory(item) for item in items))


def test_gather__positions_in_argument_order_results_in_argument_order() -> None:
    run = WorkflowRun(fan_out, [["a", "b", "c"]], INFO)
    progress = run.start()
    assert [(p, c.args) for p, c in progress.calls] == [(0, ["a"]), (1, ["b"]), (2, ["c"])]
    assert run.deliver(2, done(progress, 2, 30)).calls == []
    assert not run.deliver(0, done(progress, 0, 10)).finished
    end = run.deliver(1, done(progress, 1, 20))
    assert end.finished and end.result == [10, 20, 30]


async def fan_out_guarded(items: list[str]) -> Any:
    acts = workflow.proxy_activities(check_inventory)
    try:
        return await workflow.gather(*(acts.check_inventory(item) for item in items))
    except ActivityFailed as error:
        return {"caught": error.type_name, "message": error.message, "code": error.code}


def test_gather__the_first_failure_in_argument_order_is_raised_and_catchable() -> None:
    run = WorkflowRun(fan_out_guarded, [["a", "b", "c"]], INFO)
    progress = run.start()
    run.deliver(2, failed(progress, 2, Failure("KeyError", "c", 500)))
    run.deliver(0, done(progress, 0, 1))
    end = run.deliver(1, failed(progress, 1, Failure("ValueError", "b is bad", 422)))
    assert end.result == {"caught": "ValueError", "message": "b is bad", "code": 422}


async def fan_out_tolerant(items: list[str]) -> list[Any]:
    acts = workflow.proxy_activities(check_inventory)
    results = await workflow.gather(
        *(acts.check_inventory(item) for item in items), return_exceptions=True
    )
    return [type(r).__name__ if isinstance(r, ActivityFailed) else r for r in results]


def test_gather__return_exceptions_gives_failures_as_values() -> None:
    run = WorkflowRun(fan_out_tolerant, [["a", "b"]], INFO)
    progress = run.start()
    run.deliver(0, failed(progress, 0, Failure("KeyError", "a")))
    assert run.deliver(1, done(progress, 1, 7)).result == ["ActivityFailed", 7]


async def exhausted(item: str) -> str:
    acts = workflow.proxy_activities(reserve_item)
    try:
        return await acts.reserve_item(item, 1)
    except ActivityFailed as error:
        return f"gave up: {error}"


def test_activity_failure__reaches_the_workflow_as_a_catchable_error() -> None:
    run = WorkflowRun(exhausted, ["x"], INFO)
    progress = run.start()
    end = run.deliver(0, failed(progress, 0, Failure("TimeoutError", "no answer")))
    assert end.result == "gave up: TimeoutError: no answer"


async def uncaught(item: str) -> str:
    acts = workflow.proxy_activities(reserve_item)
    return await acts.reserve_item(item, 1)


def test_activity_failure__uncaught_fails_the_workflow_with_the_original_type() -> None:
    run = WorkflowRun(uncaught, ["x"], INFO)
    progress = run.start()
    end = run.deliver(0, failed(progress, 0, Failure("ValueError", "bad sku", 422)))
    assert end.finished and end.failure is not None
    failure = end.failure
    assert (failure.type, failure.message, failure.code) == ("ValueError", "bad sku", 422)
    assert failure.cause == Failure("ValueError", "bad sku", 422)  # the activity's own
    assert "in uncaught" in failure.traceback  # where the workflow let it through


async def patched_flow() -> list[str]:
    acts = workflow.proxy_activities(check_inventory, notify_backorder)
    steps = []
    if workflow.patched("notify-first"):
        await acts.notify_backorder("n")
        steps.append("notified")
    await acts.check_inventory("c")
    steps.append("checked")
    return steps


def test_patched__new_runs_take_the_change_and_old_histories_replay_without_it() -> None:
    fresh = WorkflowRun(patched_flow, [], INFO)
    progress = fresh.start()
    assert [(p, m.kind, m.name) for p, m in progress.done] == [(0, "patch", "notify-first")]
    assert [(p, c.name) for p, c in progress.calls] == [(1, "notify_backorder")]
    old = {0: Recorded(kind="activity", name="check_inventory", shape="[str]", done=True, result=4)}
    end = WorkflowRun(patched_flow, [], INFO, old).start()
    assert end.finished and end.result == ["checked"]
    marked = {
        0: Recorded(kind="patch", name="notify-first", shape="[]", done=True),
        1: Recorded(kind="activity", name="notify_backorder", shape="[str]", done=True),
        2: Recorded(kind="activity", name="check_inventory", shape="[str]", done=True, result=4),
    }
    assert WorkflowRun(patched_flow, [], INFO, marked).start().result == ["notified", "checked"]


async def clocks() -> list[Any]:
    acts = workflow.proxy_activities(check_inventory)
    seen = [workflow.time(), workflow.random(), str(workflow.uuid4()), workflow.info().workflow_id]
    await acts.check_inventory("a")
    seen += [workflow.time(), workflow.random(), workflow.now()]
    return seen


def test_now_random_uuid4__the_same_on_replay_and_now_follows_outcomes() -> None:
    run = WorkflowRun(clocks, [], INFO)
    progress = run.start()
    outcome = done(progress, 0, 1, at=2000.0)
    first = run.deliver(0, outcome).result
    again = WorkflowRun(clocks, [], INFO, {0: outcome}).start().result
    assert first == again
    assert first[0] == 1000.0 and first[4] == 2000.0 and first[3] == "order-1"
    # now() is an aware datetime; the result stores it as ISO 8601 text.
    assert datetime.fromisoformat(first[6]) == datetime(1970, 1, 1, 0, 33, 20, tzinfo=UTC)
    other = WorkflowInfo("order-2", "order_workflow", "orders", started_at=1000.0)
    assert WorkflowRun(clocks, [], other, {0: outcome}).start().result[1] != first[1]


async def forever(count: int) -> None:
    await workflow.sleep("1 hour")
    workflow.continue_as_new(count + 1)


def test_continue_as_new__ends_the_run_with_the_next_arguments() -> None:
    run = WorkflowRun(forever, [1], INFO)
    progress = run.start()
    ((_, call),) = progress.calls
    assert (call.kind, call.timeout) == ("sleep", 3600.0)
    end = run.deliver(0, done(progress, 0))
    assert end.finished and end.continue_with == (2,) and end.failure is None


async def cleans_up() -> str:
    acts = workflow.proxy_activities(check_inventory, notify_backorder)
    try:
        await acts.check_inventory("a")
    except WorkflowCancelled:
        try:
            await acts.notify_backorder("a")
        except WorkflowCancelled:
            return "cancelled twice"
    return "not cancelled"


def test_cancel__raises_at_the_waiting_call_and_at_every_later_one() -> None:
    run = WorkflowRun(cleans_up, [], INFO)
    run.start()
    end = run.cancel()
    assert end.finished and end.result == "cancelled twice"
    uncaught_run = WorkflowRun(uncaught, ["x"], INFO)
    uncaught_run.start()
    assert uncaught_run.cancel().cancelled


class Foreign:
    def __await__(self) -> Any:
        yield "a trio trap, say"


async def awaits_something_else() -> None:
    await Foreign()


def test_non_durable_awaits__fail_the_workflow_with_what_to_do() -> None:
    end = WorkflowRun(awaits_something_else, [], INFO).start()
    assert end.finished and end.failure is not None
    assert end.failure.type == "RestrictedCall" and "not a durable call" in end.failure.message


async def approval() -> Any:
    answer = await workflow.condition("approved", timeout="10 minutes")
    return "timed out" if answer is workflow.TIMED_OUT else answer


def test_condition__returns_the_signal_data_or_timed_out() -> None:
    run = WorkflowRun(approval, [], INFO)
    progress = run.start()
    ((_, call),) = progress.calls
    assert (call.kind, call.name, call.timeout) == ("condition", "approved", 600.0)
    assert run.deliver(0, done(progress, 0, {"data": {"by": "ann"}})).result == {"by": "ann"}
    late = WorkflowRun(approval, [], INFO)
    progress = late.start()
    assert late.deliver(0, done(progress, 0, {"timed_out": True})).result == "timed out"


async def long_chain(length: int) -> int:
    acts = workflow.proxy_activities(check_inventory)
    total = 0
    for index in range(length):
        total += await acts.check_inventory(str(index))
    return total


def test_linear__a_thousand_steps_run_the_body_once_and_replay_asks_nothing() -> None:
    run = WorkflowRun(long_chain, [1000], INFO)
    progress = run.start()
    history: dict[int, Recorded] = {}
    while not progress.finished:
        ((position, _),) = progress.calls
        history[position] = done(progress, position, 1)
        progress = run.deliver(position, history[position])
    assert progress.result == 1000 and run.position == 1000
    replay = WorkflowRun(long_chain, [1000], INFO, history).start()
    assert replay.finished and replay.result == 1000 and replay.calls == []


def test_resident_runs__bounded_least_recently_resumed_first_and_replay_recovers() -> None:
    from mesh.model.workflow.resident import ResidentRuns

    resident = ResidentRuns(capacity=2)
    runs = {}
    for name in ("a", "b", "c"):
        info = WorkflowInfo(name, "long_chain", "q")
        runs[name] = WorkflowRun(long_chain, [2], info)
        progress = runs[name].start()
        resident.keep(runs[name])
        if name == "b":
            assert resident.take("a") is runs["a"]  # a was resumed: b is now the oldest
    assert sorted(resident) == ["a", "c"] and resident.evicted == 1
    assert resident.take("b") is None  # evicted: its next outcome replays it
    history = {0: done(progress, 0, 5)}
    replayed = WorkflowRun(long_chain, [2], WorkflowInfo("b", "long_chain", "q"), history)
    assert [p for p, _ in replayed.start().calls] == [1]
    with pytest.raises(ValueError):
        ResidentRuns(capacity=0)


class CountingHistory(dict[int, Recorded]):
    """A run's history that counts how often its entries are read."""

    reads = 0

    def __getitem__(self, position: int) -> Recorded:
        self.reads += 1
        return super().__getitem__(position)

    def get(self, position: int, default: Any = None) -> Any:
        self.reads += 1
        return super().get(position, default)


async def wide_fan_out(width: int) -> int:
    acts = workflow.proxy_activities(check_inventory)
    counts = await workflow.gather(*(acts.check_inventory(f"item-{n}") for n in range(width)))
    return sum(counts)


def reads_per_outcome(width: int) -> float:
    """History reads per outcome while ``width`` gathered calls come back one by one, each
    outcome followed by what the runtime asks after every step (the calls still open)."""
    run = WorkflowRun(wide_fan_out, [width], INFO)
    started = run.start()
    assert len(started.calls) == width
    history = run.history = CountingHistory(run.history)
    progress = Progress()
    for position, _ in started.calls:
        progress = run.deliver(position, done(started, position, result=1))
        assert run.open_calls == (0 if progress.finished else width - 1 - position)
    assert progress.finished and progress.result == width
    return history.reads / width


def test_gather__an_outcome_costs_the_same_in_a_gather_of_500_and_of_5000() -> None:
    """A fan-out is linear: each outcome does a fixed amount of work, however many calls
    the gather waits for (each outcome scanned every call of the gather: 5,000 gathered
    took 19 s, 500 took 0.36 s)."""
    small, large = reads_per_outcome(500), reads_per_outcome(5000)
    assert large <= 1.5 * small, (small, large)
    assert large < 10, "a bounded number of reads per outcome"
