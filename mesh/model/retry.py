"""Retry policy and the decision taken when a handler fails.

HotMesh's defaults and formula: ``maximum_attempts`` 3, ``backoff_coefficient`` 10,
``maximum_interval`` 120 s, and after failed attempt *n* (1-based) the message becomes visible
again after ``min(backoff_coefficient ** n, maximum_interval)`` seconds. Attempts are counted
when a message is claimed, so a handler that kills its process still spends an attempt.
"""

from __future__ import annotations

import msgspec

from mesh.errors import InvalidPayload
from mesh.model.durations import parse_duration


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How often, and how far apart, a failing message is tried. Travels with the message."""

    maximum_attempts: int = 3
    backoff_coefficient: float = 10.0
    maximum_interval: float = 120.0
    """Seconds."""

    def __post_init__(self) -> None:
        if self.maximum_attempts < 1:
            raise InvalidPayload("retry.maximum_attempts must be at least 1")
        if self.backoff_coefficient < 1:
            raise InvalidPayload("retry.backoff_coefficient must be at least 1")
        if self.maximum_interval < 0:
            raise InvalidPayload("retry.maximum_interval must not be negative")

    @classmethod
    def from_settings(
        cls,
        maximum_attempts: int = 3,
        backoff_coefficient: float = 10.0,
        maximum_interval: str | float = 120.0,
    ) -> RetryPolicy:
        """Build a policy where ``maximum_interval`` may be a duration string ('2 minutes')."""
        return cls(maximum_attempts, float(backoff_coefficient), parse_duration(maximum_interval))


DEFAULT_RETRY_POLICY = RetryPolicy()


class RetryLater(msgspec.Struct, frozen=True):
    """Make the message visible again after ``delay`` seconds."""

    delay: float


class GiveUp(msgspec.Struct, frozen=True):
    """No attempts are left: dead-letter the message and report the error."""


def retry_delay(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based)."""
    try:
        delay = policy.backoff_coefficient**attempt
    except OverflowError:
        return policy.maximum_interval
    return min(delay, policy.maximum_interval)


def decide_failure(policy: RetryPolicy, attempt: int) -> RetryLater | GiveUp:
    """What to do after attempt ``attempt`` (1-based) of a message failed."""
    if attempt >= policy.maximum_attempts:
        return GiveUp()
    return RetryLater(retry_delay(policy, attempt))
