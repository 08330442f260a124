"""What a client hears on its app's job channel: job completions, kept for the waiters and
handed to the subscribers.

Job completions arrive by NOTIFY (a JSON array of ``{topic, job_id, status}``, one object
from older nodes). Any database login can send one, so a notice only wakes a waiter: the
waiter's read of the job decides (:meth:`mesh.api.Mesh.wait`). A notice that does not
decode within the nesting limit is dropped and counted.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from typing import Any

import trio

from mesh.errors import InvalidPayload
from mesh.model.jobs import FINAL, JobEvent, job_events

log = logging.getLogger(__name__)

ANSWERS = FINAL | {"persisted"}
"""Job events a waiter waits for."""

REMEMBERED = 10_000
"""Finished and started job ids kept (each set drops its oldest beyond this)."""

Subscriber = Callable[[JobEvent], Any]


class JobEvents:
    def __init__(self) -> None:
        self.finished: dict[str, str] = {}
        """Recently finished job ids and their status, as announced (bounded)."""
        self.started: dict[str, None] = {}
        """Jobs this client started after it listened: their end will be announced to it."""
        self.subscribers: list[tuple[str, Subscriber]] = []
        self.bad_notifications = 0
        """Job-channel notifications dropped as malformed."""
        self._waiters: dict[str, list[trio.Event]] = {}

    def remember(self, job_id: str) -> None:
        """A job this client started (its waiters need not read it before the notice)."""
        self.started[job_id] = None
        if len(self.started) > REMEMBERED:
            del self.started[next(iter(self.started))]

    def arm(self, job_id: str) -> trio.Event:
        """An event set when a notice about ``job_id`` arrives."""
        event = trio.Event()
        self._waiters.setdefault(job_id, []).append(event)
        return event

    def rearm(self, job_id: str, event: trio.Event) -> trio.Event:
        """``event`` if it is not set yet, else a fresh one in its place."""
        if not event.is_set():
            return event
        self.drop(job_id, event)
        return self.arm(job_id)

    def drop(self, job_id: str, event: trio.Event) -> None:
        waiters = self._waiters.get(job_id, [])
        if event in waiters:
            waiters.remove(event)
        if not waiters:
            self._waiters.pop(job_id, None)

    def on_payload(self, payload: str) -> None:
        """A job-channel notification: decoded within the nesting limit into typed events,
        or dropped (counted)."""
        try:
            events = job_events(payload)
        except InvalidPayload:
            self.bad_notifications += 1
            return
        for event in events:
            self._dispatch(event)

    def _dispatch(self, event: JobEvent) -> None:
        if event.status in ANSWERS:
            self.finished[event.job_id] = event.status
            if len(self.finished) > REMEMBERED:
                del self.finished[next(iter(self.finished))]
        for waiter in self._waiters.get(event.job_id, []):
            waiter.set()
        for pattern, callback in list(self.subscribers):
            if fnmatch.fnmatchcase(event.topic, pattern):
                try:
                    callback(event)
                except Exception:  # a subscriber's bug must not stop the others, or the node
                    log.exception("event=job_subscriber_failed topic=%s", event.topic)
