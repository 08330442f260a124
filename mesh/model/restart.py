"""Restart decisions for supervisors: exponential backoff under a restart intensity limit."""

from __future__ import annotations

from collections import deque

import msgspec


class RestartPolicy(msgspec.Struct, frozen=True):
    """At most ``max_restarts`` restarts within ``within_seconds``; backoff doubles per restart."""

    max_restarts: int = 5
    within_seconds: float = 60.0
    initial_backoff: float = 0.1
    maximum_backoff: float = 10.0


class Restart(msgspec.Struct, frozen=True):
    after: float


class Escalate(msgspec.Struct, frozen=True):
    reason: str


class RestartIntensity:
    """Remembers recent failures of one child and decides whether to restart it again.

    Pure: the caller passes the current time, so tests need no clock.
    """

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._failures: deque[float] = deque()

    def record_failure(self, now: float) -> Restart | Escalate:
        window_start = now - self.policy.within_seconds
        while self._failures and self._failures[0] < window_start:
            self._failures.popleft()
        self._failures.append(now)
        recent = len(self._failures)
        if recent > self.policy.max_restarts:
            return Escalate(
                f"{recent} failures within {self.policy.within_seconds:g} s "
                f"(limit {self.policy.max_restarts})"
            )
        backoff = self.policy.initial_backoff * 2 ** (recent - 1)
        return Restart(min(backoff, self.policy.maximum_backoff))

    @property
    def recent_failures(self) -> int:
        return len(self._failures)
