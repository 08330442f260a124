"""Graphs on real Postgres through the Mesh API (an in-process node with an engine and
workers): the order workflow, sequences, refusals, concurrent pubs, worker errors, children."""

from __future__ import annotations

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
from tests.pg.graph_setup import (
    FAST,
    ORDER_WORKERS,
    SEQUENCE,
    double,
    mesh_with,
)


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
