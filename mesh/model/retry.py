"""Retry policy and the decision taken when a handler fails.

HotMesh's defaults and formula: ``maximum_attempts`` 3, ``backoff_coefficient`` 10,
``maximum_interval`` 120 s, and after failed attempt *n* (1-based) the message becomes visible
again after ``min(backoff_coefficient ** n, maximum_interval)`` seconds. Attempts are counted
when a message is claimed, so a handler that kills its process still spends an attempt.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

from mesh.errors import InvalidPayload
from mesh.model.durations import Duration, parse_duration

MAX_ATTEMPTS_LIMIT = 1000
"""The most attempts a policy may allow (a message is claimed at most this often)."""
MAX_INTERVAL_LIMIT = 7 * 86400.0
"""The longest wait between attempts a policy may set (seconds)."""


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How often, and how far apart, a failing message is tried. Travels with the message."""

    maximum_attempts: int = 3
    backoff_coefficient: float = 10.0
    maximum_interval: float = 120.0
    """Seconds."""

    def __post_init__(self) -> None:
        if not 1 <= self.maximum_attempts <= MAX_ATTEMPTS_LIMIT:
            raise InvalidPayload(
                f"retry.maximum_attempts must be from 1 to {MAX_ATTEMPTS_LIMIT}, "
                f"not {self.maximum_attempts}"
            )
        if not 1 <= self.backoff_coefficient <= 1000:
            raise InvalidPayload(
                f"retry.backoff_coefficient must be from 1 to 1000, not {self.backoff_coefficient}"
            )
        if not 0 <= self.maximum_interval <= MAX_INTERVAL_LIMIT:
            raise InvalidPayload(
                f"retry.maximum_interval must be from 0 to {MAX_INTERVAL_LIMIT:g} seconds "
                f"(7 days), not {self.maximum_interval}"
            )

    @classmethod
    def from_settings(
        cls,
        maximum_attempts: int = 3,
        backoff_coefficient: float = 10.0,
        maximum_interval: Duration = 120.0,
    ) -> RetryPolicy:
        """Build a policy where ``maximum_interval`` may be a duration string ('2 minutes')."""
        return cls(maximum_attempts, float(backoff_coefficient), parse_duration(maximum_interval))


DEFAULT_RETRY_POLICY = RetryPolicy()

_SPEC_KEYS = {
    "maximumAttempts": "maximum_attempts",
    "maximum_attempts": "maximum_attempts",
    "backoffCoefficient": "backoff_coefficient",
    "backoff_coefficient": "backoff_coefficient",
    "maximumInterval": "maximum_interval",
    "maximum_interval": "maximum_interval",
}


def policy_from_spec(spec: object) -> RetryPolicy:
    """A policy from a manifest's ``retry:`` mapping (HotMesh's camelCase keys, or
    snake_case); unset keys take the defaults. :class:`InvalidPayload` says what is wrong."""
    if not isinstance(spec, dict):
        raise InvalidPayload(
            "retry is a mapping: {maximumAttempts: 5, backoffCoefficient: 2, "
            "maximumInterval: '30 seconds'}"
        )
    settings: dict[str, object] = {}
    for key, value in spec.items():
        name = _SPEC_KEYS.get(key) if isinstance(key, str) else None
        if name is None:
            raise InvalidPayload(
                f"retry: unknown key {key!r} (use maximumAttempts, backoffCoefficient, "
                "maximumInterval)"
            )
        settings[name] = value
    attempts = settings.get("maximum_attempts", 3)
    coefficient = settings.get("backoff_coefficient", 10.0)
    interval = settings.get("maximum_interval", 120.0)
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise InvalidPayload(f"retry.maximumAttempts must be a whole number, not {attempts!r}")
    if isinstance(coefficient, bool) or not isinstance(coefficient, int | float):
        raise InvalidPayload(f"retry.backoffCoefficient must be a number, not {coefficient!r}")
    if isinstance(interval, bool) or not isinstance(interval, int | float | str | timedelta):
        raise InvalidPayload(
            f"retry.maximumInterval must be seconds or a duration, not {interval!r}"
        )
    return RetryPolicy.from_settings(attempts, coefficient, interval)


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
