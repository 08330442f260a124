"""Job rows in and out: lock and load jobs into :class:`JobState`, save what changed, and
carry out the deferred commands (hooks, signals, child interrupts, announcements).

Every function runs inside the caller's transaction. Batches travel as one JSON parameter
read by ``jsonb_to_recordset``: one round trip whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from mesh.model.graph.effects import (
    announcement,
    announcement_payloads,
    buffer_seconds,
    child_interrupts,
    signal_resume,
    signal_resumes,
)
from mesh.model.graph.state import (
    Announce,
    DeliverSignal,
    InterruptChildren,
    JobState,
    RegisterHook,
    UnregisterHooks,
    Withdraw,
)
from mesh.model.ids import job_channel, quorum_channel
from mesh.model.messages import ParentRef
from mesh.model.outcomes import Outgoing
from mesh.model.quorum import JobNotices
from mesh.pg.database import Connection, Cursor
from mesh.pg.queries import query
from mesh.pg.streams import lines

_encode = msgspec.json.Encoder().encode


def _rows(rows: list[dict[str, Any]]) -> str:
    return _encode(rows).decode()


def lock_jobs(conn: Connection, app: str, keys: Iterable[str]) -> dict[str, JobState]:
    """The existing jobs among ``keys``, locked for this transaction (without their data)."""
    return read_locked_jobs(app, send_lock_jobs(conn, app, keys))


def send_lock_jobs(conn: Connection, app: str, keys: Iterable[str]) -> Cursor | None:
    """Send the lock of ``keys``' jobs (read it with :func:`read_locked_jobs`): in a
    pipeline, it travels with what follows."""
    wanted = sorted(set(keys))
    if not wanted:
        return None
    return conn.execute(query("lock_jobs"), {"app": app, "keys": wanted})


def read_locked_jobs(app: str, cursor: Cursor | None) -> dict[str, JobState]:
    found: dict[str, JobState] = {}
    if cursor is None:
        return found
    for row in cursor.fetchall():
        (
            id_,
            key,
            gid,
            version,
            topic,
            entity,
            status,
            semaphore,
            threshold,
            cycles,
            parent_key,
            parent_gid,
            parent_activity,
            parent_dimension,
            error,
            created_at,
            persisted,
            trace,
        ) = row
        parent = None
        if parent_key is not None and parent_gid is not None:
            parent = ParentRef(parent_key, parent_gid, parent_activity, parent_dimension)
        found[key] = JobState(
            id=id_,
            app=app,
            key=key,
            gid=gid,
            version=version,
            topic=topic,
            entity=entity,
            status=status,
            semaphore=semaphore,
            threshold=threshold,
            cycles=cycles,
            parent=parent,
            error=msgspec.json.decode(error) if error else None,
            created_at=created_at,
            persisted=persisted,
            trace=trace or "",
        )
    return found


Details = tuple[Cursor, Cursor]


def send_load_details(
    conn: Connection, app: str, wanted: Mapping[str, Iterable[str]]
) -> Details | None:
    """Send the reads of the data, activity parts and steps of jobs (by key) in the given
    dimensions; read them with :func:`read_details`. Sent after :func:`send_lock_jobs` in
    one pipeline, they run after the locks are held, so they see the jobs' latest commits."""
    pairs = [(key, dim) for key, dims in wanted.items() for dim in set(dims)]
    if not pairs:
        return None
    # Dimensions may be empty strings, which a joined text cannot carry: binary arrays.
    params = {"app": app, "keys": [p[0] for p in pairs], "dims": [p[1] for p in pairs]}
    return (
        conn.execute(query("load_attributes"), params),
        conn.execute(query("load_steps"), params),
    )


def read_details(jobs: Mapping[str, JobState], details: Details | None) -> None:
    """Fill the jobs' data, activity parts and steps from :func:`send_load_details`."""
    if details is None:
        return
    attributes, steps = details
    decode = msgspec.json.decode
    for key, dimension, field, value in attributes.fetchall():
        job = jobs.get(key)
        if job is None:
            continue
        activity, slash, part = field.partition("/")
        if slash:
            job.activities.setdefault((activity, dimension), {})[part] = decode(value)
        else:
            job.data[field] = decode(value)
    for key, dimension, activity, leg, code in steps.fetchall():
        job = jobs.get(key)
        if job is not None:
            job.steps[(activity, dimension, leg)] = code


def insert_jobs(conn: Connection, jobs: Sequence[JobState]) -> dict[str, int]:
    """Insert new jobs with their data and steps; returns key -> id of those inserted (a key
    already taken is missing, and nothing of that job was written)."""
    if not jobs:
        return {}
    rows = [
        {
            **_job_row(job),
            "app": job.app,
            "key": job.key,
            "gid": job.gid,
            "version": job.version,
            "topic": job.topic,
            "entity": job.entity,
            "parent_key": job.parent.job_id if job.parent else None,
            "parent_gid": job.parent.gid if job.parent else None,
            "parent_activity": job.parent.activity_id if job.parent else None,
            "parent_dimension": job.parent.dimension if job.parent else None,
            "trace": job.trace,
        }
        for job in jobs
    ]
    attributes, steps = _details(jobs, key=True)
    params = {"rows": _rows(rows), "attributes": _rows(attributes), "steps": _rows(steps)}
    inserted = {key: id_ for id_, key in conn.execute(query("insert_jobs"), params)}
    for job in jobs:
        if job.key in inserted:
            job.id = inserted[job.key]
    return inserted


def save_jobs(conn: Connection, jobs: Sequence[JobState]) -> None:
    """Write what changed in ``jobs`` (rows, data, parts, steps); new jobs must be inserted."""
    jobs = [job for job in jobs if not job.created]  # inserted whole by insert_jobs
    updates = [_job_row(job) for job in jobs if job.changed]
    attributes, steps = _details(jobs, key=False)
    # No results to wait for: in the caller's pipeline these travel with what follows.
    if updates:
        ids = lines(row["id"] for row in updates)
        conn.execute(query("update_jobs"), {"rows": _rows(updates), "ids": ids})
    if attributes:
        conn.execute(query("save_attributes"), {"rows": _rows(attributes)})
    if steps:
        conn.execute(query("save_steps"), {"rows": _rows(steps)})


def _details(
    jobs: Sequence[JobState], *, key: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The changed attribute rows and new step rows of ``jobs``, naming each job by its
    key (new jobs, whose ids the insert assigns) or by its id."""
    attributes: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for job in jobs:
        owner: dict[str, Any] = {"key": job.key} if key else {"job_id": job.id}
        for name in job.dirty_data:
            attributes.append(
                {**owner, "dimension": "", "field": name, "value": job.data.get(name)}
            )
        for activity, dimension, part in job.dirty_parts:
            value = job.activities.get((activity, dimension), {}).get(part)
            attributes.append(
                {**owner, "dimension": dimension, "field": f"{activity}/{part}", "value": value}
            )
        steps.extend(
            {
                **owner,
                "activity": s.activity,
                "dimension": s.dimension,
                "leg": s.leg,
                "code": s.code,
            }
            for s in job.new_steps
        )
    return attributes, steps


def _job_row(job: JobState) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": job.status,
        "semaphore": job.semaphore,
        "threshold": job.threshold,
        "cycles": job.cycles,
        "error": job.error,
        "expire": job.expire_seconds,
        "persisted": job.persisted,
    }


def run_commands(
    conn: Connection,
    jobs: Sequence[JobState],
    new_id: Callable[[], str],
    now: float,
    notices: JobNotices | None = None,
) -> list[Outgoing]:
    """Carry out the jobs' deferred commands; returns the messages they cause. ``notices``:
    the app's job events also go to the quorum."""
    lock_signal_keys(
        conn,
        (
            (job.app, command.topic, command.match_key)
            for job in jobs
            for command in job.commands
            if isinstance(command, RegisterHook | DeliverSignal)
        ),
    )
    outgoing: list[Outgoing] = []
    registrations: list[dict[str, Any]] = []
    unregistrations: list[dict[str, Any]] = []
    announced: dict[str, list[tuple[str, str, str]]] = {}
    for job in jobs:
        for command in job.commands:
            if isinstance(command, RegisterHook):
                registrations.append(
                    {
                        "app": job.app,
                        "topic": command.topic,
                        "match_key": command.match_key,
                        "job_id": job.id,
                        "gid": job.gid,
                        "activity": command.activity,
                        "dimension": command.dimension,
                    }
                )
            elif isinstance(command, UnregisterHooks):
                unregistrations.append(
                    {"job_id": job.id, "activity": command.activity, "dimension": command.dimension}
                )
            elif isinstance(command, DeliverSignal):
                outgoing.extend(deliver_signal(conn, job.app, command, new_id, now))
            elif isinstance(command, InterruptChildren):
                children = conn.execute(query("running_children"), {"id": job.id}).fetchall()
                outgoing.extend(
                    child_interrupts(
                        job.app, command, (c for (c,) in children), new_id=new_id, now=now
                    )
                )
            elif isinstance(command, Announce):
                event = (command.topic, job.key, command.status)
                announced.setdefault(job.app, []).append(event)
    if unregistrations:
        conn.execute(query("unregister_hooks"), {"rows": _rows(unregistrations)})
    if registrations:
        outgoing.extend(_register_hooks(conn, jobs, registrations, new_id, now))
    announce(conn, announced, notices)
    return outgoing


def withdraw_ended(conn: Connection, jobs: Sequence[JobState]) -> None:
    """Withdraw the queued requests and timers of the jobs that ended early (after this
    transaction's own messages are enqueued: those of an ended job go too)."""
    ended = [
        {"key": job.key, "gid": job.gid}
        for job in jobs
        if any(isinstance(command, Withdraw) for command in job.commands)
    ]
    if ended:
        withdraw(conn, jobs[0].app, ended)


def withdraw(conn: Connection, app: str, ended: list[dict[str, str]]) -> None:
    """Delete the activity requests, timers and answers of jobs ``ended`` (each a
    ``{"key", "gid"}``) of ``app``: the queued ones, and the requests a worker runs now (it
    cancels them when its heartbeat finds their leases gone)."""
    params = {"app": app, "rows": _rows(ended)}
    conn.execute(query("withdraw_job_messages"), params)
    conn.execute(query("withdraw_running_requests"), params)


def _register_hooks(
    conn: Connection,
    jobs: Sequence[JobState],
    registrations: list[dict[str, Any]],
    new_id: Callable[[], str],
    now: float,
) -> list[Outgoing]:
    """Register the hooks; a hook whose signal is already buffered is resumed with it."""
    app = jobs[0].app
    keys = {job.id: job.key for job in jobs}
    found = conn.execute(query("register_hooks"), {"rows": _rows(registrations)}).fetchall()
    return [
        signal_resume(
            app,
            (keys[job_id], gid, activity, dimension),
            code,
            msgspec.json.decode(data),
            new_id=new_id,
            now=now,
        )
        for job_id, gid, activity, dimension, data, code in found
    ]


def announce(
    conn: Connection,
    announced: Mapping[str, Sequence[tuple[str, str, str]]],
    notices: JobNotices | None = None,
) -> None:
    """NOTIFY each app's job channel of its job events (topic, job id, status), packed into
    as few payloads as fit; with ``notices`` (the app asked), also one quorum ``job``
    message per event on the app's general quorum channel. One statement: sent at commit."""
    channels: list[str] = []
    payloads: list[str] = []
    for app, events in announced.items():
        for payload in announcement_payloads([announcement(*event) for event in events]):
            channels.append(job_channel(app))
            payloads.append(payload)
        if notices is not None:
            told = notices.payloads(events)
            channels.extend([quorum_channel(app)] * len(told))
            payloads.extend(told)
    if channels:
        conn.execute(query("announce"), {"channels": channels, "payloads": payloads})


def lock_signal_keys(conn: Connection, keys: Iterable[tuple[str, str, str | None]]) -> None:
    """Serialise delivering signals and registering hooks per (app, topic, match key); call
    before either, with every key the transaction will touch (taken in one sorted order, so
    two transactions never wait on each other in a cycle). A None match key (a signal to
    every waiting hook) needs no lock: it is never buffered."""
    wanted = sorted({_encode(list(key)).decode() for key in keys if key[2] is not None})
    if wanted:
        conn.execute(query("lock_signal_keys"), {"keys": wanted})


def deliver_signal(
    conn: Connection, app: str, signal: DeliverSignal, new_id: Callable[[], str], now: float
) -> list[Outgoing]:
    """Resume messages for the hooks waiting on the signal; none waiting, and it may wait:
    keep it for the hook that registers next (:func:`buffer_seconds`). The caller holds the
    signal's key lock (:func:`lock_signal_keys`)."""
    waiting = conn.execute(
        query("find_hooks"), {"app": app, "topic": signal.topic, "match_key": signal.match_key}
    ).fetchall()
    seconds = buffer_seconds(signal)
    if not waiting and seconds is not None:
        conn.execute(
            query("buffer_signal"),
            {
                "app": app,
                "topic": signal.topic,
                "match_key": signal.match_key,
                "data": _encode(signal.data).decode(),
                "code": signal.code,
                "ttl": seconds,
            },
        )
        return []
    return signal_resumes(app, signal, waiting, new_id=new_id, now=now)
