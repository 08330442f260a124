"""``@pipe``: the evaluator (rows, nesting, reduce, references, errors), JSON as
``JSON.stringify`` keeps it, and ``@date``/``@cron`` as JavaScript computes them."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from mesh.model.pipe import (
    UNDEFINED,
    PipeError,
    resolve,
    to_json_compatible,
)
from mesh.model.pipe.js import to_number
from tests.unit.pipe_tables import NAN, call, check

# -- the evaluator --------------------------------------------------------------------------

JOB = {
    "check": {
        "output": {
            "data": {"availableQty": 5, "requestedQty": 3, "items": [1, 2, 3], "name": " Ada "}
        }
    },
    "$job": {"metadata": {"jid": "order-456"}},
}


def test_pipe__rows_feed_the_next_function() -> None:
    mapping = {
        "@pipe": [
            ["{check.output.data.availableQty}", "{check.output.data.requestedQty}"],
            ["{@conditional.greater_than_or_equal}"],
        ]
    }
    assert resolve(mapping, JOB) is True
    mapping = {
        "@pipe": [["{check.output.data.name}"], ["{@string.trim}"], ["{@string.concat}", "!"]]
    }
    assert resolve(mapping, JOB) == "Ada"  # concat applies to the prior row only; "!" is a new cell
    mapping = {
        "@pipe": [["{check.output.data.name}"], ["{@string.trim}", "!"], ["{@string.concat}"]]
    }
    assert resolve(mapping, JOB) == "Ada!"


def test_pipe__nested_pipes_fan_in_as_arguments() -> None:
    mapping = {
        "@pipe": [
            {"@pipe": [["{$job.metadata.jid}"], ["{@string.toUpperCase}"]]},
            {"@pipe": [["-x"]]},
            ["{@string.concat}"],
        ]
    }
    assert resolve(mapping, JOB) == "ORDER-456-x"


def test_pipe__reduce_folds_with_context_variables() -> None:
    total = {
        "@pipe": [
            ["{check.output.data.items}", 0],
            {"@reduce": [["{$output}", "{$item}"], ["{@math.add}"]]},
        ]
    }
    assert resolve(total, JOB) == 6
    indexed = {
        "@pipe": [
            ["{check.output.data.items}", {}],
            {"@reduce": [["{$output}", "{$key}", "{$item}"], ["{@object.set}"]]},
        ]
    }
    assert resolve(indexed, JOB) == {"0": 1, "1": 2, "2": 3}


def test_pipe__references_and_literals() -> None:
    assert resolve("{check.output.data.items.1}", JOB) == 2
    assert resolve("{check.output.data.nothing.deeper}", JOB) is UNDEFINED
    assert resolve("plain text", JOB) == "plain text"
    assert resolve(42, JOB) == 42
    assert resolve("{@symbol.whitespace}", JOB) == " "


def test_pipe__errors_name_the_problem() -> None:
    with pytest.raises(PipeError, match="unknown function family"):
        resolve("{@nope.fn}", JOB)
    with pytest.raises(PipeError, match="@math has"):
        resolve({"@pipe": [[1], ["{@math.nope}"]]}, JOB)
    with pytest.raises(PipeError, match="must start with a function"):
        resolve({"@pipe": [[1], ["not a function"]]}, JOB)
    with pytest.raises(PipeError, match=r"\{@string.repeat\} failed"):
        resolve({"@pipe": [["a", -1], ["{@string.repeat}"]]}, JOB)
    with pytest.raises(PipeError, match="non-empty list"):
        resolve({"@pipe": []}, JOB)


def test_to_json_compatible__as_json_stringify_would_keep_it() -> None:
    assert to_json_compatible({"a": UNDEFINED, "b": [UNDEFINED, NAN, 2.0]}) == {
        "b": [None, None, 2]
    }


# -- @date and @cron ------------------------------------------------------------------------

NOON = "2024-01-31T12:34:56.789Z"
NOON_MS = 1706704496789


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run a test in a given local time zone (JavaScript's local-time functions follow it)."""

    def use(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


def test_date__inputs_parsing_and_utc_fields() -> None:
    check(
        [
            ("date.getTime", (NOON,), NOON_MS),
            ("date.getTime", (str(NOON_MS),), NOON_MS),
            ("date.getTime", (NOON_MS,), NOON_MS),
            ("date.parse", ("2024-01-31",), 1706659200000),
            ("date.parse", ("2024-01-31T12:00:00+02:00",), 1706695200000),
            ("date.parse", ("Wed, 31 Jan 2024 12:00:00 GMT",), 1706702400000),
            ("date.parse", ("tomorrow",), NAN),
            ("date.getUTCFullYear", (NOON,), 2024),
            ("date.getUTCMonth", (NOON,), 0),
            ("date.getUTCDate", (NOON,), 31),
            ("date.getUTCDay", (NOON,), 3),
            ("date.getUTCHours", (NOON,), 12),
            ("date.getUTCMinutes", (NOON,), 34),
            ("date.getUTCSeconds", (NOON,), 56),
            ("date.getUTCMilliseconds", (NOON,), 789),
            ("date.valueOf", (NOON,), NOON_MS),
            ("date.UTC", (2024, 0, 31), 1706659200000),
            ("date.UTC", (99, 11, 31), 946598400000),
            ("date.UTC", (2024, 12, 1), 1735689600000),
            ("date.toISOString", (NOON_MS,), NOON),
            ("date.toISOXString", (NOON,), "20240131123456.789"),
            ("date.toJSON", (NOON_MS,), NOON),
        ]
    )
    assert math.isnan(call("date.getUTCDate", call("date.fromISOString", "not a date")))
    assert call("date.toJSON", call("date.fromISOString", "nope")) is None
    with pytest.raises(ValueError, match="Invalid date format"):
        call("date.getTime", "next tuesday")
    assert abs(call("date.now") - time.time() * 1000) < 60_000


def test_date__utc_setters_overflow_like_javascript() -> None:
    check(
        [
            ("date.setUTCMonth", (NOON, 12), 1738326896789),  # December + 1 -> January 2025
            ("date.setUTCDate", ("2024-03-15", 0), 1709164800000),  # day 0 -> Feb 29
            ("date.setUTCHours", ("2024-01-31", 25), 1706749200000),  # next day, 01:00
            ("date.setUTCMinutes", ("2024-01-31", 90, 30), 1706664630000),
            ("date.setUTCSeconds", ("2024-01-31", 61), 1706659261000),
            ("date.setUTCMilliseconds", ("2024-01-31", 1500), 1706659201500),
            ("date.setUTCFullYear", ("2024-02-29", 2023), 1677628800000),  # Feb 29 2023 -> Mar 1
            ("date.setTime", (NOON, 0), 0),
        ]
    )
    date = call("date.fromISOString", NOON)
    call("date.setUTCDate", date, 1)
    assert call("date.toISOString", date) == "2024-01-01T12:34:56.789Z", (
        "setters change the Date given"
    )


def test_date__local_time_follows_the_process_time_zone(zone: Any) -> None:
    zone("America/New_York")
    check(
        [
            ("date.getHours", (NOON,), 7),
            ("date.getTimezoneOffset", (NOON,), 300),
            ("date.getTimezoneOffset", ("2024-07-01",), 240),
            ("date.getDate", ("2024-01-31T02:00:00Z",), 30),
            ("date.getDay", ("2024-01-31T02:00:00Z",), 2),
            ("date.getMonth", (NOON,), 0),
            ("date.getFullYear", ("2024-01-01T01:00:00Z",), 2023),
            ("date.getMinutes", (NOON,), 34),
            ("date.getSeconds", (NOON,), 56),
            ("date.getMilliseconds", (NOON,), 789),
            ("date.setHours", (NOON, 0), 1706679296789),  # 00:34:56.789 local = 05:34:56.789Z
            ("date.setDate", (NOON, 1), 1704112496789),
            ("date.setMonth", (NOON, 1, 1), 1706790896789),
            ("date.setFullYear", (NOON, 2023), 1675168496789),
            ("date.setMinutes", (NOON, 0), 1706702456789),
            ("date.setSeconds", (NOON, 0), 1706704440789),
            ("date.setMilliseconds", (NOON, 0), 1706704496000),
            ("date.toDateString", (NOON,), "Wed Jan 31 2024"),
            ("date.toLocaleDateString", (NOON,), "1/31/2024"),
            ("date.toLocaleTimeString", (NOON,), "7:34:56 AM"),
            ("date.toLocaleString", (NOON,), "1/31/2024, 7:34:56 AM"),
            ("date.parse", ("2024-01-31T07:00:00",), 1706702400000),  # no offset: local time
        ]
    )
    assert call("date.toString", NOON).startswith("Wed Jan 31 2024 07:34:56 GMT-0500")


def test_date__utc_process(zone: Any) -> None:
    zone("UTC")
    assert (
        call("date.toString", NOON)
        == "Wed Jan 31 2024 12:34:56 GMT+0000 (Coordinated Universal Time)"
    )
    assert call("date.toLocaleTimeString", NOON) == "12:34:56 PM"


def test_dates__in_json_comparisons_and_arithmetic() -> None:
    date = call("date.fromISOString", NOON)
    assert call("json.stringify", {"at": date}) == '{"at":"2024-01-31T12:34:56.789Z"}'
    assert to_number(date) == NOON_MS
    assert call("conditional.less_than", call("date.fromISOString", "2020-01-01"), date) is True
    assert call("math.subtract", date, NOON_MS - 1000) == 1000


def test_cron__next_delay_in_utc() -> None:
    from datetime import UTC, datetime

    from mesh.model.pipe.dates import next_delay

    wednesday = datetime(2024, 1, 31, 12, 0, 0, tzinfo=UTC)
    assert next_delay("0 0 * * *", wednesday) == 12 * 3600
    assert next_delay("30 12 * * *", wednesday) == 1800
    assert next_delay("0 12 * * 1", wednesday) == 5 * 86400  # next Monday
    assert next_delay("0 0 1 3 *", wednesday) == 29 * 86400 + 12 * 3600  # March 1st (leap year)
    assert (
        next_delay("* * * * *", datetime(2024, 1, 31, 12, 0, 58, tzinfo=UTC)) == 5
    )  # at least 5 s
    assert next_delay(None) == -1
    with pytest.raises(ValueError, match="Invalid cron expression"):
        next_delay("every tuesday")
    assert call("cron.nextDelay", "* * * * *") >= 5
