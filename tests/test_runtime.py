"""Runtime pieces: supervision with restart intensity, mailboxes, wake-up coalescing."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mesh.errors import SupervisorGaveUp
from mesh.model.restart import RestartPolicy
from mesh.runtime.actor import Actor
from mesh.runtime.supervisor import Supervisor
from mesh.runtime.wakeup import Wakeup


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
    assert (stats["mailbox_queued"], stats["mailbox_capacity"]) == (2, 2)


async def test_wakeup__coalesces_and_times_out(autojump_clock: trio.testing.MockClock) -> None:
    wakeup = Wakeup()
    for _ in range(5):
        wakeup.set()
    assert await wakeup.wait(1.0) is True
    wakeup.clear()
    assert await wakeup.wait(1.0) is False
    assert wakeup.count == 5
