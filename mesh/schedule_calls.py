"""The schedule calls of the asyncio-and-trio faces (:class:`~mesh.api.Mesh` and
:class:`~mesh.client.Client`): one implementation over their ``operations`` and ``_run``
(the synchronous :class:`~mesh.pg.client.MeshClient` has the same calls, blocking)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from mesh.model.schedules import spec_for
from mesh.pg.operations import Operations
from mesh.pg.schedules import ScheduleDescription

T = TypeVar("T")


class ScheduleOwner(Protocol):
    @property
    def operations(self) -> Operations: ...

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...


class AsyncSchedules:
    """Schedules that start workflows (see the README's Schedules)."""

    async def create_schedule(
        self: ScheduleOwner,
        schedule_id: str,
        workflow: Callable[..., Any] | str,
        args: Any = None,
        *,
        replace: bool = False,
        **when: Any,
    ) -> bool:
        """Start ``workflow`` with ``args`` on a schedule: ``cron="*/5 * * * *"`` (with
        ``time_zone=``) or ``every="30 seconds"`` (with ``offset=``); ``task_queue=``,
        ``overlap=`` (skip, buffer_one, allow_all, cancel_other, terminate_other),
        ``catchup_window=``, ``jitter=``; ``graph=True`` for a YAML graph's topic, ``args``
        its job's data. True if new (an existing id is refused unless ``replace``)."""
        spec = spec_for(schedule_id, workflow, args, **when)
        return await self._run(self.operations.create_schedule, spec, replace=replace)

    async def describe_schedule(self: ScheduleOwner, schedule_id: str) -> ScheduleDescription:
        """The schedule, its next five fire times, its last runs and its counts."""
        return await self._run(self.operations.describe_schedule, schedule_id)

    async def list_schedules(
        self: ScheduleOwner, *, after: str = "", limit: int = 100
    ) -> list[ScheduleDescription]:
        return await self._run(self.operations.list_schedules, after=after, limit=limit)

    async def pause_schedule(self: ScheduleOwner, schedule_id: str) -> None:
        await self._run(self.operations.pause_schedule, schedule_id)

    async def resume_schedule(self: ScheduleOwner, schedule_id: str) -> None:
        """Go on from now (the ticks that fell while it was paused are not run)."""
        await self._run(self.operations.resume_schedule, schedule_id)

    async def trigger_schedule(self: ScheduleOwner, schedule_id: str) -> str:
        """Start a run now, outside its ticks; its workflow id."""
        return await self._run(self.operations.trigger_schedule, schedule_id)

    async def backfill_schedule(
        self: ScheduleOwner, schedule_id: str, start: datetime, end: datetime
    ) -> list[str]:
        """Start the runs of the schedule's ticks in [start, end] (aware datetimes) that
        have none, whatever its catch-up window says; their workflow ids."""
        return await self._run(self.operations.backfill_schedule, schedule_id, start, end)

    async def delete_schedule(self: ScheduleOwner, schedule_id: str) -> None:
        await self._run(self.operations.delete_schedule, schedule_id)
