"""The quorum in-process: pub_quorum / sub_quorum (async iterator), order per sender."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors.quorum import QuorumActor
from mesh.model.ids import observer_channel
from mesh.model.quorum import SystemHealth, User
from mesh.runtime.node import Node
from tests.helpers import wait_until
from tests.nodes import APP


def health() -> SystemHealth:
    return SystemHealth(1.0, 1, 1, 2, 0, 0)


async def test_pub_quorum__reaches_sub_quorum_in_order(dsn: str) -> None:
    node = Node(dsn, app=APP)
    member = QuorumActor(node, roles=["worker"], topics=[], system_health=health)
    received: list[Any] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: node.run([member], handle_signals=False, task_status=task_status)
        )
        async with member.messages() as inbox:
            for n in range(20):
                await node.quorum.pub_quorum("counter", {"n": n})
            with trio.fail_after(10):
                async for message in inbox:
                    if isinstance(message, User):
                        received.append(message.message["n"])
                        if len(received) == 20:
                            break
        node.request_stop()
    assert received == list(range(20))
    assert member.statistics().received["user"] == 20


async def test_profile__reports_real_readings(dsn: str) -> None:
    node = Node(dsn, app=APP)
    member = QuorumActor(node, roles=["worker"], topics=["work"], system_health=health)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: node.run([member], handle_signals=False, task_status=task_status)
        )
        (profile,) = await node.quorum.roll_call(0.5)
        node.request_stop()
    assert profile.guid == node.guid and profile.topics == ["work"]
    assert [s.stream for s in profile.streams] == ["work"] and profile.throttles == {"work": 0}
    assert abs(profile.clock_skew_ms) < 5000


async def test_quorum_api__bad_input_is_refused_and_nothing_sent(dsn: str) -> None:
    import psycopg
    import pytest

    from mesh.errors import InvalidIdentifier, InvalidPayload

    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    node = Node(dsn, app=APP)
    member = QuorumActor(node, roles=["worker"], topics=[], system_health=health)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: node.run([member], handle_signals=False, task_status=task_status)
        )
        for topic, message, error in (
            ("bad topic!", {}, InvalidIdentifier),
            ("", {}, InvalidIdentifier),
            ("t", {"x": "nul \x00"}, InvalidPayload),
            ("t", {"x": "lone \udc80"}, InvalidPayload),
            ("t", deep, InvalidPayload),
            ("t", {"blob": "x" * (2 << 20)}, InvalidPayload),  # over 1 MiB, even by reference
        ):
            with pytest.raises(error):
                await node.quorum.pub_quorum(topic, message)
        with pytest.raises(InvalidIdentifier):
            await node.quorum.set_throttle(-1, topic="bad topic!")
        with pytest.raises(InvalidPayload):
            await node.quorum.set_throttle(-7)
        node.request_stop()
    assert not any(member.statistics().received.values())
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM mesh.throttles").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM mesh.quorum_payloads").fetchone() == (0,)


async def test_pub_quorum__any_type_and_sub_quorum_sees_addressed_traffic(dsn: str) -> None:
    """pub_quorum sends any message type; a subscriber also sees the copies of messages
    addressed to other members (a pong to its pinger, a throttle for one member)."""
    from mesh.model.quorum import Ping, Pong, Throttle

    node = Node(dsn, app=APP)
    member = QuorumActor(node, roles=["worker"], topics=[], system_health=health)
    seen: list[Any] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: node.run([member], handle_signals=False, task_status=task_status)
        )
        async with member.messages() as inbox:
            with trio.fail_after(10):  # subscribing made the member listen to the copies
                await node.listener.wait_listening([observer_channel(APP)])
            await node.quorum.pub_quorum(Pong(originator="someone-else", guid="elsewhere"))
            await node.quorum.pub_quorum(Throttle(throttle=0, guid="elsewhere"), guid="elsewhere")
            await node.quorum.pub_quorum(Ping(originator="a-dashboard"))
            with trio.fail_after(10):
                async for message in inbox:
                    seen.append(message)
                    if {type(m) for m in seen} >= {Pong, Throttle, Ping}:
                        break
        with pytest.raises(TypeError, match="not a quorum message"):
            await node.quorum.pub_quorum({"type": "ping"})  # type: ignore[arg-type]
        node.request_stop()
    throttle = next(m for m in seen if isinstance(m, Throttle))
    assert throttle.guid == "elsewhere"  # addressed to another member: seen, not applied
    assert member.statistics().received["throttle"] == 0


async def test_job_events_reach_the_quorum_only_when_the_app_asks(dsn: str) -> None:
    """quorum.announce_jobs: each job event is a `job` message sub_quorum subscribers see;
    without it (the default) none is sent."""
    from mesh.api import Mesh
    from mesh.model.quorum import Job
    from tests.code_workflows import add_one, sequence

    heard: dict[bool, list[Job]] = {True: [], False: []}
    for asked in (False, True):
        async with Mesh.open(
            dsn,
            app=f"told-{asked}".lower(),
            announce_jobs=asked,
            workflows={"q": [sequence]},
            activities={"q": [add_one]},
        ) as mesh:
            mesh.sub_quorum(lambda m, a=asked: heard[a].append(m) if isinstance(m, Job) else None)
            handles = [
                await mesh.start_workflow(sequence, n, task_queue="q", workflow_id=f"w{n}")
                for n in range(3)
            ]
            for handle in handles:
                await handle.result(timeout=30)
            if asked:
                await wait_until(lambda: len(heard[True]) == 3, what="three job messages")
            else:  # a marker sent after the results: the member has seen what came before
                await mesh.pub_quorum("marker", {})
                await wait_until(lambda: mesh_saw_marker(mesh), what="the marker")
    assert heard[False] == []
    told = sorted((m.topic, m.job_id, m.data["status"]) for m in heard[True])
    assert told == [("sequence", f"w{n}", "done") for n in range(3)]
    assert all(m.sender for m in heard[True])


def mesh_saw_marker(mesh: Any) -> bool:
    (member,) = [a for a in mesh.node.actors if isinstance(a, QuorumActor)]
    return member.statistics().received["user"] >= 1
