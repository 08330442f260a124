"""A stream consumer's settings and statistics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConsumerSettings:
    batch_size: int = 50
    """Messages claimed per round trip."""
    concurrency: int = 50
    """Messages in flight at once (claimed and not yet settled)."""
    lease: float = 30.0
    """Seconds a claim is leased; heartbeats extend it every lease / 3."""
    poll_interval: float = 60.0
    """The safety poll when no NOTIFY arrives (the elected poller wakes missed streams)."""
    settle_batch: int = 500
    max_attempts: int = 3
    """Attempts of a message that carries no retry policy (the worker's policy)."""


@dataclass(frozen=True, slots=True)
class ConsumerStatistics:
    """A consumer at one moment (counters since the process started)."""

    stream: str
    in_flight: int
    claimed: int
    acked: int
    retried: int
    dead_lettered: int
    lost: int
    claims: int
    empty_claims: int
    wakeups: int
    draining: bool
    paused: bool
    running_alone: int
