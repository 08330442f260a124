"""The engine with real workflows on real Postgres: every activity type and transition
feature, through the Mesh API (an in-process node with an engine and workers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
import trio.testing

from mesh.api import Mesh
from mesh.errors import (
    DuplicateJob,
    InputInvalid,
    InvalidPayload,
    JobFailed,
    ManifestInvalid,
    MeshError,
    UnknownHook,
    UnknownTopic,
)
from mesh.examples import inventory
from mesh.runtime.consumer import ConsumerSettings
from tests.helpers import wait_until

FAST = ConsumerSettings(poll_interval=0.2)


@asynccontextmanager
async def mesh_with(
    dsn: str, manifest: str, workers: dict[str, Callable[..., Any]] | None = None, app: str = "t"
) -> AsyncIterator[Mesh]:
    async with Mesh.open(
        dsn, app=app, workers=workers or {}, worker_settings=FAST, engine_settings=FAST
    ) as mesh:
        await mesh.deploy(manifest)
        await mesh.activate("1")
        yield mesh


async def double(data: dict[str, Any]) -> dict[str, Any]:
    return {"value": data["value"] * 2}


ORDER_WORKERS = {
    "inventory.check": inventory.check_inventory,
    "inventory.reserve": inventory.reserve_item,
    "inventory.backorder.notify": inventory.notify_backorder,
}


async def test_order_workflow_both_branches_and_the_seeds_query(dsn: str) -> None:
    async with Mesh.open(dsn, app="orders", workers=ORDER_WORKERS, engine_settings=FAST) as mesh:
        await mesh.deploy("config/orders.yaml")
        await mesh.activate("1")
        reserved = await mesh.pubsub(
            "order.placed", {"orderId": "order-456", "sku": "sku-100", "qty": 2}, timeout=20
        )
        backordered = await mesh.pubsub(
            "order.placed", {"orderId": "order-458", "sku": "sku-300", "qty": 2}, timeout=20
        )
    assert reserved["status"] == "reserved" and reserved["reserved"] == 2
    assert backordered["status"] == "backordered"
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(HOTMESH_README_QUERY).fetchall()
        fields = {field: value for _, _, _, field, _, value, _, _ in rows}
        # The semaphore of a finished job is 0; the entity is the graph's.
        assert {row[1] for row in rows} == {0} and {row[2] for row in rows} == {"order"}
        assert fields["availableQty"] == 12 and fields["requestedQty"] == 2
        assert fields["status"] == "reserved"
        assert fields["checkInventory/output"]["availableQty"] == 12
        steps = conn.execute(
            "SELECT activity FROM mesh.job_steps s JOIN mesh.jobs j ON j.id = s.job_id "
            "WHERE j.key = 'order-458' AND leg = 2 ORDER BY at"
        ).fetchall()
        assert [s[0] for s in steps] == ["placed", "checkInventory", "notifyBackorder"]


# HotMesh's README, "What's still running? Query the semaphore", pasted as it is.
HOTMESH_README_QUERY = """
SELECT j.key AS job_key, j.status AS semaphore, j.entity AS workflow, a.symbol AS attribute,
       a.dimension AS dimension, a.value AS value, j.created_at, j.updated_at
FROM jobs j JOIN jobs_attributes a ON a.job_id = j.id
WHERE j.key = 'order-456' ORDER BY a.symbol, a.dimension;
"""

SEQUENCE = """
app:
  id: t
  version: '1'
  graphs:
    - subscribes: calc
      input:
        schema: {type: object, properties: {value: {type: number}}, required: [value]}
      activities:
        start:
          type: trigger
          job: {maps: {first: '{$self.output.data.value}'}}
        a:
          type: worker
          topic: t.double
          input: {maps: {value: '{start.output.data.value}'}}
        b:
          type: worker
          topic: t.double
          input: {maps: {value: '{a.output.data.value}'}}
          output:
            maps:
              plusOne:
                '@pipe':
                  - ['{$self.output.data.value}', 1]
                  - ['{@math.add}']
          job: {maps: {result: '{$self.output.data.plusOne}'}}
      transitions:
        start: [{to: a}]
        a: [{to: b}]
"""


async def test_sequential_workers_map_outputs_into_job_data(dsn: str) -> None:
    async with mesh_with(dsn, SEQUENCE, {"t.double": double}) as mesh:
        data = await mesh.pubsub("calc", {"value": 5}, timeout=20, job_id="five")
        state = await mesh.get_state(await mesh.pub("calc", {"value": 1}))
        raw = await mesh.get_raw("five")
    assert data == {"first": 5, "result": 21}
    assert state["metadata"]["tpc"] == "calc"
    # get_raw: the rows as stored.
    assert raw["job"]["key"] == "five" and raw["job"]["state"] == "done"
    assert raw["job"]["status"] == 0 and "id" in raw["job"]  # the semaphore
    attributes = {(a["dimension"], a["symbol"]): a["value"] for a in raw["attributes"]}
    assert attributes[("", "result")] == 21 and attributes[("", "b/output")]["plusOne"] == 21
    legs = [(s["activity"], s["leg"]) for s in raw["steps"]]
    assert legs.count(("a", 1)) == legs.count(("a", 2)) == 1 and ("b", 2) in legs


async def test_refusals_leave_no_job(dsn: str) -> None:
    async with mesh_with(dsn, SEQUENCE, {"t.double": double}) as mesh:
        with pytest.raises(UnknownTopic, match="no graph of app 't'"):
            await mesh.pub("nope", {"value": 1})
        with pytest.raises(InputInvalid, match="value"):
            await mesh.pub("calc", {"value": "five"})
        await mesh.pub("calc", {"value": 1}, job_id="fixed")
        with pytest.raises(DuplicateJob, match="'fixed' is taken"):
            await mesh.pub("calc", {"value": 2}, job_id="fixed")
        with pytest.raises(UnknownHook, match="no hook of app 't'"):
            await mesh.signal("no.such.hook", {"id": 1})
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM mesh.jobs").fetchone() == (1,)


async def test_concurrent_pubs_share_commits_and_each_keeps_its_own_outcome(dsn: str) -> None:
    outcomes: dict[int, str | Exception] = {}

    async def pub(index: int, data: dict[str, Any], job_id: str = "") -> None:
        try:
            outcomes[index] = await mesh.pub("calc", data, job_id=job_id)
        except MeshError as error:
            outcomes[index] = error

    async with mesh_with(dsn, SEQUENCE, {"t.double": double}) as mesh:
        async with trio.open_nursery() as nursery:
            for index in range(50):
                value: Any = "five" if index % 10 == 3 else index
                job_id = "twin" if index in (20, 21) else ""
                nursery.start_soon(pub, index, {"value": value}, job_id)
        grouped = mesh._publisher.batches
        # A start the database itself refuses (jsonb has no NUL) fails alone.
        async with trio.open_nursery() as nursery:
            for index in range(50, 60):
                nursery.start_soon(
                    pub, index, {"value": 1, "note": "a\u0000b" if index == 55 else ""}
                )
    assert grouped < 10, f"{grouped} commits for 50 concurrent starts"
    refused = {i for i, o in outcomes.items() if isinstance(o, Exception)}
    assert {i for i in refused if isinstance(outcomes[i], InputInvalid)} == {3, 13, 23, 33, 43}
    assert sum(isinstance(outcomes[i], DuplicateJob) for i in (20, 21)) == 1
    # Refused before it reached the database (which cannot store a NUL), with the fix.
    assert isinstance(outcomes[55], InvalidPayload) and "NUL character" in str(outcomes[55])
    assert len(refused) == 7
    started = {o for o in outcomes.values() if isinstance(o, str)}
    with psycopg.connect(dsn) as conn:
        keys = {row[0] for row in conn.execute("SELECT key FROM mesh.jobs")}
    assert keys == started and len(started) == 53


async def test_a_pub_returns_once_its_own_start_commits_however_busy_the_queue(
    dsn: str,
) -> None:
    from mesh.model.ids import new_message_id
    from mesh.model.messages import StartJob
    from mesh.runtime.publisher import Publisher

    returned: list[int] = []
    async with mesh_with(dsn, SEQUENCE, {"t.double": double}) as mesh:
        publisher = Publisher(mesh.node.db, "t", mesh.versions, max_batch=1)

        async def pub(index: int) -> None:
            message = StartJob(id=new_message_id(), app="t", topic="calc", data={"value": index})
            await publisher.start(message)
            returned.append(index)

        async with trio.open_nursery() as nursery:
            for index in range(6):
                nursery.start_soon(pub, index)
                await trio.testing.wait_all_tasks_blocked()  # queued in this order
    # One start per commit, oldest first, and each caller back as soon as its own committed
    # (the first caller leads, but does not stay to commit everyone else's).
    assert returned == list(range(6))
    assert publisher.batches == 6


async def test_invalid_manifest_is_refused_before_anything_is_stored(dsn: str) -> None:
    broken = SEQUENCE.replace("{a.output.data.value}", "{aa.output.data.value}").replace(
        "to: b", "to: c"
    )
    async with Mesh.open(dsn, app="t") as mesh:
        with pytest.raises(ManifestInvalid) as caught:
            await mesh.deploy(broken)
    assert any("unknown activity 'aa'" in p for p in caught.value.problems)
    assert any("unknown activity 'c'" in p for p in caught.value.problems)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM mesh.app_versions").fetchone() == (0,)


async def returns_a_list(data: Any) -> Any:
    return [1, 2, 3]


async def fails(data: Any) -> Any:
    from mesh.errors import NonRetryableError

    raise NonRetryableError("out of stock", code=503)


ERRORS = """
app:
  id: t
  version: '1'
  graphs:
    - subscribes: shape
      activities:
        s1: {type: trigger}
        w1: {type: worker, topic: t.list}
      transitions:
        s1: [{to: w1}]
    - subscribes: handled
      activities:
        s2: {type: trigger}
        w2: {type: worker, topic: t.fail}
        recover:
          type: hook
          job: {maps: {recovered: true, why: '{w2.output.data.error.message}'}}
      transitions:
        s2: [{to: w2}]
        w2: [{to: recover, conditions: {code: 503}}]
    - subscribes: unhandled
      activities:
        s3: {type: trigger}
        w3: {type: worker, topic: t.fail}
      transitions:
        s3: [{to: w3}]
"""


async def test_worker_errors_fail_the_job_unless_a_transition_handles_the_code(dsn: str) -> None:
    async with mesh_with(dsn, ERRORS, {"t.list": returns_a_list, "t.fail": fails}) as mesh:
        with pytest.raises(JobFailed, match="returned list") as shape:
            await mesh.pubsub("shape", {}, timeout=20)
        handled = await mesh.pubsub("handled", {}, timeout=20)
        with pytest.raises(JobFailed, match="code 503") as unhandled:
            await mesh.pubsub("unhandled", {}, timeout=20)
    assert shape.value.job.status == "failed"
    assert "an activity returns a JSON object" in shape.value.job.error["message"]
    assert handled["recovered"] is True and "out of stock" in handled["why"]
    assert unhandled.value.job.error["code"] == 503


AWAIT = """
app:
  id: t
  version: '1'
  graphs:
    - subscribes: parent
      activities:
        p: {type: trigger}
        child:
          type: await
          topic: kid
          input: {maps: {value: '{p.output.data.value}'}}
          job: {maps: {fromChild: '{$self.output.data.doubled}'}}
        detached:
          type: await
          topic: kid
          await: false
          input: {maps: {value: 100}}
          job: {maps: {detachedId: '{$self.output.data.job_id}'}}
      transitions:
        p: [{to: child}, {to: detached}]
    - subscribes: kid
      activities:
        k: {type: trigger}
        d:
          type: worker
          topic: t.double
          input: {maps: {value: '{k.output.data.value}'}}
          job: {maps: {doubled: '{$self.output.data.value}'}}
      transitions:
        k: [{to: d}]
"""


async def test_await_child_and_fire_and_forget(dsn: str) -> None:
    async with mesh_with(dsn, AWAIT, {"t.double": double}) as mesh:
        data = await mesh.pubsub("parent", {"value": 4}, timeout=20)
        detached = await mesh.wait(data["detachedId"], timeout=20)
        child = await mesh.get_job(data["detachedId"])
    assert data["fromChild"] == 8
    assert detached.data == {"doubled": 200}
    assert child.parent is None  # fire-and-forget: not linked


HOOKS = """
app:
  id: t
  version: '1'
  graphs:
    - subscribes: nap
      activities:
        n: {type: trigger}
        sleep: {type: hook, sleep: 0.3}
        after: {type: hook, job: {maps: {woke: true}}}
      transitions:
        n: [{to: sleep}]
        sleep: [{to: after}]
    - subscribes: approval
      activities:
        ap:
          type: trigger
          stats: {id: '{$self.input.data.id}'}
        wait:
          type: hook
          job: {maps: {approved: '{$self.hook.data.approved}'}}
      transitions:
        ap: [{to: wait}]
      hooks:
        approve:
          - to: wait
            conditions:
              match:
                - expected: '{$job.metadata.jid}'
                  actual: '{$self.hook.data.id}'
    - subscribes: race
      activities:
        r:
          type: trigger
          stats: {id: '{$self.input.data.id}'}
        timed:
          type: hook
          sleep: '{r.output.data.timeout}'
          job: {maps: {answer: '{$self.hook.data.answer}'}}
      transitions:
        r: [{to: timed}]
      hooks:
        answer:
          - to: timed
            conditions:
              match:
                - expected: '{$job.metadata.jid}'
                  actual: '{$self.hook.data.id}'
    - subscribes: relay
      activities:
        rl: {type: trigger}
        send:
          type: signal
          topic: approve
          signal: {maps: {id: '{rl.output.data.target}', approved: 'yes'}}
        broadcast:
          type: signal
          subtype: all
          topic: answer
          signal: {maps: {answer: 'to all'}}
      transitions:
        rl: [{to: send}, {to: broadcast}]
"""


async def test_durable_sleep(dsn: str) -> None:
    async with mesh_with(dsn, HOOKS) as mesh:
        started = trio.current_time()
        data = await mesh.pubsub("nap", {}, timeout=20)
        elapsed = trio.current_time() - started
    assert data == {"woke": True}
    assert elapsed >= 0.3


async def test_signal_resumes_a_hook_and_is_buffered_when_early(dsn: str) -> None:
    async with mesh_with(dsn, HOOKS) as mesh:
        # Early: nobody waits for 'early' yet, so the signal is kept.
        assert await mesh.signal("approve", {"id": "early", "approved": "later"}) == 0
        job = await mesh.pub("approval", {"id": "on-time"})
        early = await mesh.pub("approval", {"id": "early"})
        await _wait_registered(dsn, "on-time")
        assert await mesh.signal("approve", {"id": "on-time", "approved": True}) == 1
        assert (await mesh.wait(job, timeout=20)).data == {"approved": True}
        assert (await mesh.wait(early, timeout=20)).data == {"approved": "later"}
        # A second signal to a finished hook changes nothing (buffered, then expires).
        assert await mesh.signal("approve", {"id": "on-time", "approved": False}) == 0
        assert (await mesh.get_job(job)).data == {"approved": True}


async def test_signal_with_timeout_race(dsn: str) -> None:
    async with mesh_with(dsn, HOOKS) as mesh:
        fast = await mesh.pub("race", {"id": "fast", "timeout": 30})
        slow = await mesh.pub("race", {"id": "slow", "timeout": 0.2})
        await _wait_registered(dsn, "fast")
        assert await mesh.signal("answer", {"id": "fast", "answer": 42}) == 1
        assert (await mesh.wait(fast, timeout=20)).data == {"answer": 42}
        timed_out = await mesh.wait(slow, timeout=20)
        steps = [(s.activity, s.leg) for s in timed_out.timeline]
    assert timed_out.data == {}  # the timer won: no hook data
    assert steps.count(("timed", 2)) == 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM mesh.hook_signals").fetchone() == (0,)


async def test_signal_activity_one_and_all(dsn: str) -> None:
    async with mesh_with(dsn, HOOKS) as mesh:
        waiting = await mesh.pub("approval", {"id": "relay-target"})
        racers = [await mesh.pub("race", {"id": f"r{i}", "timeout": 60}) for i in range(3)]
        for key in [waiting, *racers]:
            await _wait_registered(dsn, key)
        await mesh.pubsub("relay", {"target": "relay-target"}, timeout=20)
        assert (await mesh.wait(waiting, timeout=20)).data == {"approved": "yes"}
        for key in racers:
            assert (await mesh.wait(key, timeout=20)).data == {"answer": "to all"}


def test_a_signal_and_the_registration_of_its_hook_cannot_miss_each_other(dsn: str) -> None:
    """The engine registers a hook in a transaction that has not committed yet, and a signal
    for it arrives meanwhile: the signal waits for that commit and resumes the hook, instead
    of finding no hook, being buffered, and leaving the job waiting forever."""
    import threading
    import time as clock

    from mesh.manifests import load_manifest
    from mesh.model.graph.mapping import signal_key
    from mesh.model.graph.state import RegisterHook
    from mesh.pg import apps
    from mesh.pg import jobs as rows
    from mesh.pg.operations import Operations

    with psycopg.connect(dsn, autocommit=True) as setup:
        apps.deploy(setup, load_manifest(HOOKS))
        apps.activate(setup, "t", "1")
        key = Operations("t").pub(setup, "nap", {})  # any job will do
    outcome: list[int] = []
    with psycopg.connect(dsn, autocommit=True) as engine, engine.transaction():
        job = rows.lock_jobs(engine, "t", [key])[key]
        job.commands.append(RegisterHook("approve", signal_key(key), "wait", ""))
        rows.run_commands(engine, [job], lambda: "m", clock.time())  # registered, not committed

        def signal() -> None:
            with psycopg.connect(dsn, autocommit=True) as client:
                outcome.append(Operations("t").signal(client, "approve", {"id": key}))

        sender = threading.Thread(target=signal)
        sender.start()
        with psycopg.connect(dsn, autocommit=True) as watch:
            deadline = clock.monotonic() + 15
            while not outcome and clock.monotonic() < deadline:
                blocked = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                ).fetchone()
                if blocked == (1,):
                    break
                clock.sleep(0.01)
        assert not outcome, "the signal did not wait for the registration to commit"
    sender.join(timeout=15)
    assert outcome == [1]  # it found the hook once the registration committed
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM mesh.buffered_signals").fetchone() == (0,)


async def _first_value(dsn: str, sql: str, key: str) -> object:
    """Poll ``sql`` (one %s parameter) until its first row's first value is truthy."""
    while True:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(sql, (key,)).fetchone()
        if row and row[0]:
            return row[0]
        await trio.sleep(0.02)


async def _wait_registered(dsn: str, key: str) -> None:
    await _first_value(
        dsn,
        "SELECT count(*) FROM mesh.hook_signals h JOIN mesh.jobs j ON j.id = h.job_id "
        "WHERE j.key = %s",
        key,
    )


CYCLE = """
app:
  id: t
  version: '1'
  graphs:
    - subscribes: loop
      activities:
        l:
          type: trigger
          job: {maps: {count: 0}}
        pivot: {type: hook}
        step:
          type: worker
          topic: t.double
          input: {maps: {value: '{$job.data.count}'}}
          job:
            maps:
              count:
                '@pipe':
                  - ['{$job.data.count}', 1]
                  - ['{@math.add}']
              last: '{$self.output.data.value}'
        again:
          type: cycle
          ancestor: pivot
      transitions:
        l: [{to: pivot}]
        pivot: [{to: step}]
        step:
          - to: again
            conditions:
              match:
                - expected: true
                  actual:
                    '@pipe':
                      - ['{$job.data.count}', 3]
                      - ['{@conditional.less_than}']
"""


async def test_cycle_re_enters_its_ancestor_in_new_dimensions(dsn: str) -> None:
    async with mesh_with(dsn, CYCLE, {"t.double": double}) as mesh:
        key = await mesh.pub("loop", {})
        record = await mesh.wait(key, timeout=20)
    assert record.data == {"count": 3, "last": 4}
    dims = sorted(d for d in record.activities["step"])
    assert dims == ["", "/1", "/2"]
    assert record.activities["step"]["/2"]["input"] == {"value": 2}


INTERRUPTS = """
app:
  id: t
  version: '1'
  graphs:
    - subscribes: stop.self
      activities:
        s: {type: trigger}
        halt: {type: interrupt, reason: 'not needed'}
      transitions:
        s: [{to: halt}]
    - subscribes: stop.other
      activities:
        o: {type: trigger}
        kill:
          type: interrupt
          target: '{o.output.data.victim}'
          descend: true
      transitions:
        o: [{to: kill}]
    - subscribes: long.parent
      activities:
        lp:
          type: trigger
          stats: {id: '{$self.input.data.id}'}
        kid:
          type: await
          topic: long.child
          input: {maps: {id: '{lp.output.data.id}'}}
      transitions:
        lp: [{to: kid}]
    - subscribes: long.child
      activities:
        lc: {type: trigger}
        forever: {type: hook, sleep: 3600}
      transitions:
        lc: [{to: forever}]
"""


async def test_interrupt_self_other_and_descend(dsn: str) -> None:
    async with mesh_with(dsn, INTERRUPTS) as mesh:
        with pytest.raises(JobFailed, match="interrupted: not needed") as own:
            await mesh.pubsub("stop.self", {}, timeout=20)
        parent = await mesh.pub("long.parent", {"id": "victim"})
        child = await _child_of(dsn, parent)
        await mesh.pubsub("stop.other", {"victim": parent}, timeout=20)
        with pytest.raises(JobFailed):
            await mesh.wait(parent, timeout=20)
        with pytest.raises(JobFailed):
            await mesh.wait(child, timeout=20)
        assert await mesh.get_status(child) == "interrupted"
        # The API interrupt; a finished job reports False.
        other = await mesh.pub("long.child", {})
        assert await mesh.interrupt(other, reason="operator") is True
        assert await mesh.interrupt(other) is False
    assert own.value.job.status == "interrupted"
    # HotMesh's semaphore (jobs.status): interrupt subtracts 1,000,000,000 from what was open.
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT status, state FROM jobs WHERE key = ANY(%s)", ([other, parent, child],)
        ).fetchall()
    assert len(rows) == 3 and all(
        -1_000_000_000 <= open_ < -100_000_000 and state == "interrupted" for open_, state in rows
    )


async def _child_of(dsn: str, parent: str) -> str:
    child = await _first_value(
        dsn,
        "SELECT c.key FROM mesh.jobs c JOIN mesh.jobs p ON p.id = c.parent_id WHERE p.key = %s",
        parent,
    )
    return str(child)


def engine_messages(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM mesh.stream_messages WHERE app = 't' AND stream = 'engine'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def workers_of(mesh: Mesh) -> list[Any]:
    from actors.worker import WorkerActor

    return [actor for actor in mesh.node.actors if isinstance(actor, WorkerActor)]


async def test_a_response_is_applied_to_its_job_in_the_transaction_that_acks_its_request(
    dsn: str,
) -> None:
    # No engine in this node: the trigger runs in pub's transaction, each response in the one
    # that acks its request, so the workflow needs no engine stream message at all.
    async with Mesh.open(
        dsn, app="t", engine=False, workers={"t.double": double}, worker_settings=FAST
    ) as mesh:
        await mesh.deploy(SEQUENCE)
        await mesh.activate("1")
        data = await mesh.pubsub("calc", {"value": 5}, timeout=20)
        (worker,) = workers_of(mesh)
        applied = worker.statistics().responses_applied
    assert data == {"first": 5, "result": 21}
    assert applied == 2
    assert engine_messages(dsn) == 0


async def test_a_response_that_cannot_be_applied_at_the_ack_goes_through_the_engine_stream(
    dsn: str,
) -> None:
    gates = {100: trio.Event(), 300: trio.Event()}

    async def gated_double(data: dict[str, Any]) -> dict[str, Any]:
        gate = gates.get(data["value"])
        if gate is not None:
            await gate.wait()
        return await double(data)

    async with Mesh.open(
        dsn,
        app="t",
        engine=False,
        workers={"t.double": gated_double},
        worker_settings=FAST,
        statement_timeout=0.5,
    ) as mesh:
        await mesh.deploy(SEQUENCE)
        await mesh.activate("1")
        # The engine stream is paused: the response waits on it like any engine message.
        await mesh.throttle(-1, topic="engine")
        await wait_until(lambda: mesh.node.throttle.effective("engine") == -1, what="the pause")
        paused = await mesh.pub("calc", {"value": 100})
        gates[100].set()
        await wait_until(lambda: engine_messages(dsn) == 1, what="the response on the stream")
        await mesh.throttle(0)
        await wait_until(lambda: mesh.node.throttle.effective("engine") == 0, what="the resume")
        # The job is locked past the statement timeout: the database refuses the applying
        # transaction, and the ack goes through with the response on the engine stream.
        locked = await mesh.pub("calc", {"value": 300})
        with psycopg.connect(dsn) as holder:
            holder.execute("SELECT 1 FROM mesh.jobs WHERE key = %s FOR UPDATE", (locked,))
            gates[300].set()
            await wait_until(lambda: engine_messages(dsn) == 2, what="the refused response")
            holder.rollback()
        assert [await mesh.get_status(key) for key in (paused, locked)] == ["running"] * 2
        # An engine takes them from the stream; the second steps are applied at their acks.
        async with Mesh.open(dsn, app="t", workers={}, engine_settings=FAST) as engine:
            results = [(await engine.wait(key, timeout=20)).data for key in (paused, locked)]
    assert results == [{"first": 100, "result": 401}, {"first": 300, "result": 1201}]
    assert engine_messages(dsn) == 0


async def test_a_paused_engine_stream_holds_its_messages_until_resumed(dsn: str) -> None:
    from actors.graphs import EngineActor

    async with mesh_with(dsn, SEQUENCE, {"t.double": double}) as mesh:
        (engine,) = [a for a in mesh.node.actors if isinstance(a, EngineActor)]
        await mesh.throttle(-1, topic="engine")
        await wait_until(
            lambda: engine.statistics().consumer.paused, what="every engine loop paused"
        )
        key = await mesh.pub("calc", {"value": 1})
        await wait_until(lambda: engine_messages(dsn) == 1, what="the response on the stream")
        with psycopg.connect(dsn) as conn:
            leased = conn.execute(
                "SELECT count(*) FROM mesh.stream_messages WHERE lease_owner IS NOT NULL"
            ).fetchone()
        assert leased == (0,) and await mesh.get_status(key) == "running"
        await mesh.throttle(0)
        assert (await mesh.wait(key, timeout=20)).data == {"first": 1, "result": 5}
    assert engine_messages(dsn) == 0


LIFECYCLE = """
app:
  id: t
  version: '1'
  graphs:
    - subscribes: parent
      activities:
        p: {type: trigger}
        child:
          type: await
          topic: kid
          input: {maps: {value: '{p.output.data.value}'}}
          job: {maps: {fromChild: '{$self.output.data.doubled}'}}
      transitions:
        p: [{to: child}]
    - subscribes: kid
      activities:
        k: {type: trigger}
        d:
          type: worker
          topic: t.double
          input: {maps: {value: '{k.output.data.value}'}}
          job: {maps: {doubled: '{$self.output.data.value}'}}
          persist: true
        close:
          type: hook
          job: {maps: {closedBy: '{$self.hook.data.by}'}}
      transitions:
        k: [{to: d}]
        d: [{to: close}]
      hooks:
        close.kid:
          - to: close
            conditions:
              match:
                - expected: '{$job.metadata.jid}'
                  actual: '{$self.hook.data.id}'
    - subscribes: session
      persistent: true
      activities:
        s:
          type: trigger
          stats: {id: '{$self.input.data.id}'}
          statusThreshold: 1
          job: {maps: {value: '{$self.output.data.value}'}}
        first:
          type: worker
          topic: t.double
          input: {maps: {value: '{s.output.data.value}'}}
          job: {maps: {first: '{$self.output.data.value}'}}
        inbox:
          type: hook
          job: {maps: {last: '{$self.hook.data.note}'}}
      transitions:
        s: [{to: first}, {to: inbox}]
      hooks:
        note:
          - to: inbox
            conditions:
              match:
                - expected: '{$job.metadata.jid}'
                  actual: '{$self.hook.data.id}'
"""


async def test_persist_answers_waiters_and_the_parent_while_the_job_stays_open(
    dsn: str,
) -> None:
    events: list[tuple[str, str]] = []
    async with mesh_with(dsn, LIFECYCLE, {"t.double": double}) as mesh:
        mesh.sub("kid", lambda event: events.append((event.job_id, event.status)))
        parent = await mesh.pub("parent", {"value": 4})
        # The parent's await completes with the child's data as it was when it persisted.
        assert (await mesh.wait(parent, timeout=20)).data == {"fromChild": 8}
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT key FROM mesh.jobs WHERE topic = 'kid'").fetchone()
        assert row is not None
        kid = row[0]
        child = await mesh.wait(kid, timeout=20)  # answers at once: it persisted
        assert child.status == "running" and child.persisted and child.data == {"doubled": 8}

        def wait_synchronously() -> Any:
            from mesh.pg.client import MeshClient

            with MeshClient(dsn, app="t") as client:
                return client.wait(kid, timeout=20)

        assert (await trio.to_thread.run_sync(wait_synchronously)).persisted
        await _wait_registered(dsn, kid)
        assert await mesh.signal("close.kid", {"id": kid, "by": "test"}) == 1
        await wait_until(lambda: (kid, "done") in events, what="the child to finish")
        closed = await mesh.get_job(kid)
        parent_steps = [(s.activity, s.leg) for s in (await mesh.get_job(parent)).timeline]
    assert closed.status == "done" and closed.data == {"doubled": 8, "closedBy": "test"}
    assert closed.persisted_at is not None and closed.completed_at is not None
    assert closed.persisted_at < closed.completed_at
    assert [status for key, status in events if key == kid] == ["persisted", "done"]
    # One answer for the parent: finishing after persisting sends it nothing more.
    assert parent_steps.count(("child", 2)) == 1
    assert engine_messages(dsn) == 0


async def test_a_persistent_job_answers_at_its_threshold_and_finishes_when_nothing_is_open(
    dsn: str,
) -> None:
    async with mesh_with(dsn, LIFECYCLE, {"t.double": double}) as mesh:
        key = await mesh.pub("session", {"id": "s1", "value": 3})
        # 'first' done, 'inbox' still open: at the threshold (1), so it persists.
        answered = await mesh.wait(key, timeout=20)
        assert answered.persisted and answered.semaphore == 1
        assert answered.data == {"value": 3, "first": 6}
        await _wait_registered(dsn, "s1")
        assert await mesh.signal("note", {"id": "s1", "note": "bye"}) == 1
        await wait_until(lambda: status_is(mesh, key, "done"), what="the session to finish")
        done = await mesh.get_job(key)
    assert done.data == {"value": 3, "first": 6, "last": "bye"}


async def status_is(mesh: Mesh, key: str, status: str) -> bool:
    return await mesh.get_status(key) == status


async def test_a_pending_start_reserves_the_job_and_runs_nothing(dsn: str) -> None:
    from mesh.errors import InvalidPayload, UnknownJob

    async with Mesh.open(
        dsn, app="t", workers={"t.double": double}, engine_settings=FAST, reap_interval=0.1
    ) as mesh:
        await mesh.deploy(SEQUENCE)
        await mesh.activate("1")
        for bad in (-1, 0, "soon", float("inf")):
            with pytest.raises(InvalidPayload, match="pending"):
                await mesh.pub("calc", {"value": 1}, job_id="bad", pending=bad)
        held = await mesh.pub("calc", {"value": 7}, job_id="held", pending=60)
        brief = await mesh.pub("calc", {"value": 8}, job_id="brief", pending="200 ms")
        record = await mesh.get_job(held)
        # The trigger ran (its job maps wrote the data); nothing after it did.
        assert record.status == "pending" and record.data == {"first": 7}
        assert [(s.activity, s.leg) for s in record.timeline] == [("start", 1), ("start", 2)]
        assert record.completed_at is None and record.expires_at is not None
        with pytest.raises(DuplicateJob):
            await mesh.pub("calc", {"value": 9}, job_id="held")
        assert await mesh.interrupt(held, reason="not needed")
        assert await mesh.get_status(held) == "interrupted"
        # Pruned once its reservation ends; the id is free again.
        with trio.fail_after(20):
            while True:
                try:
                    await mesh.get_job(brief, details=False)
                except UnknownJob:
                    break
                await trio.sleep(0.05)
        assert (await mesh.pubsub("calc", {"value": 1}, job_id="brief", timeout=20)) == {
            "first": 1,
            "result": 5,
        }
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM mesh.jobs WHERE key = 'bad'").fetchone() == (0,)


async def test_the_cli_reserves_a_pending_job_and_lists_it(dsn: str, tmp_path: Path) -> None:
    from tests.helpers import mesh as run_mesh

    async with mesh_with(dsn, SEQUENCE) as mesh:

        def cli(*args: str) -> Any:
            return run_mesh("pub", "calc", *args, "--app", "t", dsn=dsn, cwd=tmp_path)

        refused = await trio.to_thread.run_sync(cli, '{"value": 2}', "--pending", "soon")
        reserved = await trio.to_thread.run_sync(
            cli, '{"value": 2}', "--job-id", "cli-held", "--pending", "10 minutes"
        )
        listed = await trio.to_thread.run_sync(
            lambda: run_mesh("jobs", "--status", "pending", "--app", "t", dsn=dsn, cwd=tmp_path)
        )
        shown = await trio.to_thread.run_sync(
            lambda: run_mesh("job", "cli-held", "--app", "t", dsn=dsn, cwd=tmp_path)
        )
        record = await mesh.get_job("cli-held")
    assert refused.returncode != 0 and "pending='soon'" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert reserved.returncode == 0 and reserved.stdout.strip() == "cli-held", reserved.stderr
    assert "cli-held" in listed.stdout and "pending" in listed.stdout
    assert "status   pending" in shown.stdout and "reserved until" in shown.stdout
    assert record.status == "pending" and record.expires_at is not None
    assert 590 < (record.expires_at - record.created_at).total_seconds() < 610


async def test_duplicate_and_stale_deliveries_change_nothing(dsn: str) -> None:
    from mesh.model.ids import new_message_id
    from mesh.model.messages import ActivityResponse, encode
    from mesh.model.outcomes import Outgoing
    from mesh.pg import streams

    async with mesh_with(dsn, SEQUENCE, {"t.double": double}) as mesh:
        key = await mesh.pub("calc", {"value": 1}, job_id="dup")
        record = await mesh.wait(key, timeout=20)
        # The same answer again (this generation), and one for an older generation.
        late = [
            ActivityResponse(
                request_id=new_message_id(),
                app="t",
                topic="t.double",
                status="success",
                code=200,
                data={"value": 999},
                job_id="dup",
                activity_id="a",
                job_gid=gid,
            )
            for gid in (record.gid, "old-gen")
        ]
        with psycopg.connect(dsn, autocommit=True) as conn:
            streams.enqueue(conn, [Outgoing("t", "engine", encode(m)) for m in late])
        while True:
            with psycopg.connect(dsn) as conn:
                row = conn.execute("SELECT count(*) FROM mesh.stream_messages").fetchone()
            if row == (0,):
                break
            await trio.sleep(0.05)
        after = await mesh.get_job(key)
    assert after.data == record.data
    assert len(after.timeline) == len(record.timeline)


async def test_finished_jobs_are_pruned_after_their_expiry(dsn: str) -> None:
    from mesh.errors import UnknownJob

    short = SEQUENCE.replace(
        "    - subscribes: calc\n", "    - subscribes: calc\n      expire: 0.2\n"
    )
    async with Mesh.open(
        dsn, app="t", workers={"t.double": double}, engine_settings=FAST, reap_interval=0.1
    ) as mesh:
        await mesh.deploy(short)
        await mesh.activate("1")
        key = await mesh.pub("calc", {"value": 1})
        record = await mesh.wait(key, timeout=20)
        assert record.expires_at is not None and record.completed_at is not None
        assert 0.1 < (record.expires_at - record.completed_at).total_seconds() < 0.5
        with trio.fail_after(20):
            while True:
                try:
                    await mesh.get_job(key, details=False)
                except UnknownJob:
                    break
                await trio.sleep(0.05)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM mesh.jobs_attributes").fetchone() == (0,)


def test_completions_share_notifications_within_notifys_size_limit() -> None:
    import json

    from mesh.model.graph.effects import ANNOUNCEMENT_BYTES, announcement_payloads

    events = [
        json.dumps(
            {"topic": "calc", "job_id": f"job-{n:04d}-" + "x" * 80, "status": "done"}
        ).encode()
        for n in range(300)
    ]
    payloads = announcement_payloads(events)
    assert len(payloads) > 1 and all(len(p.encode()) <= ANNOUNCEMENT_BYTES for p in payloads)
    carried = [event for payload in payloads for event in json.loads(payload)]
    assert carried == [json.loads(e) for e in events]
    assert announcement_payloads(events[:1]) == ["[" + events[0].decode() + "]"]
    assert announcement_payloads([]) == []


WITHDRAWN = """
app:
  id: t
  version: '1'
  graphs:
    - subscribes: stuck
      activities:
        s: {type: trigger}
        ask: {type: worker, topic: nobody.serves}
        nap: {type: hook, sleep: 3600}
      transitions:
        s: [{to: ask}, {to: nap}]
"""


def queued_for(dsn: str, key: str) -> list[str]:
    """The stream messages that name job ``key``: their types."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT payload->>'type' FROM mesh.stream_messages WHERE payload->>'job_id' = %s",
            (key,),
        ).fetchall()
    return sorted(row[0] for row in rows)


async def test_interrupt_withdraws_the_jobs_queued_requests_and_timers(dsn: str) -> None:
    async with mesh_with(dsn, WITHDRAWN) as mesh:
        kept = await mesh.pub("stuck", {}, job_id="kept")
        ended = await mesh.pub("stuck", {}, job_id="ended")
        await wait_until(
            lambda: queued_for(dsn, ended) == ["request", "resume"],
            what="its request (nobody serves the topic) and its timer queued",
        )
        assert await mesh.interrupt(ended, reason="operator")
        withdrawn = queued_for(dsn, ended)
        still = queued_for(dsn, kept)
        assert await mesh.scrub(ended)
    assert withdrawn == [], "interrupt withdraws them in its transaction"
    assert still == ["request", "resume"], "another job's are left alone"


SLOTS = """
app:
  id: t
  version: '1'
  graphs:
    - subscribes: slots
      activities:
        s:
          type: trigger
          job:
            maps:
              results[3]: '{$self.output.data.results}'
              seen[-]: '{$self.output.data.marks}'
              find[_]: '{$self.output.data.search}'
"""


async def test_job_map_suffixes__slots_markers_and_search_fields(dsn: str) -> None:
    """HotMesh's job map keys: `name[N]` stores under `name` (N reserved compressed symbols
    there; names here are stored as they are), `name[-]` and `name[_]` spread an object's
    keys as marker (`-key`) and search (`_key`) fields."""
    async with mesh_with(dsn, SLOTS) as mesh:
        data = await mesh.pubsub(
            "slots",
            {"results": [1, 2, 3], "marks": {"first": "yes"}, "search": {"sku": "sku-9"}},
            timeout=20,
        )
    assert data == {"results": [1, 2, 3], "-first": "yes", "_sku": "sku-9"}
