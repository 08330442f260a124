"""The short paths of workflows written as code, on real Postgres: starts committed together,
results read together, and activity responses applied to their workflows in the transaction
that acks their requests (and through the workflow stream when that cannot be done)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import trio

from mesh import Mesh, activity
from mesh.errors import DuplicateJob, InvalidPayload, JobFailed, UnknownJob
from mesh.model.workflow import api as workflow
from mesh.runtime.consumer import ConsumerSettings
from tests.helpers import wait_until

FAST = ConsumerSettings(poll_interval=0.2)
GATES: dict[str, trio.Event] = {}


@activity.defn(loop="trio")  # it waits for the test's trio events
async def add_one(value: int) -> int:
    gate = GATES.get(f"add_one:{value}")
    if gate is not None:
        await gate.wait()
    return value + 1


async def refuse(value: int) -> int:
    raise ValueError(f"{value} is refused")


async def twice(value: int) -> int:
    acts = workflow.proxy_activities(add_one)
    return await acts.add_one(await acts.add_one(value))


async def refusing(value: int) -> int:
    acts = workflow.proxy_activities(refuse, retry=workflow.RetryPolicy(maximum_attempts=1))
    return await acts.refuse(value)


async def typed(value: int) -> Any:
    acts = workflow.proxy_activities(add_one)
    plus = await acts[add_one](value)
    try:
        acts[refuse]
    except KeyError as error:
        unproxied = str(error)
    try:
        await acts.add_one(value=value)
    except TypeError as error:
        keywords = str(error)
    return {"plus": plus, "unproxied": unproxied, "keywords": keywords}


async def renewing(generation: int) -> Any:
    if generation == 1:
        await workflow.condition("next")
        workflow.continue_as_new(2)
    return await workflow.condition("go")


async def stranded(value: int) -> Any:
    """Asks for an activity on a task queue no worker serves: the request stays queued."""
    acts = workflow.proxy_activities(add_one, task_queue="nowhere")
    return await acts.add_one(value)


def code_mesh(dsn: str) -> Any:
    return Mesh.open(
        dsn,
        app="paths",
        workflows={"q": [twice, refusing, typed, renewing, stranded]},
        activities={"q": [add_one, refuse]},
        worker_settings=FAST,
        engine_settings=FAST,
    )


def actors(mesh: Mesh) -> tuple[Any, Any]:
    """The node's workflow worker and activity worker of task queue q."""
    from actors.worker import WorkerActor
    from actors.workflows import WorkflowWorkerActor

    (runner,) = [a for a in mesh.node.actors if isinstance(a, WorkflowWorkerActor)]
    (worker,) = [a for a in mesh.node.actors if isinstance(a, WorkerActor)]
    return runner, worker


def stream_messages(dsn: str, stream: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM mesh.stream_messages WHERE stream = %s", (stream,)
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_responses_are_applied_at_their_acks__the_workflow_stream_carries_only_starts(
    dsn: str,
) -> None:
    async with code_mesh(dsn) as mesh:
        handles = [await mesh.start_workflow(twice, n, task_queue="q") for n in range(5)]
        results = [await handle.result(timeout=30) for handle in handles]
        runner, worker = actors(mesh)
        # Two activities each, every response applied at its ack (counted once the settle
        # task resumes, which may be after the client saw the last result).
        await wait_until(lambda: worker.statistics().consumer.acked == 10, what="ten acks")
        applied = worker.statistics().responses_applied
        claimed = runner.statistics().consumer.claimed
    assert results == [n + 2 for n in range(5)]
    assert applied == 10
    assert claimed == 5  # the workflow stream saw the five starts and nothing else


async def test_a_response_waits_on_the_paused_workflow_stream_and_goes_on_when_resumed(
    dsn: str,
) -> None:
    GATES["add_one:40"] = trio.Event()
    async with code_mesh(dsn) as mesh:
        _, worker = actors(mesh)
        handle = await mesh.start_workflow(twice, 40, task_queue="q")
        await wait_until(
            lambda: worker.statistics().consumer.claimed == 1, what="the first activity runs"
        )
        await mesh.throttle(-1, topic="q")
        await wait_until(lambda: mesh.node.throttle.effective("q") == -1, what="the pause")
        GATES["add_one:40"].set()
        await wait_until(lambda: stream_messages(dsn, "q") == 1, what="the response on q")
        assert await handle.status() == "running"
        assert worker.statistics().responses_applied == 0
        await mesh.throttle(0)
        await wait_until(lambda: mesh.node.throttle.effective("q") == 0, what="the resume")
        result = await handle.result(timeout=30)
        # The second activity's response was applied at its ack again (the worker counts it
        # once its settle task resumes, which may be after the client saw the result).
        await wait_until(
            lambda: worker.statistics().responses_applied == 1, what="the second applied"
        )
        assert worker.statistics().consumer.acked == 2
    assert result == 42


async def test_concurrent_starts_share_commits__each_keeps_its_own_outcome(dsn: str) -> None:
    outcomes: dict[int, Any] = {}

    async def start(index: int, mesh: Mesh) -> None:
        workflow_id = "twin" if index in (3, 4) else ""
        argument: Any = object() if index == 7 else index
        try:
            handle = await mesh.start_workflow(
                twice, argument, task_queue="q", workflow_id=workflow_id
            )
            outcomes[index] = await handle.result(timeout=30)
        except (DuplicateJob, InvalidPayload) as error:
            outcomes[index] = error

    async with code_mesh(dsn) as mesh:
        async with trio.open_nursery() as nursery:
            for index in range(30):
                nursery.start_soon(start, index, mesh)
        batches = mesh._workflow_starts.batches
        reads = mesh._result_reads.batches
    assert batches < 15, f"{batches} commits for 30 concurrent starts"
    assert reads < 25, f"{reads} reads for 29 concurrent results"
    assert isinstance(outcomes.pop(7), InvalidPayload)  # refused before the database
    twins = [outcomes.pop(3), outcomes.pop(4)]
    assert sorted(type(o).__name__ for o in twins) == ["DuplicateJob", "int"]
    assert outcomes == {index: index + 2 for index in outcomes}
    assert len(outcomes) == 27


async def test_results_read_together_still_say_failed_and_unknown_with_details(
    dsn: str,
) -> None:
    async with code_mesh(dsn) as mesh:
        good, bad = (
            await mesh.start_workflow(twice, 1, task_queue="q"),
            await mesh.start_workflow(refusing, 9, task_queue="q"),
        )
        with pytest.raises(JobFailed) as failed:
            await bad.result(timeout=30)
        assert await good.result(timeout=30) == 3
        with pytest.raises(UnknownJob):
            await mesh.get_handle("no-such-workflow").result(timeout=5)
    job = failed.value.job
    assert (failed.value.job_id, failed.value.status) == (job.key, "failed")
    assert failed.value.error == job.error
    assert job.error is not None and job.error["type"] == "ValueError"
    assert "9 is refused" in job.error["message"]
    assert job.timeline, "a failed workflow's record comes with its details"


async def test_typed_proxies_call_the_function_they_name__keywords_are_refused(dsn: str) -> None:
    async with code_mesh(dsn) as mesh:
        result = await (await mesh.start_workflow(typed, 9, task_queue="q")).result(timeout=30)
    assert result["plus"] == 10
    assert "is not a proxied activity; proxied: add_one" in result["unproxied"]
    assert "keyword arguments (value)" in result["keywords"]


def waits_for(dsn: str, key: str, signal_id: str) -> bool:
    """Whether the workflow's current generation waits on a condition for ``signal_id``."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM mesh.workflow_steps s JOIN mesh.jobs j ON j.id = s.job_id "
            "WHERE j.key = %s AND s.gid = j.gid AND s.kind = 'condition' AND s.name = %s "
            "AND NOT s.done",
            (key, signal_id),
        ).fetchone()
    return row == (1,)


async def test_a_signal_sent_to_an_earlier_generation_reaches_the_current_one(dsn: str) -> None:
    from mesh.model.workflow.plan import SIGNAL
    from mesh.pg.workflow_messages import message_to

    async with code_mesh(dsn) as mesh:
        handle = await mesh.start_workflow(renewing, 1, task_queue="q")
        key = handle.workflow_id
        await wait_until(lambda: waits_for(dsn, key, "next"), what="generation 1 waits")
        # Sent while generation 1 was current; it arrives after the workflow continued as new.
        late = await mesh.node.db.run(message_to, "paths", key, SIGNAL, "go", {"late": True})
        assert late is not None
        assert await handle.signal("next")
        await wait_until(lambda: waits_for(dsn, key, "go"), what="generation 2 waits")
        await mesh.node.streams.enqueue([late])
        result = await handle.result(timeout=30)
    assert result == {"late": True}


async def test_state_export_and_terminate_from_the_handle(dsn: str) -> None:
    async with code_mesh(dsn) as mesh:
        done = await mesh.start_workflow(twice, 5, task_queue="q", workflow_id="exported")
        assert await done.result(timeout=30) == 7
        state = await done.state()
        everything = await done.export()
        parts = await done.export(allow=["status", "data"])
        with pytest.raises(InvalidPayload, match="choose among data, state, status, timeline"):
            await done.export(allow=["secrets"])
        waiting = await mesh.start_workflow(renewing, 1, task_queue="q")
        await wait_until(lambda: waits_for(dsn, waiting.workflow_id, "next"), what="it waits")
        assert await waiting.terminate("no longer needed")
        with pytest.raises(JobFailed) as ended:
            await waiting.result(timeout=30)
        assert not await waiting.terminate()  # not running any more
        assert not await waiting.signal("next")
    assert state["metadata"]["jid"] == "exported" and state["metadata"]["status"] == "done"
    assert state["data"]["result"] == 7 and state["data"]["args"] == [5]
    assert set(everything) == {"data", "state", "status", "timeline"}
    calls = [(s["activity"], s["leg"]) for s in everything["timeline"]]
    assert calls == [("0:add_one", 1), ("0:add_one", 2), ("1:add_one", 1), ("1:add_one", 2)]
    assert parts == {"status": "done", "data": everything["data"]}
    job = ended.value.job
    assert job.status == "interrupted" and job.error is not None
    assert (job.error["type"], job.error["message"]) == ("WorkflowTerminated", "no longer needed")


async def test_a_start_that_cannot_be_stored_is_refused_before_the_database(dsn: str) -> None:
    from mesh.errors import InvalidIdentifier

    async with code_mesh(dsn) as mesh:
        with pytest.raises(InvalidPayload, match="the workflow's name"):
            await mesh.start_workflow("twice\x00", 1, task_queue="q")
        with pytest.raises(InvalidIdentifier):
            await mesh.start_workflow(twice, 1, task_queue="no such queue!")
        batches = mesh._workflow_starts.batches
    assert batches == 0  # nothing was sent


def semaphore(dsn: str, key: str) -> tuple[int, str]:
    """HotMesh's reading of a job: its semaphore (jobs.status) and its state in words."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status, state FROM jobs WHERE key = %s", (key,)).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


async def test_jobs_status_is_the_semaphore__open_calls_then_0__negative_when_it_ended_badly(
    dsn: str,
) -> None:
    async with code_mesh(dsn) as mesh:
        done = await mesh.start_workflow(twice, 1, task_queue="q", workflow_id="counted")
        await done.result(timeout=30)
        failed = await mesh.start_workflow(refusing, 1, task_queue="q", workflow_id="refused")
        with pytest.raises(JobFailed):
            await failed.result(timeout=30)
        waiting = await mesh.start_workflow(renewing, 1, task_queue="q", workflow_id="waits")
        await wait_until(lambda: waits_for(dsn, "waits", "next"), what="it waits")
        open_while_waiting = semaphore(dsn, "waits")
        await waiting.terminate("stop")
        with pytest.raises(JobFailed):
            await waiting.result(timeout=30)
    assert semaphore(dsn, "counted") == (0, "done")
    assert open_while_waiting == (1, "running")  # one call open: the condition
    assert semaphore(dsn, "refused") == (-1_000_000_000, "failed")
    assert semaphore(dsn, "waits") == (-1_000_000_000, "interrupted")


def queued_for(dsn: str, key: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM mesh.stream_messages WHERE payload->>'job_id' = %s", (key,)
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_terminate_withdraws_the_workflows_queued_activity_request(dsn: str) -> None:
    async with code_mesh(dsn) as mesh:
        handle = await mesh.start_workflow(stranded, 1, task_queue="q", workflow_id="stranded")
        await wait_until(lambda: queued_for(dsn, "stranded") == 1, what="its request queued")
        assert await handle.terminate("not needed")
        with pytest.raises(JobFailed):
            await handle.result(timeout=30)
    assert queued_for(dsn, "stranded") == 0
