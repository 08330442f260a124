"""``@pipe``: the evaluator and a table per function family, expected values as JavaScript
gives them (node: ``Math.round(-2.5)`` is -2, ``"5" > 10`` is false, and so on)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from mesh.model.pipe import (
    FUNCTIONS,
    UNDEFINED,
    JSDate,
    PipeError,
    function_named,
    resolve,
    to_json_compatible,
)
from mesh.model.pipe.js import loose_equals, number_to_string, strict_equals, to_number, to_string

NAN = float("nan")
INF = float("inf")


def call(name: str, *args: Any) -> Any:
    return function_named("{@" + name + "}")(*args)


def same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    return (
        type(actual) is type(expected) and actual == expected
        if not isinstance(expected, list | dict)
        else actual == expected
    )


def check(table: list[tuple[str, tuple[Any, ...], Any]]) -> None:
    for name, args, expected in table:
        actual = call(name, *args)
        assert same(actual, expected), (
            f"@{name}{args!r}: got {actual!r}, JavaScript gives {expected!r}"
        )


# -- JavaScript value semantics -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("", 0.0),
        (" 42 ", 42.0),
        ("0x1A", 26.0),
        ("1e3", 1000.0),
        ("abc", NAN),
        (None, 0.0),
        (UNDEFINED, NAN),
        (True, 1.0),
        ([], 0.0),
        ([7], 7.0),
        ([1, 2], NAN),
        ({}, NAN),
        ("Infinity", INF),
        (".5", 0.5),
    ],
)
def test_to_number(value: Any, number: float) -> None:
    assert same(to_number(value), number)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (123e-20, "1.23e-18"),
        (1e-6, "0.000001"),
        (NAN, "NaN"),
        (-INF, "-Infinity"),
        (-0.0, "0"),
        ([1, None, "a"], "1,,a"),
        ({"a": 1}, "[object Object]"),
        (None, "null"),
    ],
)
def test_to_string(value: Any, text: str) -> None:
    assert to_string(value) == text


def test_equality__loose_and_strict() -> None:
    assert loose_equals(None, UNDEFINED) and not strict_equals(None, UNDEFINED)
    assert (
        loose_equals("1", 1)
        and loose_equals(True, 1)
        and loose_equals([5], 5)
        and loose_equals("", 0)
    )
    assert not loose_equals(NAN, NAN) and not loose_equals(None, 0) and not loose_equals({}, {})
    assert strict_equals(1, 1.0) and not strict_equals("1", 1) and not strict_equals([], [])
    assert number_to_string(2**53) == "9007199254740992"


# -- function families ----------------------------------------------------------------------


def test_every_family_is_registered() -> None:
    assert sorted(FUNCTIONS) == [
        "array",
        "bitwise",
        "conditional",
        "cron",
        "date",
        "json",
        "logical",
        "math",
        "number",
        "object",
        "string",
        "symbol",
        "unary",
    ]
    assert sum(len(family) for family in FUNCTIONS.values()) == 201


def test_array() -> None:
    check(
        [
            ("array.get", ([10, 20, 30], 1), 20),
            ("array.get", ([10, 20], UNDEFINED), 10),
            ("array.get", ([10, 20], -1), UNDEFINED),
            ("array.get", (None, 0), UNDEFINED),
            ("array.length", ([1, 2, 3],), 3),
            ("array.length", ("abcd",), 4),
            ("array.length", (None,), UNDEFINED),
            ("array.concat", ([1], [2, 3]), [1, 2, 3]),
            ("array.concat", ([1], 2), [1, 2]),
            ("array.indexOf", ([1, "1", 1], 1, 1), 2),
            ("array.indexOf", ([1, 2], "1"), -1),
            ("array.lastIndexOf", ([1, 2, 1, 2], 1), 2),
            ("array.lastIndexOf", ([1, 2, 1, 2], 1, -3), 0),
            ("array.join", ([1, None, "x"],), "1,,x"),
            ("array.join", ([1, 2], "-"), "1-2"),
            ("array.pop", ([1, 2],), 2),
            ("array.pop", ([],), UNDEFINED),
            ("array.push", ([1], 2, 3), [1, 2, 3]),
            ("array.reverse", ([1, 2, 3],), [3, 2, 1]),
            ("array.shift", ([1, 2],), 1),
            ("array.slice", ([1, 2, 3, 4], 1, -1), [2, 3]),
            ("array.slice", ([1, 2, 3], -2), [2, 3]),
            ("array.sort", ([3, None, 1, 2],), [None, 1, 2, 3]),
            ("array.sort", (["b", "a", "c"], "DESCENDING"), ["c", "b", "a"]),
            ("array.sort", ([10, 9, 1],), [1, 9, 10]),
            ("array.splice", ([1, 2, 3, 4], 1, 2, "x"), [2, 3]),
            ("array.splice", ([1, 2, 3], 1), []),
            ("array.unshift", ([3], 1, 2), 3),
        ]
    )
    spliced = [1, 2, 3, 4]
    call("array.splice", spliced, -2, 1, "y", "z")
    assert spliced == [1, 2, "y", "z", 4]


def test_bitwise() -> None:
    check(
        [
            ("bitwise.and", (5, 3), 1),
            ("bitwise.or", (5, 3), 7),
            ("bitwise.xor", (5, 3), 6),
            ("bitwise.leftShift", (1, 31), -2147483648),
            ("bitwise.rightShift", (-16, 2), -4),
            ("bitwise.unsignedRightShift", (-1, 28), 15),
            ("bitwise.and", (2**32 + 5, "3"), 1),
        ]
    )


def test_conditional() -> None:
    check(
        [
            ("conditional.ternary", (0, "yes", "no"), "no"),
            ("conditional.ternary", ([], "yes", "no"), "yes"),
            ("conditional.equality", ("1", 1), True),
            ("conditional.equality", (None, UNDEFINED), True),
            ("conditional.strict_equality", ("1", 1), False),
            ("conditional.inequality", (0, ""), False),
            ("conditional.strict_inequality", (0, ""), True),
            ("conditional.greater_than", ("5", 10), False),
            ("conditional.greater_than", ("b", "a"), True),
            ("conditional.greater_than", ("10", "9"), False),
            ("conditional.less_than", (None, 1), True),
            ("conditional.less_than", (UNDEFINED, 1), False),
            ("conditional.greater_than_or_equal", (5, 3), True),
            ("conditional.less_than_or_equal", (NAN, NAN), False),
            ("conditional.nullish", (None, "default"), "default"),
            ("conditional.nullish", (0, "default"), 0),
        ]
    )


def test_json() -> None:
    check(
        [
            (
                "json.stringify",
                ({"a": [1, UNDEFINED, NAN], "b": UNDEFINED, "c": 2.0},),
                '{"a":[1,null,null],"c":2}',
            ),
            ("json.stringify", ("é",), '"é"'),
            ("json.stringify", ({"z": 1, "1": 2},), '{"1":2,"z":1}'),
            ("json.stringify", (UNDEFINED,), UNDEFINED),
            ("json.stringify", ({"a": 1}, None, 2), '{\n  "a": 1\n}'),
            ("json.parse", ('{"a": [1, 2.5]}',), {"a": [1, 2.5]}),
        ]
    )
    with pytest.raises(ValueError, match=r"@json\.parse"):
        call("json.parse", "{nope")
    with pytest.raises(ValueError):
        call("json.parse", "NaN")


def test_logical_and_unary() -> None:
    check(
        [
            ("logical.and", (1, "x"), "x"),
            ("logical.and", (0, "x"), 0),
            ("logical.or", ("", "fallback"), "fallback"),
            ("logical.or", ("set", "fallback"), "set"),
            ("unary.not", ([],), False),
            ("unary.not", ("",), True),
            ("unary.positive", ("42",), 42),
            ("unary.negative", ("3.5",), -3.5),
            ("unary.bitwise_not", (5,), -6),
        ]
    )
    assert math.isnan(call("unary.positive", "x"))


def test_math() -> None:
    check(
        [
            ("math.add", (1, 2, [3, 4]), 10),
            ("math.add", (1, "2"), "12"),
            ("math.subtract", (10, 3, 2), 5),
            ("math.subtract", ([10, 3],), 7),
            ("math.multiply", (2, [3, 4]), 24),
            ("math.divide", (10, 4), 2.5),
            ("math.divide", (10, 0), NAN),
            ("math.divide", (10, "0"), INF),
            ("math.divide", (-10, "0"), -INF),
            ("math.divide", ([100, 10], 2), 5),
            ("math.abs", (-3,), 3),
            ("math.acos", (2,), NAN),
            ("math.atanh", (1,), INF),
            ("math.cbrt", (-27,), -3),
            ("math.cbrt", (64,), 4),
            ("math.ceil", (1.2,), 2),
            ("math.floor", (-1.2,), -2),
            ("math.clz32", (1,), 31),
            ("math.exp", (0,), 1),
            ("math.fround", (5.5,), 5.5),
            ("math.hypot", (3, 4), 5),
            ("math.imul", (0xFFFFFFFF, 5), -5),
            ("math.log", (0,), -INF),
            ("math.log", (-1,), NAN),
            ("math.log2", (8,), 3),
            ("math.max", (1, "3", 2), 3),
            ("math.max", (), -INF),
            ("math.min", (1, NAN), NAN),
            ("math.pow", (2, 10), 1024),
            ("math.pow", (NAN, 0), 1),
            ("math.pow", (1, INF), NAN),
            ("math.pow", (-8, 1 / 3), NAN),
            ("math.round", (2.5,), 3),
            ("math.round", (-2.5,), -2),
            ("math.round", (-2.6,), -3),
            ("math.sign", (-7,), -1),
            ("math.sqrt", (-1,), NAN),
            ("math.trunc", (-4.7,), -4),
        ]
    )
    assert 0 <= call("math.random") < 1
    with pytest.raises(ValueError):
        call("math.subtract")


def test_number() -> None:
    check(
        [
            ("number.isFinite", ("5",), False),
            ("number.isFinite", (5,), True),
            ("number.isEven", ("4",), True),
            ("number.isOdd", (-3,), True),
            ("number.isEven", ("x",), False),
            ("number.isInteger", (5.0,), True),
            ("number.isInteger", (5.5,), False),
            ("number.isNaN", ("x",), False),
            ("number.isNaN", (NAN,), True),
            ("number.parseFloat", ("3.14abc",), 3.14),
            ("number.parseFloat", ("  -1e3x",), -1000),
            ("number.parseFloat", ("abc",), NAN),
            ("number.parseInt", ("42px",), 42),
            ("number.parseInt", ("0x1F",), 31),
            ("number.parseInt", ("ff", 16), 255),
            ("number.parseInt", ("-12.9",), -12),
            ("number.parseInt", ("z",), NAN),
            ("number.parseInt", ("10", 1), NAN),
            ("number.toFixed", (2.5,), "3"),
            ("number.toFixed", (1.005, 2), "1.00"),
            ("number.toFixed", (1.45, 1), "1.4"),
            ("number.toFixed", (-1.5,), "-2"),
            ("number.toFixed", (-0.0001, 2), "-0.00"),
            ("number.toFixed", (123.456, 1), "123.5"),
            ("number.toExponential", (123456, 2), "1.23e+5"),
            ("number.toExponential", (0.00015,), "1.5e-4"),
            ("number.toPrecision", (123.456, 4), "123.5"),
            ("number.toPrecision", (0.000123, 2), "0.00012"),
            ("number.toPrecision", (123456, 2), "1.2e+5"),
            ("number.toPrecision", (1.5,), "1.5"),
            ("number.gte", (3, "3"), True),
            ("number.lt", ("a", 1), False),
            ("number.max", (1, 5), 5),
            ("number.min", (1, 5), 1),
            ("number.pow", (3, 2), 9),
            ("number.round", (0.5,), 1),
            ("number.add", (1, 2), 3),
            ("number.divide", (1, 0), NAN),
        ]
    )


def test_object() -> None:
    check(
        [
            ("object.get", ({"a": 1}, "a"), 1),
            ("object.get", ({"a": 1}, "b"), UNDEFINED),
            ("object.get", (None, "a"), UNDEFINED),
            ("object.set", (None, "a", 1), {"a": 1}),
            ("object.create", ("a", 1, "b", 2), {"a": 1, "b": 2}),
            ("object.create", (), {}),
            ("object.keys", ({"x": 1, "y": 2},), ["x", "y"]),
            ("object.keys", ([7, 8],), ["0", "1"]),
            ("object.keys", (None,), []),
            ("object.values", ({"x": 1, "y": 2},), [1, 2]),
            ("object.entries", ({"x": 1},), [["x", 1]]),
            ("object.fromEntries", ([["a", 1], [2, "b"]],), {"a": 1, "2": "b"}),
            (
                "object.keys",
                ({"b": 1, "10": 2, "a": 3, "2": 4, "01": 5},),
                ["2", "10", "b", "a", "01"],
            ),
            ("object.assign", ({"a": 1}, {"b": 2}, None, {"a": 3}), {"a": 3, "b": 2}),
            ("object.assign", (None, {"b": 2}), {"b": 2}),
            ("object.getOwnPropertyNames", ([1],), ["0", "length"]),
            ("object.getOwnPropertySymbols", ({"a": 1},), []),
            (
                "object.getOwnPropertyDescriptor",
                ({"a": 1}, "a"),
                {"value": 1, "writable": True, "enumerable": True, "configurable": True},
            ),
            ("object.getOwnPropertyDescriptor", ({"a": 1}, "z"), UNDEFINED),
            ("object.defineProperty", ({}, "a", {"value": 5}), {"a": 5}),
            (
                "object.defineProperties",
                ({}, {"a": {"value": 1}, "b": {"value": 2}}),
                {"a": 1, "b": 2},
            ),
            ("object.freeze", ({"a": 1},), {"a": 1}),
            ("object.isFrozen", ({"a": 1},), False),
            ("object.isFrozen", (3,), True),
            ("object.seal", ([1],), [1]),
            ("object.isSealed", ({},), False),
            ("object.preventExtensions", ({},), {}),
            ("object.isExtensible", ({},), True),
            ("object.hasOwnProperty", ({"a": None}, "a"), True),
            ("object.hasOwnProperty", ([1, 2], "length"), True),
            ("object.isPrototypeOf", ({}, {}), False),
            ("object.propertyIsEnumerable", ({"a": 1}, "a"), True),
        ]
    )
    with pytest.raises(TypeError):
        call("object.hasOwnProperty", None, "a")


def test_string() -> None:
    check(
        [
            ("string.split", ("a,b,,c", ","), ["a", "b", "", "c"]),
            ("string.split", ("abc", ""), ["a", "b", "c"]),
            ("string.split", ("abc", UNDEFINED), ["abc"]),
            ("string.charAt", ("abc", 1), "b"),
            ("string.charAt", ("abc", 5), ""),
            ("string.concat", ("a", 1, None, True), "a1true"),
            ("string.includes", ("hello", "ell"), True),
            ("string.includes", ("hello", "h", 1), False),
            ("string.indexOf", ("banana", "an", 2), 3),
            ("string.lastIndexOf", ("banana", "an"), 3),
            ("string.lastIndexOf", ("banana", "an", 2), 1),
            ("string.slice", ("hello", -3), "llo"),
            ("string.slice", ("hello", 1, -1), "ell"),
            ("string.substring", ("hello", 3, 1), "el"),
            ("string.substring", ("hello", -2, 2), "he"),
            ("string.toLowerCase", ("ÀB",), "àb"),
            ("string.toUpperCase", ("ab",), "AB"),
            ("string.trim", ("\u00a0 x \n",), "x"),
            ("string.trimStart", ("  x ",), "x "),
            ("string.trimEnd", ("  x ",), "  x"),
            ("string.padStart", ("5", 3, "0"), "005"),
            ("string.padEnd", ("ab", 5, "xy"), "abxyx"),
            ("string.padStart", ("abc", 2), "abc"),
            ("string.replace", ("a-b-c", "-", "+"), "a+b-c"),
            ("string.replace", ("price", "price", "$& $$"), "price $"),
            ("string.search", ("order-17", "[0-9]+"), 6),
            ("string.search", ("abc", "z"), -1),
            ("string.startsWith", ("hello", "ell", 1), True),
            ("string.endsWith", ("hello", "ell", 4), True),
            ("string.repeat", ("ab", 3), "ababab"),
        ]
    )
    with pytest.raises(ValueError, match="Invalid repeat count"):
        call("string.repeat", "a", -1)
    with pytest.raises(TypeError):
        call("string.trim", None)


def test_symbol() -> None:
    check(
        [
            ("symbol.null", (), None),
            ("symbol.undefined", (), UNDEFINED),
            ("symbol.whitespace", (), " "),
            ("symbol.object", (), {}),
            ("symbol.array", (), []),
            ("symbol.posInfinity", (), INF),
            ("symbol.negInfinity", (), -INF),
            ("symbol.NaN", (), NAN),
        ]
    )
    now = call("symbol.date")
    assert isinstance(now, JSDate) and abs(now.ms - time.time() * 1000) < 60_000


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
