"""``@pipe`` functions: JavaScript's value semantics and a table per function family,
expected values as JavaScript gives them (node: ``Math.round(-2.5)`` is -2, ``"5" > 10`` is
false, and so on)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from mesh.model.pipe import (
    FUNCTIONS,
    UNDEFINED,
    JSDate,
)
from mesh.model.pipe.js import loose_equals, number_to_string, strict_equals, to_number, to_string
from tests.unit.pipe_tables import INF, NAN, call, check, same

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
