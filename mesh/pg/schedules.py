"""Schedules in Postgres: created, read, paused, deleted by clients; fired by the elected
leader (:func:`fire_due`), each look one transaction that starts the due ticks' runs and
advances the schedules it locked.

Exactly once per tick: a run's id is ``{schedule}@{tick}`` (jobs are unique by id), and a
look starts it and moves the schedule past the tick in one commit. A leader killed mid-look
commits neither, and the next look fires the same tick; two looks at once lock different
schedules (``SKIP LOCKED``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from mesh.errors import InvalidPayload, UnknownSchedule
from mesh.model.graph.client import start_message
from mesh.model.ids import ENGINE_STREAM, schedule_channel
from mesh.model.messages import encode
from mesh.model.outcomes import Outgoing
from mesh.model.schedules import ScheduleSpec, delay, look, next_ticks, run_id, ticks_after
from mesh.pg import workflow_messages
from mesh.pg.database import Connection
from mesh.pg.queries import query
from mesh.pg.streams import enqueue

log = logging.getLogger(__name__)

RECENT = 10
"""Runs a schedule remembers (``describe``)."""
LOOK_LIMIT = 100
"""Schedules one look fires at most (the next look takes the rest at once)."""


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    workflow_id: str
    tick: datetime
    status: str
    """running, done, failed, interrupted, or gone (pruned)."""


@dataclass(frozen=True, slots=True)
class ScheduleDescription:
    spec: ScheduleSpec
    paused: bool
    next_fire_times: list[datetime]
    """The next five ticks (with their jitter)."""
    recent: list[ScheduleRun]
    """The last runs, newest first."""
    fired: int
    skipped: int
    """Ticks not run: the previous run still went on (skip), or a newer tick was due."""
    missed: int
    """Ticks that fell out of the catch-up window (the mesh was down, or the schedule
    paused) and were counted, not run."""
    buffered_tick: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class FireReport:
    fired: int = 0
    skipped: int = 0
    missed: int = 0
    next_fire_at: datetime | None = None
    started: list[str] = field(default_factory=list)


def decode_spec(text: str) -> ScheduleSpec:
    return msgspec.json.decode(text, type=ScheduleSpec)


def _first(spec: ScheduleSpec, now: datetime) -> tuple[datetime, datetime]:
    (tick,) = next_ticks(spec, now, 1)
    return tick, tick + delay(spec, tick)


def create(conn: Connection, app: str, spec: ScheduleSpec, *, replace: bool = False) -> bool:
    """Store ``spec``; True if new. An existing id is refused (:class:`InvalidPayload`)
    unless ``replace``, which gives it the new spec (its ticks start after now)."""
    now = _now(conn)
    tick, fire_at = _first(spec, now)
    params = {
        "app": app,
        "id": spec.id,
        "spec": msgspec.json.encode(spec).decode(),
        "next_tick": tick,
        "next_fire_at": fire_at,
    }
    if conn.execute(query("schedule_create"), params).fetchone() is not None:
        _tell_leader(conn, app)
        return True
    if not replace:
        raise InvalidPayload(
            f"schedule {spec.id!r} exists: delete it first, or replace it (replace=True)"
        )
    conn.execute(query("schedule_replace"), params)
    _tell_leader(conn, app)
    return False


def _tell_leader(conn: Connection, app: str) -> None:
    conn.execute(query("schedules_changed"), {"channel": schedule_channel(app)})


def ensure(conn: Connection, app: str, specs: list[ScheduleSpec]) -> dict[str, str]:
    """A config's schedules: each created if absent, replaced if its spec changed, else
    left as it is (its next tick too); ``{id: "created" | "updated" | "unchanged"}``."""
    outcome = {}
    for spec in specs:
        row = conn.execute(query("schedule_get"), {"app": app, "id": spec.id}).fetchone()
        if row is not None and decode_spec(row[1]) == spec:
            outcome[spec.id] = "unchanged"
            continue
        new = create(conn, app, spec, replace=True)
        outcome[spec.id] = "created" if new else "updated"
    return outcome


def _row(conn: Connection, app: str, schedule_id: str) -> tuple[Any, ...]:
    row = conn.execute(query("schedule_get"), {"app": app, "id": schedule_id}).fetchone()
    if row is None:
        raise UnknownSchedule(f"no schedule {schedule_id!r} in app {app!r}")
    return tuple(row)


def _spec(conn: Connection, app: str, schedule_id: str) -> ScheduleSpec:
    return decode_spec(_row(conn, app, schedule_id)[1])


def describe(conn: Connection, app: str, schedule_id: str) -> ScheduleDescription:
    return _described_all(conn, app, [_row(conn, app, schedule_id)])[0]


def list_all(
    conn: Connection, app: str, *, after: str = "", limit: int = 100
) -> list[ScheduleDescription]:
    rows = conn.execute(
        query("schedule_list"), {"app": app, "after": after, "limit": max(1, min(limit, 1000))}
    ).fetchall()
    return _described_all(conn, app, [tuple(row) for row in rows])


def _described_all(
    conn: Connection, app: str, rows: list[tuple[Any, ...]]
) -> list[ScheduleDescription]:
    """The schedules of ``rows``, the states of their recent runs read in one query."""
    recents = [json.loads(row[7]) for row in rows]
    keys = [r["workflow_id"] for recent in recents for r in recent]
    found = conn.execute(query("run_states"), {"app": app, "keys": keys}).fetchall()
    states: dict[str, str] = {key: state for key, state in found}
    return [_described(row, recent, states) for row, recent in zip(rows, recents, strict=True)]


def _described(
    row: tuple[Any, ...], recent: list[dict[str, str]], states: dict[str, str]
) -> ScheduleDescription:
    (_, spec_text, paused, next_tick, _, buffered, _, _, fired, skipped, missed,
     created, updated) = row  # fmt: skip
    spec = decode_spec(spec_text)
    upcoming = [next_tick, *next_ticks(spec, next_tick, 4)]
    return ScheduleDescription(
        spec=spec,
        paused=paused,
        next_fire_times=[t + delay(spec, t) for t in upcoming],
        recent=[
            ScheduleRun(
                r["workflow_id"],
                datetime.fromisoformat(r["tick"]),
                states.get(r["workflow_id"], "gone"),
            )
            for r in recent
        ],
        fired=fired,
        skipped=skipped,
        missed=missed,
        buffered_tick=buffered,
        created_at=created,
        updated_at=updated,
    )


def pause(conn: Connection, app: str, schedule_id: str) -> None:
    _changed(
        conn.execute(query("schedule_pause"), {"app": app, "id": schedule_id, "paused": True}),
        app,
        schedule_id,
    )


def resume(conn: Connection, app: str, schedule_id: str) -> None:
    spec = _spec(conn, app, schedule_id)
    tick, fire_at = _first(spec, _now(conn))
    params = {"app": app, "id": schedule_id, "next_tick": tick, "next_fire_at": fire_at}
    _changed(conn.execute(query("schedule_resume"), params), app, schedule_id)
    _tell_leader(conn, app)


def delete(conn: Connection, app: str, schedule_id: str) -> None:
    _changed(
        conn.execute(query("schedule_delete"), {"app": app, "id": schedule_id}), app, schedule_id
    )


def _changed(cursor: Any, app: str, schedule_id: str) -> None:
    if cursor.fetchone() is None:
        raise UnknownSchedule(f"no schedule {schedule_id!r} in app {app!r}")


def trigger(conn: Connection, app: str, schedule_id: str) -> str:
    """Start a run now, outside the ticks (its id: the schedule and this moment)."""
    spec = _spec(conn, app, schedule_id)
    with conn.transaction():
        return _start(conn, app, spec, _now(conn))


MAX_BACKFILL = 1000
"""Ticks one backfill starts at most."""


def backfill(
    conn: Connection, app: str, schedule_id: str, start: datetime, end: datetime
) -> list[str]:
    """Start the runs of the schedule's ticks in [start, end] that have none (past ones,
    whatever the catch-up window and overlap policy say); their workflow ids."""
    if start.tzinfo is None or end.tzinfo is None or end < start:
        raise InvalidPayload(
            "a backfill takes a start and an end with a time zone, the start first "
            "(e.g. 2026-12-01T00:00:00+00:00)"
        )
    spec = _spec(conn, app, schedule_id)
    ticks = _ticks_within(spec, start, end)
    if len(ticks) > MAX_BACKFILL:
        raise InvalidPayload(
            f"{len(ticks)}+ ticks fall between {start} and {end}; a backfill starts at most "
            f"{MAX_BACKFILL}: split the range"
        )
    started = []
    with conn.transaction():
        row = conn.execute(query("schedule_lock"), {"app": app, "id": schedule_id}).fetchone()
        if row is None:
            raise UnknownSchedule(f"no schedule {schedule_id!r} in app {app!r}")
        recent = json.loads(row[0])
        for tick in ticks:
            key = run_id(spec.id, tick)
            if _state(conn, app, key) is None:
                _start(conn, app, spec, tick)
                started.append(key)
                recent = [{"workflow_id": key, "tick": tick.isoformat()}, *recent][:RECENT]
        params = {
            "app": app,
            "id": schedule_id,
            "recent": json.dumps(recent),
            "fired": len(started),
        }
        conn.execute(query("schedule_backfilled"), params)
    return started


def _ticks_within(spec: ScheduleSpec, start: datetime, end: datetime) -> list[datetime]:
    found: list[datetime] = []
    for tick in ticks_after(spec, start - timedelta(microseconds=1)):
        if tick > end or len(found) > MAX_BACKFILL:
            return found
        found.append(tick)
    return found


def fire_due(conn: Connection, app: str) -> FireReport:
    """The leader's look: start the due ticks' runs and advance their schedules, in one
    transaction."""
    report = FireReport()
    with conn.transaction():
        rows = conn.execute(query("schedules_due"), {"app": app, "limit": LOOK_LIMIT}).fetchall()
        for schedule_id, spec_text, next_tick, buffered, last_run, recent_text, now in rows:
            try:
                spec = decode_spec(spec_text)
            except (msgspec.ValidationError, InvalidPayload) as error:
                log.error("event=schedule_unreadable id=%s error=%r", schedule_id, str(error))
                continue
            _fire_one(
                conn,
                app,
                spec,
                next_tick,
                buffered,
                last_run,
                json.loads(recent_text),
                now,
                report,
            )
        row = conn.execute(query("schedules_next_fire"), {"app": app}).fetchone()
        report.next_fire_at = row[0] if row else None
    return report


def _fire_one(
    conn: Connection,
    app: str,
    spec: ScheduleSpec,
    next_tick: datetime,
    buffered: datetime | None,
    last_run: str | None,
    recent: list[dict[str, str]],
    now: datetime,
    report: FireReport,
) -> None:
    seen = look(spec, next_tick, now) if next_tick + delay(spec, next_tick) <= now else None
    fired = skipped = 0
    missed = seen.missed if seen else 0
    due = list(seen.runs) if seen else []
    if buffered is not None:  # a tick held back while the previous run went on
        due.insert(0, buffered)
        buffered = None
    for tick in due:
        running = last_run is not None and _state(conn, app, last_run) == "running"
        if running and spec.overlap == "skip":
            skipped += 1
            continue
        if running and spec.overlap == "buffer_one":
            skipped += buffered is not None  # a newer tick takes the buffered one's place
            buffered = tick
            continue
        if running and spec.overlap == "cancel_other":
            workflow_messages.cancel(conn, app, last_run or "")
        elif running and spec.overlap == "terminate_other":
            reason = "replaced by its schedule's next run"
            workflow_messages.terminate(conn, app, last_run or "", reason)
        last_run = _start(conn, app, spec, tick)
        recent = [{"workflow_id": last_run, "tick": tick.isoformat()}, *recent][:RECENT]
        report.started.append(last_run)
        fired += 1
    next_at = seen.next_tick if seen else next_tick
    conn.execute(
        query("schedule_advance"),
        {
            "app": app,
            "id": spec.id,
            "next_tick": next_at,
            "next_fire_at": next_at + delay(spec, next_at),
            "buffered_tick": buffered,
            "last_run": last_run,
            "recent": json.dumps(recent),
            "fired": fired,
            "skipped": skipped,
            "missed": missed,
        },
    )
    report.fired += fired
    report.skipped += skipped
    report.missed += missed


def _start(conn: Connection, app: str, spec: ScheduleSpec, tick: datetime) -> str:
    """Start the tick's run in the caller's transaction: it commits with the schedule's
    advance, or neither does. A workflow's job is inserted (a taken id: this tick ran
    already, once is enough); a graph's job is asked of the engines (a start message, which
    commits with the advance: one per tick)."""
    key = run_id(spec.id, tick)
    if spec.kind == "graph":
        message = start_message(app, spec.workflow, spec.args, job_id=key)
        enqueue(conn, [Outgoing(app, ENGINE_STREAM, encode(message))])
        return key
    started = workflow_messages.insert(conn, app, key, spec.workflow, spec.args, spec.task_queue)
    if started is not None:
        enqueue(conn, [started])
    return key


def _state(conn: Connection, app: str, key: str) -> str | None:
    row = conn.execute(query("run_states"), {"app": app, "keys": [key]}).fetchone()
    return row[1] if row else None


def _now(conn: Connection) -> datetime:
    row = conn.execute(query("database_now")).fetchone()
    assert row is not None
    value: datetime = row[0]
    return value.astimezone(UTC)
