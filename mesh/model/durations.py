"""Durations as mesh accepts them everywhere: seconds (``30``), a string as used in configs
and retry policies (``'5 seconds'``, ``'2 minutes'``) or a :class:`datetime.timedelta`."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import TypeAlias

from mesh.errors import InvalidPayload

_UNITS = {
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}
Duration: TypeAlias = "float | str | timedelta"
"""A duration: seconds, ``'30 days'``, or ``timedelta(days=30)``."""

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")


def parse_duration(value: Duration) -> float:
    """Seconds in ``value``: a number (seconds), a string such as ``'1.5 hours'``, ``'200ms'``,
    or a :class:`~datetime.timedelta`.

    Raises :class:`InvalidPayload` naming the accepted units when the string is not understood.
    """
    if isinstance(value, bool):
        raise InvalidPayload(f"{value!r} is not a duration; write e.g. '5 seconds'")
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if not math.isfinite(seconds):
            raise InvalidPayload(f"duration {value!r} is not a finite number of seconds")
        if seconds < 0:
            raise InvalidPayload(f"duration {value!r} is negative")
        return seconds
    if not isinstance(value, str):
        raise InvalidPayload(f"{value!r} is not a duration; write e.g. '5 seconds'")
    match = _DURATION.fullmatch(value.lower()) if len(value) <= 100 else None
    if match is None or (match.group(2) not in _UNITS and match.group(2) != ""):
        raise InvalidPayload(
            f"{value[:100]!r} is not a duration; write a number and a unit, e.g. '5 seconds', "
            "'200 milliseconds', '2 minutes', '1 hour'"
        )
    seconds = float(match.group(1)) * _UNITS.get(match.group(2), 1.0)
    if not math.isfinite(seconds):
        raise InvalidPayload(f"duration {value!r} is not a finite number of seconds")
    return seconds


def pending_seconds(value: Duration) -> float:
    """How long a pending start reserves its job: a positive duration (see ``pub``)."""
    fix = "a pending job is reserved for a positive duration, e.g. 60 or '10 minutes'"
    try:
        seconds = parse_duration(value)
    except InvalidPayload as error:
        raise InvalidPayload(f"pending={value!r}: {error}; {fix}") from None
    if not 0 < seconds < math.inf:
        raise InvalidPayload(f"pending={value!r}: {fix}")
    return seconds
