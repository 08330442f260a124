"""JavaScript ``Date``: a time value in milliseconds since the epoch (NaN when invalid), read
and written in UTC or in the process's local time zone, with JavaScript's overflow rules
(``setMonth(12)`` is January of the next year, ``setDate(0)`` the last day of the previous
month)."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

MS_PER_DAY = 86_400_000
MAX_TIME = 8.64e15
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def time_clip(ms: float) -> float:
    if not math.isfinite(ms) or abs(ms) > MAX_TIME:
        return math.nan
    return float(math.trunc(ms)) + 0.0


class JSDate:
    """A Date object. ``ms`` is the time value (NaN for an invalid date)."""

    __slots__ = ("ms",)

    def __init__(self, ms: float) -> None:
        self.ms = time_clip(ms)

    @property
    def valid(self) -> bool:
        return not math.isnan(self.ms)

    def __repr__(self) -> str:
        return f"JSDate({iso_string(self) if self.valid else 'Invalid Date'})"

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__


def local_offset_ms(utc_ms: float) -> float:
    """This process's time-zone offset from UTC at the instant ``utc_ms``, in ms."""
    seconds = utc_ms / 1000
    try:
        offset = datetime.fromtimestamp(seconds, tz=UTC).astimezone().utcoffset()
    except (OverflowError, OSError, ValueError):
        offset = timedelta(seconds=-time.timezone)
    return offset.total_seconds() * 1000 if offset is not None else 0.0


def local_to_utc(local_ms: float) -> float:
    guess = local_ms - local_offset_ms(local_ms)
    return local_ms - local_offset_ms(guess)


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (month 1-12)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def make_time_value(
    year: float, month: float, day: float, hours: float, minutes: float, seconds: float, ms: float
) -> float:
    """MakeDate(MakeDay(year, month, day), MakeTime(...)) with JavaScript's overflow: every
    field may be out of range (month 0-based)."""
    fields = (year, month, day, hours, minutes, seconds, ms)
    if not all(math.isfinite(f) for f in fields):
        return math.nan
    year, month, day, hours, minutes, seconds, ms = (float(math.trunc(f)) for f in fields)
    year += math.floor(month / 12)
    month = month % 12
    days = days_from_civil(int(year), int(month) + 1, 1) + day - 1
    return days * MS_PER_DAY + hours * 3_600_000 + minutes * 60_000 + seconds * 1000 + ms


def fields(date: JSDate, utc: bool) -> tuple[int, int, int, int, int, int, int, int]:
    """(year, month 0-11, day, hours, minutes, seconds, ms, weekday 0=Sunday)."""
    ms = date.ms if utc else date.ms + local_offset_ms(date.ms)
    days, in_day = divmod(int(ms), MS_PER_DAY)
    moment = EPOCH + timedelta(days=days, milliseconds=in_day)
    return (
        moment.year,
        moment.month - 1,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
        (days + 4) % 7,
    )


def iso_string(date: JSDate) -> str:
    year, month, day, hours, minutes, seconds, ms, _ = fields(date, utc=True)
    year_text = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+07d}"
    return (
        f"{year_text}-{month + 1:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}Z"
    )


def _offset_text(date: JSDate) -> str:
    offset = int(local_offset_ms(date.ms) // 60_000)
    sign = "+" if offset >= 0 else "-"
    return f"GMT{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"


def date_string(date: JSDate) -> str:
    if not date.valid:
        return "Invalid Date"
    year, month, day, *_, weekday = fields(date, utc=False)
    return f"{DAYS[weekday]} {MONTHS[month]} {day:02d} {year:04d}"


def time_string(date: JSDate) -> str:
    _, _, _, hours, minutes, seconds, _, _ = fields(date, utc=False)
    zone = time.strftime("%Z") or "local time"
    name = "Coordinated Universal Time" if local_offset_ms(date.ms) == 0 else zone
    return f"{hours:02d}:{minutes:02d}:{seconds:02d} {_offset_text(date)} ({name})"


def full_string(date: JSDate) -> str:
    """Date.prototype.toString."""
    return "Invalid Date" if not date.valid else f"{date_string(date)} {time_string(date)}"


_ISO = re.compile(
    r"(?P<year>[+-]\d{6}|\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?"
)


def parse(text: str) -> float:
    """Date.parse: the ISO 8601 forms JavaScript must accept (date-only forms are UTC,
    date-times without an offset local), then RFC 2822 dates; NaN otherwise."""
    match = _ISO.fullmatch(text.strip())
    if match:
        parts = match.groupdict()
        month, day = int(parts["month"] or 1), int(parts["day"] or 1)
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return math.nan
        fraction = (parts["fraction"] or "0")[:3].ljust(3, "0")
        value = make_time_value(
            int(parts["year"]),
            month - 1,
            day,
            int(parts["hour"] or 0),
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            int(fraction),
        )
        zone = parts["zone"]
        if parts["hour"] is None or zone == "Z":
            return time_clip(value)
        if zone:
            sign = 1 if zone[0] == "+" else -1
            return time_clip(value - sign * (int(zone[1:3]) * 60 + int(zone[4:6])) * 60_000)
        return time_clip(local_to_utc(value))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return math.nan
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return time_clip((moment - EPOCH).total_seconds() * 1000)
