"""What the ``@pipe`` tests share: calling a function by name, and checking a table of
calls against the values JavaScript gives."""

from __future__ import annotations

import math
from typing import Any

from mesh.model.pipe import (
    function_named,
)

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
