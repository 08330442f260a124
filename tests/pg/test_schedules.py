"""Schedules against Postgres: a tick runs exactly once however many leaders look and
whatever a look that dies leaves; overlap policies; catch-up; the client calls; and a
node's leader firing an interval schedule end to end."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
import trio

from mesh import ConsumerSettings, Mesh, MeshClient, UnknownSchedule, workflow
from mesh.errors import InvalidPayload
from mesh.model.schedules import make_spec
from mesh.pg import schedules
from mesh.pg.operations import Operations
from tests.helpers import scalar, wait_until

FAST = ConsumerSettings(poll_interval=0.2)


async def waits(n: int) -> int:
    await workflow.condition("go")
    return n


async def quick(n: int) -> int:
    return n + 1


def due(dsn: str, schedule_id: str, seconds_ago: float, grid: int = 1) -> None:
    """Move the schedule's next tick into the past (as if that much time had passed), on
    a multiple of ``grid`` seconds (an interval schedule's ticks)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE mesh.schedules SET next_tick = t, next_fire_at = t FROM (SELECT "
            "to_timestamp(floor(extract(epoch FROM now()) / %s) * %s - %s) AS t) AS given "
            "WHERE id = %s",
            (grid, grid, seconds_ago, schedule_id),
        )


def runs(dsn: str, schedule_id: str) -> int:
    return int(
        scalar(dsn, "SELECT count(*) FROM mesh.jobs WHERE key LIKE %s", (f"{schedule_id}@%",))
    )


def test_a_tick_runs_once_whoever_looks_and_a_look_that_dies_leaves_nothing(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        spec = make_spec("every-hour", "quick", [1], every="1 hour", task_queue="q")
        assert schedules.create(conn, "s", spec) is True
        with pytest.raises(InvalidPayload, match="exists"):
            schedules.create(conn, "s", spec)
    due(dsn, "every-hour", 5)
    # A look that dies before its commit: nothing started, nothing advanced.
    with psycopg.connect(dsn) as conn, pytest.raises(RuntimeError), conn.transaction():
        schedules.fire_due(conn, "s")
        assert runs(dsn, "every-hour") == 0  # not committed: others see nothing
        raise RuntimeError("the leader died here")
    assert runs(dsn, "every-hour") == 0
    # Eight leaders look at once (a split brain): the tick runs once.
    reports: list[schedules.FireReport] = []

    def look() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            reports.append(schedules.fire_due(conn, "s"))

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.fired for r in reports) == 1 and runs(dsn, "every-hour") == 1
    with psycopg.connect(dsn, autocommit=True) as conn:
        again = schedules.fire_due(conn, "s")  # not due any more
        described = schedules.describe(conn, "s", "every-hour")
    assert again.fired == 0 and described.fired == 1
    assert [r.status for r in described.recent] == ["running"]
    assert len(described.next_fire_times) == 5


def test_catch_up_runs_the_newest_tick_in_the_window_and_counts_the_rest(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        spec = make_spec("ticks", "quick", [1], every=10, catchup_window=30, task_queue="q")
        schedules.create(conn, "s", spec)
        due(dsn, "ticks", 120, grid=10)  # down for two minutes
        report = schedules.fire_due(conn, "s")
        described = schedules.describe(conn, "s", "ticks")
    assert report.fired == 1 and runs(dsn, "ticks") == 1
    # 13 ticks were due: 10 before the window (missed), 3 in it: the oldest of those runs,
    # the other two find it running and are skipped (overlap "skip").
    assert described.missed == 10 and described.skipped == 2


@pytest.mark.parametrize(
    ("overlap", "second_tick"),
    [("skip", 1), ("allow_all", 2), ("terminate_other", 2), ("buffer_one", 1)],
)
def test_overlap_with_a_run_still_going(dsn: str, overlap: str, second_tick: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        spec = make_spec(
            "o",
            "waits",
            [1],
            every=3600,
            overlap=overlap,
            catchup_window=3600,
            task_queue="q",  # type: ignore[arg-type]
        )
        schedules.create(conn, "s", spec)
        due(dsn, "o", 100)
        assert schedules.fire_due(conn, "s").fired == 1
        first = schedules.describe(conn, "s", "o").recent[0].workflow_id
        due(dsn, "o", 50)  # another tick, with the first run waiting for its signal
        schedules.fire_due(conn, "s")
        described = schedules.describe(conn, "s", "o")
    assert runs(dsn, "o") == second_tick, described
    ordered = scalar(
        dsn,
        "SELECT count(*) FROM mesh.stream_messages WHERE payload->>'job_id' = %s "
        "AND payload->>'kind' = 'terminate'",
        (first,),
    )
    assert ordered == (1 if overlap == "terminate_other" else 0)  # the first run is ended
    if overlap == "skip":
        assert described.skipped == 1
    if overlap == "buffer_one":
        assert described.buffered_tick is not None
        # The first run ends: the next look starts the buffered tick.
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE mesh.jobs SET state = 'done' WHERE key = %s", (first,))
            assert schedules.fire_due(conn, "s").fired == 1
        assert runs(dsn, "o") == 2


async def test_clients_manage_schedules_and_a_leader_fires_them(dsn: str) -> None:
    client = MeshClient(dsn, app="sched")
    try:

        def manage() -> tuple[Any, ...]:
            assert client.create_schedule("tick", quick, [41], every="1 second", task_queue="q")
            assert client.create_schedule("nightly", quick, [1], cron="0 3 * * *", task_queue="q")
            client.pause_schedule("nightly")
            listed = [d.spec.id for d in client.list_schedules()]
            triggered = client.trigger_schedule("nightly")
            with pytest.raises(UnknownSchedule):
                client.pause_schedule("nobody")
            with pytest.raises(InvalidPayload, match="not a cron expression"):
                client.create_schedule("bad", quick, [1], cron="every day")
            return listed, triggered, client.describe_schedule("nightly")

        listed, triggered, nightly = await trio.to_thread.run_sync(manage)
        assert listed == ["nightly", "tick"] and nightly.paused
        assert triggered.startswith("nightly@")
        async with Mesh.open(
            dsn, app="sched", workflows={"q": [quick]}, worker_settings=FAST, engine_settings=FAST
        ) as mesh:

            async def two_done() -> bool:
                described = await mesh.describe_schedule("tick")
                return sum(r.status == "done" for r in described.recent) >= 2

            await wait_until(two_done, timeout=30, what="two ticks of the schedule done")
            described = await mesh.describe_schedule("tick")
            done = [r for r in described.recent if r.status == "done"]
            assert await mesh.get_handle(done[0].workflow_id).result() == 42
            assert (await mesh.describe_schedule("nightly")).fired == 0  # paused
            await mesh.delete_schedule("tick")
            with pytest.raises(UnknownSchedule):
                await mesh.describe_schedule("tick")
    finally:
        client.close()


def test_operations_fire_through_the_same_path(dsn: str) -> None:
    operations = Operations("s")
    with psycopg.connect(dsn, autocommit=True) as conn:
        operations.create_schedule(conn, make_spec("x", "quick", [1], every=60), replace=False)
        assert (
            operations.create_schedule(conn, make_spec("x", "quick", [2], every=120), replace=True)
            is False
        )
        assert operations.describe_schedule(conn, "x").spec.args == [2]


def test_with_allow_all_every_tick_in_the_window_runs(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        spec = make_spec(
            "all", "quick", [1], every=10, catchup_window=30, overlap="allow_all", task_queue="q"
        )
        schedules.create(conn, "s", spec)
        due(dsn, "all", 120, grid=10)
        report = schedules.fire_due(conn, "s")
        described = schedules.describe(conn, "s", "all")
    assert report.fired == 3 and runs(dsn, "all") == 3 and described.missed == 10
    assert [r.tick for r in described.recent] == sorted(
        (r.tick for r in described.recent), reverse=True
    )


def test_a_configs_schedules_are_created_kept_or_updated(dsn: str) -> None:
    first = make_spec("cfg", "quick", [1], every=3600, task_queue="q")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert schedules.ensure(conn, "s", [first]) == {"cfg": "created"}
        due(dsn, "cfg", 30)  # its next tick is due: a restart must not move it
        tick = schedules.describe(conn, "s", "cfg").next_fire_times[0]
        assert schedules.ensure(conn, "s", [first]) == {"cfg": "unchanged"}
        assert schedules.describe(conn, "s", "cfg").next_fire_times[0] == tick
        changed = make_spec("cfg", "quick", [2], every=3600, task_queue="q")
        assert schedules.ensure(conn, "s", [changed]) == {"cfg": "updated"}
        assert schedules.describe(conn, "s", "cfg").spec.args == [2]


GRAPH = """
app:
  id: sched-graph
  version: '1'
  graphs:
    - subscribes: nightly.tick
      activities:
        start: {type: trigger, job: {maps: {value: '{$self.output.data.value}'}}}
        twice: {type: worker, topic: sched.double, input: {maps: {value: '{start.output.data.value}'}}, job: {maps: {doubled: '{$self.output.data.value}'}}}
      transitions:
        start: [{to: twice}]
"""


async def double(data: dict[str, Any]) -> dict[str, Any]:
    return {"value": data["value"] * 2}


async def test_a_graph_schedule_starts_jobs_through_the_engine(dsn: str) -> None:
    async with Mesh.open(
        dsn,
        app="sched-graph",
        workers={"sched.double": double},
        worker_settings=FAST,
        engine_settings=FAST,
    ) as mesh:
        await mesh.deploy(GRAPH)
        await mesh.activate("1")
        await mesh.create_schedule("g", "nightly.tick", {"value": 21}, graph=True, every=1)

        async def a_job_done() -> bool:
            return any(r.status == "done" for r in (await mesh.describe_schedule("g")).recent)

        await wait_until(a_job_done, timeout=30, what="a job of the graph schedule done")
        run = next(r for r in (await mesh.describe_schedule("g")).recent if r.status == "done")
        assert run.workflow_id.startswith("g@")
        assert (await mesh.get_state(run.workflow_id))["data"]["doubled"] == 42
        with pytest.raises(InvalidPayload, match="mapping"):
            await mesh.create_schedule("h", "nightly.tick", [1], graph=True, every=1)


def test_backfill_starts_the_ticks_of_a_range_that_have_no_run(dsn: str) -> None:
    from datetime import UTC, datetime, timedelta

    client = MeshClient(dsn, app="s")
    try:
        client.create_schedule("daily", "quick", [1], cron="0 6 * * *", task_queue="q")
        start = datetime(2026, 11, 1, tzinfo=UTC)
        first = client.backfill_schedule("daily", start, start + timedelta(days=4, hours=23))
        assert first == [f"daily@202611{d:02d}T060000Z" for d in range(1, 6)]
        again = client.backfill_schedule("daily", start, start + timedelta(days=6))
        assert again == ["daily@20261106T060000Z"]  # the others ran already
        assert client.describe_schedule("daily").fired == 6
        with pytest.raises(InvalidPayload, match="split the range"):
            client.backfill_schedule("daily", start, start + timedelta(days=2000))
        with pytest.raises(InvalidPayload, match="time zone"):
            client.backfill_schedule("daily", datetime(2026, 1, 1), datetime(2026, 1, 2))
    finally:
        client.close()
