"""Graphs on real Postgres through the Mesh API: sleeps, hooks and signals (and their race
with the hook's registration), cycles into new dimensions, interrupts."""

from __future__ import annotations

import psycopg
import pytest
import trio
import trio.testing

from mesh.errors import (
    JobFailed,
)
from tests.helpers import wait_until, wait_until_sync
from tests.pg.graph_setup import (
    double,
    mesh_with,
    wait_registered,
)

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
        await wait_registered(dsn, "on-time")
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
        await wait_registered(dsn, "fast")
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
            await wait_registered(dsn, key)
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

            def blocked() -> bool:
                row = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                ).fetchone()
                return bool(outcome) or row == (1,)

            wait_until_sync(blocked, timeout=15, what="the signal to wait for the registration")
        assert not outcome, "the signal did not wait for the registration to commit"
    sender.join(timeout=15)
    assert outcome == [1]  # it found the hook once the registration committed
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM mesh.buffered_signals").fetchone() == (0,)


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
    """The key of ``parent``'s child, once it has one."""
    found: list[str] = []

    def child() -> bool:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT c.key FROM mesh.jobs c JOIN mesh.jobs p ON p.id = c.parent_id "
                "WHERE p.key = %s",
                (parent,),
            ).fetchone()
        if row:
            found.append(row[0])
        return bool(row)

    await wait_until(child, what=f"a child of {parent!r}")
    return found[0]
