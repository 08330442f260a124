"""Runtime pieces: supervision with restart intensity, mailboxes, wake-up coalescing."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from mesh.errors import SupervisorGaveUp
from mesh.model.restart import RestartPolicy
from mesh.runtime.actor import Actor
from mesh.runtime.consumer.inline_start import Finished, Waiting, first_step, resume
from mesh.runtime.consumer.wakeups import Wakeup
from mesh.runtime.supervisor import Supervisor


class Flaky(Actor[str]):
    name = "flaky"

    def __init__(self, failures: int) -> None:
        super().__init__(mailbox_size=2)
        self.failures_left = failures
        self.runs = 0
        self.finished = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.runs += 1
        task_status.started()
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("crash")
        self.finished.set()


async def test_supervisor__restarts_a_crashing_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child = Flaky(failures=2)
    async with trio.open_nursery() as nursery:
        await Supervisor("test", RestartPolicy(max_restarts=3)).start(nursery, child)
        await child.finished.wait()
    assert (child.runs, child.restarts) == (3, 2)


async def test_supervisor__gives_up_past_the_restart_intensity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child = Flaky(failures=10)
    with pytest.raises(BaseExceptionGroup) as caught:
        async with trio.open_nursery() as nursery:
            await Supervisor("test", RestartPolicy(max_restarts=2, within_seconds=60)).start(
                nursery, child
            )
    assert caught.group_contains(SupervisorGaveUp)
    assert child.runs == 3


async def test_supervisor__a_child_failing_before_ready_fails_the_start() -> None:
    class Broken(Actor[None]):
        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            raise ValueError("bad setup")

    with pytest.raises(BaseExceptionGroup) as caught:
        async with trio.open_nursery() as nursery:
            await Supervisor("test").start(nursery, Broken())
    assert caught.group_contains(ValueError)


async def test_actor_mailbox__is_bounded_and_reports_statistics() -> None:
    actor = Flaky(failures=0)
    assert actor.try_send("a") and actor.try_send("b")
    assert not actor.try_send("c")
    stats = actor.statistics()
    assert (stats.mailbox_queued, stats.mailbox_capacity) == (2, 2)


async def test_wakeup__coalesces_and_times_out(autojump_clock: trio.testing.MockClock) -> None:
    wakeup = Wakeup()
    for _ in range(5):
        wakeup.set()
    assert await wakeup.wait(1.0) is True
    wakeup.clear()
    assert await wakeup.wait(1.0) is False
    assert wakeup.count == 5


async def test_inline__a_handler_that_never_waits_finishes_in_its_first_step() -> None:
    async def compute(x: int) -> int:
        return x * 2

    step = first_step(compute(21))
    assert isinstance(step, Finished) and step.value == 42


async def test_inline__a_waiting_handler_is_resumed_in_the_same_task() -> None:
    tasks: list[object] = []

    async def waits(x: int) -> int:
        tasks.append(trio.lowlevel.current_task())
        await trio.lowlevel.checkpoint()
        tasks.append(trio.lowlevel.current_task())
        return x + 1

    step = first_step(waits(1))
    assert isinstance(step, Waiting)
    assert await resume(step) == 2
    assert tasks == [trio.lowlevel.current_task()] * 2


async def test_inline__cancellation_reaches_the_resumed_coroutine(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cleaned_up = []

    async def sleeps_forever() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cleaned_up.append(True)

    step = first_step(sleeps_forever())
    assert isinstance(step, Waiting)
    with trio.move_on_after(1):
        await resume(step)
    assert cleaned_up == [True]


async def test_inline__errors_propagate_from_either_step() -> None:
    async def fails_at_once() -> None:
        raise ValueError("first")

    async def fails_later() -> None:
        await trio.lowlevel.checkpoint()
        raise KeyError("later")

    with pytest.raises(ValueError, match="first"):
        first_step(fails_at_once())
    step = first_step(fails_later())
    assert isinstance(step, Waiting)
    with pytest.raises(KeyError):
        await resume(step)
