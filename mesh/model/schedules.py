"""Schedules, decided purely: when a schedule's ticks fall, which of them run when the leader
looks (the others are missed, counted, not run), what each run is called, and what the
overlap policy does with a run still going.

A schedule starts a workflow written as code (or a YAML graph's job) on a cron expression
(five fields, or six with seconds first; in a time zone, daylight saving time handled as cron
users expect: a time skipped by the change runs at the first time after it, a repeated one
once) or every N seconds from an offset. The run of a tick is named ``{schedule}@{tick}``
(the tick in UTC, to the second): starting the same tick twice is refused by the jobs'
unique key, which makes a tick run at most once whoever fires it, and the leader's
transaction (fire, then advance the schedule) makes it run at least once.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from croniter import croniter

from mesh.errors import InvalidPayload
from mesh.model.durations import Duration, parse_duration
from mesh.model.limits import check_value

Overlap = Literal["skip", "buffer_one", "allow_all", "cancel_other", "terminate_other"]
OVERLAPS: tuple[Overlap, ...] = (
    "skip",
    "buffer_one",
    "allow_all",
    "cancel_other",
    "terminate_other",
)
Kind = Literal["workflow", "graph"]

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
MAX_TICKS_PER_LOOK = 10_000
"""Ticks one look walks; after a longer downtime the rest are counted by the walk's pace."""
MIN_EVERY = 1.0


class ScheduleSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a schedule starts, and when."""

    id: str
    workflow: str
    """The workflow's name (a graph: the topic its job is published on)."""
    kind: Kind = "workflow"
    args: Any = msgspec.field(default_factory=list)
    """The workflow's arguments (a list), or the graph job's data."""
    task_queue: str = "default"
    cron: str | None = None
    every: float | None = None
    """Seconds between ticks (with ``offset`` from the epoch)."""
    offset: float = 0.0
    time_zone: str = "UTC"
    overlap: Overlap = "skip"
    catchup_window: float = 60.0
    """Seconds: a tick older than this when the leader sees it is missed (counted)."""
    jitter: float = 0.0
    """Seconds: each run starts up to this much after its tick (the same delay on every
    look: a hash of the schedule and the tick)."""

    def __post_init__(self) -> None:
        check(self)


def make_spec(
    schedule_id: str,
    workflow: str,
    args: Any = None,
    *,
    kind: Kind = "workflow",
    task_queue: str = "default",
    cron: str | None = None,
    every: Duration | None = None,
    offset: Duration = 0,
    time_zone: str = "UTC",
    overlap: Overlap = "skip",
    catchup_window: Duration = 60,
    jitter: Duration = 0,
) -> ScheduleSpec:
    """A checked spec; durations as mesh takes them everywhere (``"30 seconds"``, 30, a
    timedelta). :class:`InvalidPayload` says what is wrong."""
    return ScheduleSpec(
        id=schedule_id,
        workflow=workflow,
        kind=kind,
        args=([] if kind == "workflow" else {}) if args is None else args,
        task_queue=task_queue,
        cron=cron,
        every=None if every is None else parse_duration(every),
        offset=parse_duration(offset),
        time_zone=time_zone,
        overlap=overlap,
        catchup_window=parse_duration(catchup_window),
        jitter=parse_duration(jitter),
    )


def check(spec: ScheduleSpec) -> None:
    if not isinstance(spec.id, str) or not _ID.fullmatch(spec.id):
        raise InvalidPayload(
            f"schedule id {spec.id!r}: 1-100 letters, digits and . _ : - (starting with a "
            "letter or digit)"
        )
    if not spec.workflow or len(spec.workflow) > 200:
        raise InvalidPayload(f"schedule {spec.id!r}: name the workflow (or graph topic) to start")
    if (spec.cron is None) == (spec.every is None):
        raise InvalidPayload(
            f"schedule {spec.id!r}: give exactly one of cron ('*/5 * * * *') or every "
            "('30 seconds')"
        )
    if spec.cron is not None and not _valid_cron(spec.cron):
        raise InvalidPayload(
            f"schedule {spec.id!r}: {spec.cron!r} is not a cron expression: five fields "
            "(minute hour day month weekday) or six with seconds first, e.g. '*/5 * * * *'"
        )
    if spec.every is not None and not MIN_EVERY <= spec.every <= 366 * 86400:
        raise InvalidPayload(
            f"schedule {spec.id!r}: every must be from 1 second to a year, not {spec.every}"
        )
    zone(spec)
    if spec.overlap not in OVERLAPS:
        raise InvalidPayload(f"schedule {spec.id!r}: overlap is one of {', '.join(OVERLAPS)}")
    for name in ("offset", "catchup_window", "jitter"):
        value = getattr(spec, name)
        if not 0 <= value <= 366 * 86400:
            raise InvalidPayload(f"schedule {spec.id!r}: {name} must be from 0 to a year")
    if spec.kind == "graph" and not isinstance(spec.args, dict):
        raise InvalidPayload(f"schedule {spec.id!r}: a graph job's data is a mapping")
    if spec.kind == "workflow" and not isinstance(spec.args, list):
        raise InvalidPayload(f"schedule {spec.id!r}: a workflow's args are a list")
    check_value(spec.args, f"the args of schedule {spec.id!r}")


def _valid_cron(expression: str) -> bool:
    if not isinstance(expression, str) or len(expression) > 200:
        return False
    fields = len(expression.split())
    if fields not in (5, 6):
        return False
    try:
        return bool(croniter.is_valid(expression, second_at_beginning=fields == 6))
    except Exception:
        return False


def zone(spec: ScheduleSpec) -> ZoneInfo:
    try:
        return ZoneInfo(spec.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidPayload(
            f"schedule {spec.id!r}: unknown time zone {spec.time_zone!r} (an IANA name such "
            "as 'UTC' or 'Europe/Berlin')"
        ) from None


def ticks_after(spec: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    """The schedule's ticks strictly after ``after``, in order (aware, UTC)."""
    if spec.every is not None:
        every, offset = spec.every, spec.offset
        k = math.floor((after.timestamp() - offset) / every) + 1
        while True:
            yield datetime.fromtimestamp(offset + k * every, UTC)
            k += 1
    assert spec.cron is not None
    tz = zone(spec)
    fields = spec.cron.split()
    seconds = len(fields) == 6
    walker = croniter(spec.cron, after.astimezone(tz), second_at_beginning=seconds)
    # When clocks go back, an hour's wall times come twice: a job at fixed hours runs once
    # (the first time), one on every hour ('*') runs in both, as cron does.
    once = fields[2 if seconds else 1] != "*"
    seen: tuple[datetime, ...] = ()
    while True:
        tick = walker.get_next(datetime)
        wall = tick.replace(tzinfo=None)
        if once and wall in seen:
            continue
        seen = (*seen[-3:], wall)
        yield tick.astimezone(UTC)


def next_ticks(spec: ScheduleSpec, after: datetime, count: int) -> list[datetime]:
    found = []
    for tick in ticks_after(spec, after):
        found.append(tick)
        if len(found) == count:
            return found
    return found


def delay(spec: ScheduleSpec, tick: datetime) -> timedelta:
    """The tick's jitter: the same on every look."""
    if spec.jitter <= 0:
        return timedelta(0)
    digest = hashlib.blake2b(f"{spec.id}@{tick.isoformat()}".encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return timedelta(seconds=fraction * spec.jitter)


def run_id(schedule_id: str, tick: datetime) -> str:
    """The workflow id of the tick's run: one per tick, whoever starts it."""
    return f"{schedule_id}@{tick.astimezone(UTC):%Y%m%dT%H%M%SZ}"


MAX_RUNS_PER_LOOK = 100
"""Due ticks one look starts at most; the rest wait for the next look."""


class Look(msgspec.Struct, frozen=True):
    """What one look at a due schedule decides."""

    runs: list[datetime]
    """The due ticks inside the catch-up window, oldest first (the overlap policy decides
    which of them start)."""
    missed: int
    """Due ticks that fell out of the catch-up window (counted, not run)."""
    next_tick: datetime
    """The first tick after those due now (or after the last in ``runs``)."""


def look(spec: ScheduleSpec, next_tick: datetime, now: datetime) -> Look:
    """The ticks from ``next_tick`` on that are due at ``now``: those older than the
    catch-up window are missed; the others are to run, oldest first."""
    horizon = now - timedelta(seconds=spec.catchup_window)
    tick, missed = next_tick, 0
    if tick < horizon:
        tick, missed = _skip_to(spec, tick, horizon)
    runs: list[datetime] = []
    walker = ticks_after(spec, tick)
    while tick + delay(spec, tick) <= now and len(runs) < MAX_RUNS_PER_LOOK:
        runs.append(tick)
        tick = next(walker)
    return Look(runs=runs, missed=missed, next_tick=tick)


def _skip_to(spec: ScheduleSpec, tick: datetime, horizon: datetime) -> tuple[datetime, int]:
    """The first tick at or after ``horizon`` and how many ticks from ``tick`` fell before
    it (after a downtime of more than :data:`MAX_TICKS_PER_LOOK` cron ticks, that many)."""
    if spec.every is not None:
        count = math.ceil((horizon - tick).total_seconds() / spec.every - 1e-9)
        return tick + timedelta(seconds=count * spec.every), count
    missed = 0
    walker = ticks_after(spec, tick)
    while tick < horizon and missed < MAX_TICKS_PER_LOOK:
        missed += 1
        tick = next(walker)
    if tick < horizon:
        tick = next(ticks_after(spec, horizon - timedelta(microseconds=1)))
    return tick, missed


def spec_for(
    schedule_id: str, workflow: Any, args: Any = None, *, graph: bool = False, **when: Any
) -> ScheduleSpec:
    """A client's schedule: ``workflow`` a workflow function or its name (``args`` its
    arguments, sent as a start would send them), or with ``graph`` a YAML graph's topic
    (``args`` the job's data); ``when``: the keywords of :func:`make_spec`."""
    from mesh.model.workflow.definition import start_arguments, workflow_name

    if graph:
        if not isinstance(workflow, str):
            raise InvalidPayload("a graph schedule names the graph's topic (a string)")
        return make_spec(schedule_id, workflow, {} if args is None else args, kind="graph", **when)
    sent = start_arguments(workflow, list(args or ()))
    return make_spec(schedule_id, workflow_name(workflow), sent, **when)
