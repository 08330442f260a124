"""What the database's answers to a batch's commands cause, decided without the database.

A batch's jobs leave commands (:mod:`mesh.model.graph.state`): register a hook, deliver a
signal, interrupt the children, announce a status. :mod:`mesh.pg.jobs` carries them out and
hands back what it found (a signal buffered for a hook that registers now, the hooks a signal
reaches, the running children); the functions here turn those rows into engine messages, and
decide where a client's signal goes and how long an unheard signal waits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from mesh.errors import UnknownHook
from mesh.model.graph.activities.signal import deliveries
from mesh.model.graph.app import CompiledApp
from mesh.model.graph.state import DeliverSignal, InterruptChildren
from mesh.model.messages import InterruptJob, Resume
from mesh.model.outcomes import Outgoing, to_engine

BUFFERED_SIGNAL_SECONDS = 600.0
"""How long a signal waits for its hook to register (HotMesh: HMSH_PENDING_SIGNAL_EXPIRE)."""

ANNOUNCEMENT_BYTES = 7900
"""The most a job-channel payload carries (NOTIFY's limit is 8000 bytes)."""

HookRow = tuple[str, str, str, str]
"""A waiting hook: (job id, job gid, activity, dimension)."""

_encode = msgspec.json.Encoder().encode


def signal_resumes(
    app: str,
    signal: DeliverSignal,
    hooks: Iterable[HookRow],
    *,
    new_id: Callable[[], str],
    now: float,
) -> list[Outgoing]:
    """The resumes that deliver ``signal`` to the ``hooks`` waiting for it."""
    return [
        signal_resume(app, hook, signal.code, signal.data, new_id=new_id, now=now) for hook in hooks
    ]


def signal_resume(
    app: str,
    hook: HookRow,
    code: int,
    data: Any,
    *,
    new_id: Callable[[], str],
    now: float,
) -> Outgoing:
    """The resume that hands a signal's ``data`` and ``code`` to one waiting ``hook`` (also
    the one a hook gets when it registers and finds its signal buffered)."""
    key, gid, activity, dimension = hook
    return to_engine(
        Resume(
            id=new_id(),
            app=app,
            kind="signal",
            job_id=key,
            gid=gid,
            activity_id=activity,
            dimension=dimension,
            code=code,
            data=data,
            sent_at=now,
        )
    )


def buffer_seconds(signal: DeliverSignal) -> float | None:
    """How long ``signal`` waits when no hook waits for it yet (``$expire`` in its data
    overrides the default); None: it is not kept (``all`` signals, which name no key)."""
    if not signal.buffer or signal.match_key is None:
        return None
    if isinstance(signal.data, dict) and isinstance(signal.data.get("$expire"), int | float):
        return float(signal.data["$expire"])
    return BUFFERED_SIGNAL_SECONDS


def child_interrupts(
    app: str,
    command: InterruptChildren,
    children: Iterable[str],
    *,
    new_id: Callable[[], str],
    now: float,
) -> list[Outgoing]:
    """The interrupts a ``descend`` sends to a job's running ``children``."""
    return [
        to_engine(
            InterruptJob(
                id=new_id(),
                app=app,
                job_id=child,
                reason=command.reason,
                code=command.code,
                descend=True,
                sent_at=now,
            )
        )
        for child in children
    ]


def route_signal(
    app: str, versions: Sequence[CompiledApp], topic: str, data: Any, code: int = 200
) -> list[DeliverSignal]:
    """Where a client's signal on ``topic`` goes: the deliveries the hook rules of every
    deployed version resolve (a job keeps the version it started with, so an older version's
    hook may still wait), one per match key. ``versions`` starts with the active one.
    :class:`UnknownHook` when no hook listens to ``topic``."""
    found: dict[str | None, DeliverSignal] = {}
    for compiled in versions:
        for delivery in deliveries(compiled, topic, data, code):
            found.setdefault(delivery.match_key, delivery)
    if not found:
        active = versions[0]
        raise UnknownHook(
            f"no hook of app {app!r} listens to signal topic {topic!r} (in any deployed "
            f"version); hook topics of the active version {active.version}: "
            f"{', '.join(sorted(active.hook_rules)) or 'none'}"
        )
    return list(found.values())


def announcement(topic: str, job_id: str, status: str) -> bytes:
    """One job event as the job channel carries it."""
    return _encode({"topic": topic, "job_id": job_id, "status": status})


def announcement_payloads(events: Sequence[bytes]) -> list[str]:
    """The JSON arrays that carry ``events`` (each an encoded object) on the job channel: as
    few NOTIFYs as fit, so a batch of completions costs Postgres and the listeners one
    notification, not one per job."""
    payloads: list[str] = []
    chunk: list[bytes] = []
    size = 2
    for event in events:
        if chunk and size + len(event) + 1 > ANNOUNCEMENT_BYTES:
            payloads.append((b"[" + b",".join(chunk) + b"]").decode())
            chunk, size = [], 2
        chunk.append(event)
        size += len(event) + 1
    if chunk:
        payloads.append((b"[" + b",".join(chunk) + b"]").decode())
    return payloads
