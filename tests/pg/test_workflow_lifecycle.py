"""What a workflow written as code sees of itself across its life, on real Postgres, one
transaction at a time: its generation after each ``continue_as_new``, a clock that never goes
back (across generations, and from a first run to its replay), timers withdrawn once nothing
waits for them, and earlier generations' calls deleted (summarised for export)."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
import pytest

from mesh import workflow
from mesh.pg.job_queries import get_job
from tests.workflow_steps import APP, Stepper, fresh_runs


def tick() -> None:
    """An activity that does nothing (the workflow's clock moves with its outcome)."""


def note(value: Any) -> None:
    """An activity whose argument is recorded: what the workflow saw when it made the call."""


async def renewing(seen: list[Any]) -> list[Any]:
    """Four generations, each recording its number, its clock at its start, and its clock
    after an activity."""
    acts = workflow.proxy_activities(tick)
    info = workflow.info()
    started = workflow.time()
    await acts.tick()
    seen = [*seen, {"generation": info.generation, "started": started, "later": workflow.time()}]
    if len(seen) < 4:
        workflow.continue_as_new(seen)
    return seen


async def stamps() -> list[float]:
    """Three clock readings, each also passed to an activity (recorded by the first run)."""
    acts = workflow.proxy_activities(tick, note)
    seen = []
    for _ in range(3):
        await acts.tick()
        seen.append(workflow.time())
        await acts.note(workflow.time())
    return seen


async def patient() -> Any:
    first = await workflow.condition("go", timeout="1 hour")
    second = await workflow.condition("more")
    return [first, second]


async def napping() -> str:
    try:
        await workflow.sleep("1 day")
    except workflow.WorkflowCancelled:
        return "woken early"
    return "slept"


async def looping(count: int) -> int:
    acts = workflow.proxy_activities(tick, note)
    await acts.tick()
    await acts.note(count)
    if count < 24:
        workflow.continue_as_new(count + 1)
    return count


ACTIVITIES = {"tick": tick, "note": note}


@pytest.fixture
def session(dsn: str) -> Any:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def stepper(session: psycopg.Connection[Any], *workflows: Any) -> Stepper:
    return Stepper(session, list(workflows), ACTIVITIES)


def test_info_tells_the_generation_and_now_never_goes_back_across_generations(
    session: psycopg.Connection[Any],
) -> None:
    steps = stepper(session, renewing)
    steps.start(renewing, [], workflow_id="r")
    steps.run_until_quiet()
    state, seen = steps.job("r")
    assert state == "done"
    clock = [t for s in seen for t in (s["started"], s["later"])]
    assert clock == sorted(clock), f"the clock went back: {clock}"
    assert [s["generation"] for s in seen] == [0, 1, 2, 3]
    for earlier, later in itertools.pairwise(seen):
        assert later["started"] >= earlier["later"], "a generation starts after the last"


def test_now_is_the_same_on_the_first_run_and_on_a_replay(
    session: psycopg.Connection[Any],
) -> None:
    steps = stepper(session, stamps)
    steps.start(stamps, workflow_id="s")
    steps.workflow_batch()
    for _ in range(5):  # tick, note, tick, note, tick: the run stays resident
        assert steps.activity_batch() == 1
    # The last note is answered on a node that holds nothing: the run is replayed from its
    # recorded outcomes, and its result is what the replay saw.
    assert steps.activity_batch(fresh_runs([stamps])) == 1
    state, replayed = steps.job("s")
    assert state == "done"
    first_run = [
        args[0]
        for (args,) in session.execute(
            "SELECT args FROM mesh.workflow_steps WHERE name = 'note' ORDER BY position"
        )
    ]
    assert replayed == first_run


def delayed(session: psycopg.Connection[Any], workflow_id: str) -> int:
    row = session.execute(
        "SELECT count(*) FROM mesh.stream_messages WHERE app = %s "
        "AND payload->>'job_id' = %s AND visible_at > enqueued_at",
        (APP, workflow_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_condition_answered_by_its_signal_withdraws_its_timeout(
    session: psycopg.Connection[Any],
) -> None:
    steps = stepper(session, patient)
    steps.start(patient, workflow_id="p")
    steps.run_until_quiet()
    assert delayed(session, "p") == 1, "the hour's timeout is queued"
    steps.signal("p", "go", "yes")
    steps.run_until_quiet()
    assert steps.job("p")[0] == "running", "it waits for 'more' now"
    assert delayed(session, "p") == 0, "nothing waits for the timeout any more"
    steps.signal("p", "more", 2)
    steps.run_until_quiet()
    assert steps.job("p") == ("done", ["yes", 2])


def test_a_condition_whose_signal_came_first_sends_no_timeout(
    session: psycopg.Connection[Any],
) -> None:
    steps = stepper(session, patient)
    steps.start(patient, workflow_id="early")
    steps.signal("early", "go", "before")  # handled before the start: it waits for it
    steps.run_until_quiet()
    assert steps.job("early")[0] == "running"
    assert delayed(session, "early") == 0
    steps.signal("early", "more", 1)
    steps.run_until_quiet()
    assert steps.job("early") == ("done", ["before", 1])


def test_a_workflow_that_ends_while_it_sleeps_leaves_no_wake_queued(
    session: psycopg.Connection[Any],
) -> None:
    from mesh.pg.workflow_messages import cancel

    steps = stepper(session, napping)
    steps.start(napping, workflow_id="n")
    steps.run_until_quiet()
    assert delayed(session, "n") == 1, "the day's wake is queued"
    assert cancel(session, APP, "n")
    steps.run_until_quiet()
    assert steps.job("n") == ("done", "woken early")  # it caught the cancel and returned
    assert delayed(session, "n") == 0


def test_continue_as_new_keeps_one_generation_of_calls_and_summaries_of_the_last_ten(
    session: psycopg.Connection[Any],
) -> None:
    steps = stepper(session, looping)
    steps.start(looping, 0, workflow_id="loop")
    steps.run_until_quiet()
    assert steps.job("loop") == ("done", 24)
    calls = session.execute(
        "SELECT count(DISTINCT gid), count(*) FROM mesh.workflow_steps"
    ).fetchone()
    assert calls == (1, 2), "only the last generation's two calls"
    record = get_job(session, APP, "loop")
    assert record is not None
    summaries = sorted(
        (s.activity, s.leg) for s in record.timeline if s.activity.startswith("generation")
    )
    assert summaries == sorted(
        (f"generation {n} (2 calls)", leg) for n in range(14, 24) for leg in (1, 2)
    ), "the last ten generations, each from its start (leg 1) to its end (leg 2)"
    starts = [s.at for s in record.timeline if s.leg == 1]
    assert starts == sorted(starts)
    assert "generation" in record.data and record.data["generation"]["number"] == 24
    assert not any(name.isdigit() for name in record.data), "summaries stay out of the data"
