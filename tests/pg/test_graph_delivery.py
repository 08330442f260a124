"""Graphs on real Postgres through the Mesh API: responses applied at their acks, paused
streams, persistent jobs, pending starts, duplicate deliveries, pruning, completion notices,
withdrawn requests and job-map suffixes."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import trio
import trio.testing

from mesh import activity
from mesh.api import Mesh
from mesh.errors import (
    DuplicateJob,
    InvalidPayload,
)
from tests.helpers import wait_until
from tests.pg.graph_setup import (
    FAST,
    SEQUENCE,
    double,
    mesh_with,
    wait_registered,
)


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

    @activity.defn(loop="trio")  # it waits for the test's trio events
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
        await wait_registered(dsn, kid)
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
        await wait_registered(dsn, "s1")
        assert await mesh.signal("note", {"id": "s1", "note": "bye"}) == 1
        await wait_until(lambda: status_is(mesh, key, "done"), what="the session to finish")
        done = await mesh.get_job(key)
    assert done.data == {"value": 3, "first": 6, "last": "bye"}


async def status_is(mesh: Mesh, key: str, status: str) -> bool:
    return await mesh.get_status(key) == status


async def test_a_pending_start_reserves_the_job_and_runs_nothing(dsn: str) -> None:

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
        await wait_until(lambda: gone(mesh, brief), timeout=20, what="the pending job pruned")
        assert (await mesh.pubsub("calc", {"value": 1}, job_id="brief", timeout=20)) == {
            "first": 1,
            "result": 5,
        }
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM mesh.jobs WHERE key = 'bad'").fetchone() == (0,)


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
        await wait_until(lambda: queued(dsn) == 0, what="the late deliveries handled")
        after = await mesh.get_job(key)
    assert after.data == record.data
    assert len(after.timeline) == len(record.timeline)


async def test_finished_jobs_are_pruned_after_their_expiry(dsn: str) -> None:

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
        await wait_until(lambda: gone(mesh, key), timeout=20, what="the finished job pruned")
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


async def gone(mesh: Mesh, key: str) -> bool:
    """Whether the job ``key`` is gone (pruned)."""
    from mesh.errors import UnknownJob

    try:
        await mesh.get_job(key, details=False)
    except UnknownJob:
        return True
    return False


def queued(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM mesh.stream_messages").fetchone()
    assert row is not None
    return int(row[0])
