"""``@date`` and ``@cron`` (HotMesh ``services/pipe/functions/date.ts``, ``cron.ts``).

Date arguments may be a Date, an ISO string (``2024-01-31`` or ``2024-01-31T12:00:00Z``,
optionally with milliseconds) or milliseconds since the epoch (a number, or a numeric
string). Getters and setters without ``UTC`` use the process's local time zone, as
JavaScript does. Setters return the new time value; locale formats are ``en-US``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mesh.model.pipe.js import UNDEFINED, is_number, js_number, to_integer, to_number, to_string
from mesh.model.pipe.jsdate import (
    EPOCH,
    JSDate,
    date_string,
    fields,
    full_string,
    iso_string,
    local_offset_ms,
    local_to_utc,
    make_time_value,
    parse,
)

FIDELITY_SECONDS = 5
"""The shortest delay @cron.nextDelay returns (HotMesh's HMSH_FIDELITY_SECONDS)."""

_ISO_INPUT = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d{3})?Z)?")
_FIELD = {"year": 0, "month": 1, "day": 2, "hours": 3, "minutes": 4, "seconds": 5, "ms": 6}


def date_of(value: Any) -> JSDate:
    """HotMesh's getDateInstance: a Date, an ISO string, or epoch milliseconds."""
    if isinstance(value, JSDate):
        return value
    if isinstance(value, str):
        if _ISO_INPUT.fullmatch(value):
            return JSDate(parse(value))
        digits = re.match(r"\s*[+-]?\d+", value)
        if digits:
            return JSDate(float(int(digits.group(0))))
    elif is_number(value):
        return JSDate(float(value))
    raise ValueError("Invalid date format")


def _getter(index: int, utc: bool) -> Callable[..., Any]:
    def get(value: Any = UNDEFINED) -> Any:
        date = date_of(value)
        return fields(date, utc)[index] if date.valid else math.nan

    return get


def _setter(utc: bool, *names: str) -> Callable[..., Any]:
    """setX(date, first, ...optional): change those fields, keep the rest; returns the time."""

    def set_fields(value: Any = UNDEFINED, *arguments: Any) -> Any:
        date = date_of(value)
        if not date.valid and names[0] != "year":
            return math.nan
        current: list[float] = (
            [float(f) for f in fields(date, utc)[:7]] if date.valid else [1970.0, 0, 1, 0, 0, 0, 0]
        )
        for position, name in enumerate(names):
            given = arguments[position] if position < len(arguments) else UNDEFINED
            if position == 0 or given is not UNDEFINED:
                current[_FIELD[name]] = to_number(given)
        local = make_time_value(*current)
        date.ms = JSDate(local if utc else local_to_utc(local)).ms
        return js_number(date.ms)

    return set_fields


def set_time(value: Any = UNDEFINED, ms: Any = UNDEFINED) -> Any:
    date = date_of(value)
    date.ms = JSDate(to_number(ms)).ms
    return js_number(date.ms)


def js_utc(*arguments: Any) -> Any:
    """Date.UTC(year, month = 0, day = 1, hours, minutes, seconds, ms); years 0-99 are 19xx."""
    values = [to_number(a) for a in arguments] + [math.nan] * (7 - len(arguments))
    defaults = [math.nan, 0, 1, 0, 0, 0, 0]
    given = [
        v if i < len(arguments) and arguments[i] is not UNDEFINED else defaults[i]
        for i, v in enumerate(values[:7])
    ]
    year = given[0]
    if math.isfinite(year) and 0 <= to_integer(year) <= 99:
        given[0] = 1900 + to_integer(year)
    return js_number(JSDate(make_time_value(*given)).ms)


def _to_iso(value: Any = UNDEFINED) -> str:
    date = date_of(value)
    if not date.valid:
        raise ValueError("Invalid time value")
    return iso_string(date)


def _to_json(value: Any = UNDEFINED) -> Any:
    date = date_of(value)
    return iso_string(date) if date.valid else None


def _iso_x(value: Any = UNDEFINED) -> str:
    """HotMesh's compact form: the ISO string without ``-``, ``:``, ``T`` or ``Z``."""
    date = (
        date_of(value)
        if value is not UNDEFINED and value is not None
        else JSDate(time.time() * 1000)
    )
    return re.sub(r"[:TZ-]", "", _to_iso(date))


def _locale_date(value: Any = UNDEFINED, *_: Any) -> str:
    date = date_of(value)
    if not date.valid:
        return "Invalid Date"
    year, month, day, *_rest = fields(date, utc=False)
    return f"{month + 1}/{day}/{year}"


def _locale_time(value: Any = UNDEFINED, *_options: Any) -> str:
    date = date_of(value)
    if not date.valid:
        return "Invalid Date"
    hours, minutes, seconds = fields(date, utc=False)[3:6]
    return f"{(hours % 12) or 12}:{minutes:02d}:{seconds:02d} {'AM' if hours < 12 else 'PM'}"


def _locale_both(value: Any = UNDEFINED, *_: Any) -> str:
    date = date_of(value)
    return "Invalid Date" if not date.valid else f"{_locale_date(date)}, {_locale_time(date)}"


DATE: dict[str, Callable[..., Any]] = {
    "fromISOString": lambda text=UNDEFINED: JSDate(parse(to_string(text))),
    "now": lambda *_: int(time.time() * 1000),
    "parse": lambda text=UNDEFINED: js_number(parse(to_string(text))),
    "getDate": _getter(2, utc=False),
    "getDay": _getter(7, utc=False),
    "getFullYear": _getter(0, utc=False),
    "getHours": _getter(3, utc=False),
    "getMilliseconds": _getter(6, utc=False),
    "getMinutes": _getter(4, utc=False),
    "getMonth": _getter(1, utc=False),
    "getSeconds": _getter(5, utc=False),
    "getTime": lambda value=UNDEFINED: js_number(date_of(value).ms),
    "getTimezoneOffset": lambda value=UNDEFINED: js_number(
        -local_offset_ms(date_of(value).ms) / 60_000
    ),
    "getUTCDate": _getter(2, utc=True),
    "getUTCDay": _getter(7, utc=True),
    "getUTCFullYear": _getter(0, utc=True),
    "getUTCHours": _getter(3, utc=True),
    "getUTCMilliseconds": _getter(6, utc=True),
    "getUTCMinutes": _getter(4, utc=True),
    "getUTCMonth": _getter(1, utc=True),
    "getUTCSeconds": _getter(5, utc=True),
    "setMilliseconds": _setter(False, "ms"),
    "setMinutes": _setter(False, "minutes", "seconds", "ms"),
    "setMonth": _setter(False, "month", "day"),
    "setSeconds": _setter(False, "seconds", "ms"),
    "setTime": set_time,
    "setUTCDate": _setter(True, "day"),
    "setUTCFullYear": _setter(True, "year", "month", "day"),
    "setUTCHours": _setter(True, "hours", "minutes", "seconds", "ms"),
    "setUTCMilliseconds": _setter(True, "ms"),
    "setUTCMinutes": _setter(True, "minutes", "seconds", "ms"),
    "setUTCMonth": _setter(True, "month", "day"),
    "setUTCSeconds": _setter(True, "seconds", "ms"),
    "setDate": _setter(False, "day"),
    "setFullYear": _setter(False, "year", "month", "day"),
    "setHours": _setter(False, "hours", "minutes", "seconds", "ms"),
    "toDateString": lambda value=UNDEFINED: date_string(date_of(value)),
    "toISOString": _to_iso,
    "toISOXString": _iso_x,
    "toJSON": _to_json,
    "toLocaleDateString": _locale_date,
    "toLocaleString": _locale_both,
    "toLocaleTimeString": _locale_time,
    "toString": lambda value=UNDEFINED: full_string(date_of(value)),
    "UTC": js_utc,
    "valueOf": lambda value=UNDEFINED: js_number(date_of(value).ms),
}


# -- @cron --------------------------------------------------------------------------------

_CRON = re.compile(
    r"(\*|[0-5]?\d) (\*|[01]?\d|2[0-3]) (\*|[12]?\d|3[01]) (\*|[1-9]|1[0-2]) (\*|[0-6](?:-[0-6])?(?:,[0-6])?)"
)


def _weekdays(field: str) -> set[int]:
    if field == "*":
        return set(range(7))
    days: set[int] = set()
    for part in field.split(","):
        low, _, high = part.partition("-")
        days.update(range(int(low), int(high or low) + 1))
    return days


def next_delay(expression: Any = UNDEFINED, now: datetime | None = None) -> int:
    """Seconds until the next UTC tick of a five-field cron expression (HotMesh's subset:
    ``*`` or a number per field, weekdays also ``a-b`` and ``,c``), at least 5; -1 without
    an expression. As in cron, a day-of-month and a weekday both given match either."""
    if not isinstance(expression, str):
        return -1
    match = _CRON.fullmatch(expression)
    if not match:
        raise ValueError(f"Invalid cron expression: {expression}")
    minute, hour, day, month, weekday = match.groups()
    weekdays = _weekdays(weekday)
    current = now or datetime.now(UTC)
    start = current.replace(second=0, microsecond=0) + timedelta(minutes=1)
    hours = range(24) if hour == "*" else [int(hour)]
    minutes = range(60) if minute == "*" else [int(minute)]
    for offset in range(366 * 5):  # day by day, at most five years ahead
        date = (start + timedelta(days=offset)).date()
        day_ok = day == "*" or date.day == int(day)
        weekday_ok = weekday == "*" or (date.weekday() + 1) % 7 in weekdays
        matches_day = (
            (day_ok or weekday_ok) if day != "*" and weekday != "*" else (day_ok and weekday_ok)
        )
        if not matches_day or (month != "*" and date.month != int(month)):
            continue
        for h in hours:
            for m in minutes:
                tick = datetime(date.year, date.month, date.day, h, m, tzinfo=UTC)
                if tick >= start:
                    delay = (tick - current).total_seconds()
                    return max(round(delay), FIDELITY_SECONDS)
    raise ValueError(f"cron expression {expression!r} never fires")


CRON: dict[str, Callable[..., Any]] = {
    "nextDelay": lambda expression=UNDEFINED: next_delay(expression)
}
__all__ = ["CRON", "DATE", "EPOCH", "date_of"]
