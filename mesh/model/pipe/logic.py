"""``@conditional``, ``@logical``, ``@unary``, ``@bitwise`` and ``@symbol``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mesh.model.pipe.js import (
    INF,
    NAN,
    UNDEFINED,
    compare,
    is_nullish,
    js_number,
    loose_equals,
    strict_equals,
    to_int32,
    to_number,
    to_uint32,
    truthy,
)
from mesh.model.pipe.jsdate import JSDate

A = UNDEFINED  # default for every missing argument: JavaScript passes undefined

CONDITIONAL: dict[str, Callable[..., Any]] = {
    "ternary": lambda condition=A, yes=A, no=A: yes if truthy(condition) else no,
    "equality": lambda a=A, b=A: loose_equals(a, b),
    "strict_equality": lambda a=A, b=A: strict_equals(a, b),
    "inequality": lambda a=A, b=A: not loose_equals(a, b),
    "strict_inequality": lambda a=A, b=A: not strict_equals(a, b),
    "greater_than": lambda a=A, b=A: compare(a, b, ">"),
    "less_than": lambda a=A, b=A: compare(a, b, "<"),
    "greater_than_or_equal": lambda a=A, b=A: compare(a, b, ">="),
    "less_than_or_equal": lambda a=A, b=A: compare(a, b, "<="),
    "nullish": lambda a=A, b=A: b if is_nullish(a) else a,
    # Short aliases (a mesh addition; the order example uses @conditional.gte).
    "gte": lambda a=A, b=A: compare(a, b, ">="),
    "gt": lambda a=A, b=A: compare(a, b, ">"),
    "lte": lambda a=A, b=A: compare(a, b, "<="),
    "lt": lambda a=A, b=A: compare(a, b, "<"),
}

LOGICAL: dict[str, Callable[..., Any]] = {
    "and": lambda a=A, b=A: b if truthy(a) else a,
    "or": lambda a=A, b=A: a if truthy(a) else b,
}

UNARY: dict[str, Callable[..., Any]] = {
    "not": lambda value=A: not truthy(value),
    "positive": lambda value=A: js_number(to_number(value)),
    "negative": lambda value=A: js_number(-to_number(value)),
    "bitwise_not": lambda value=A: ~to_int32(value),
}


def _int32(value: int) -> int:
    value %= 2**32
    return value - 2**32 if value >= 2**31 else value


BITWISE: dict[str, Callable[..., Any]] = {
    "and": lambda a=A, b=A: to_int32(a) & to_int32(b),
    "or": lambda a=A, b=A: to_int32(a) | to_int32(b),
    "xor": lambda a=A, b=A: to_int32(a) ^ to_int32(b),
    "leftShift": lambda a=A, b=A: _int32(to_int32(a) << (to_uint32(b) & 31)),
    "rightShift": lambda a=A, b=A: to_int32(a) >> (to_uint32(b) & 31),
    "unsignedRightShift": lambda a=A, b=A: to_uint32(a) >> (to_uint32(b) & 31),
}

SYMBOL: dict[str, Callable[..., Any]] = {
    "null": lambda *_: None,
    "undefined": lambda *_: UNDEFINED,
    "whitespace": lambda *_: " ",
    "object": lambda *_: {},
    "array": lambda *_: [],
    "posInfinity": lambda *_: INF,
    "negInfinity": lambda *_: -INF,
    "NaN": lambda *_: NAN,
    "date": lambda *_: JSDate(time.time() * 1000),
}
