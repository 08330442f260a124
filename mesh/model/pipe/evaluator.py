"""The ``@pipe`` evaluator: HotMesh's data-mapping language (``services/pipe/index.ts``).

A pipe is a list of rows. Row 0's cells are resolved to values (literals, ``{a.b.c}``
references into the job's data, nullary functions such as ``{@date.now}``, context
variables). Each later row names a function in its first cell; the function is applied to
the previous row's values and its result, followed by the row's other resolved cells, feeds
the next row. ``{"@pipe": [...]}`` rows run as independent sub-pipes whose results become the
next row's arguments (fan-out, fan-in); ``{"@reduce": [...]}`` folds the previous row's
``[collection, initial]`` with ``$item``, ``$key``, ``$index``, ``$input`` and ``$output`` in
scope. The result is the first cell of the last row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mesh.errors import PipeError
from mesh.model.pipe.containers import ARRAY, OBJECT
from mesh.model.pipe.dates import CRON, DATE
from mesh.model.pipe.js import UNDEFINED, member
from mesh.model.pipe.logic import BITWISE, CONDITIONAL, LOGICAL, SYMBOL, UNARY
from mesh.model.pipe.numbers import MATH, NUMBER
from mesh.model.pipe.text import JSON, STRING

FUNCTIONS: dict[str, dict[str, Callable[..., Any]]] = {
    "array": ARRAY,
    "bitwise": BITWISE,
    "conditional": CONDITIONAL,
    "cron": CRON,
    "date": DATE,
    "json": JSON,
    "logical": LOGICAL,
    "math": MATH,
    "number": NUMBER,
    "object": OBJECT,
    "string": STRING,
    "symbol": SYMBOL,
    "unary": UNARY,
}
CONTEXT_VARIABLES = frozenset({"{$input}", "{$output}", "{$item}", "{$key}", "{$index}"})


def function_named(cell: str) -> Callable[..., Any]:
    """The function a ``{@family.name}`` cell names; :class:`PipeError` if there is none."""
    family, _, name = cell[2:-1].partition(".")
    functions = FUNCTIONS.get(family)
    if functions is None:
        raise PipeError(
            f"unknown function family in {cell!r}: use one of {', '.join(sorted(FUNCTIONS))}"
        )
    if name not in functions:
        raise PipeError(f"unknown function {cell!r}: @{family} has {', '.join(sorted(functions))}")
    return functions[name]


def is_function_cell(cell: Any) -> bool:
    return isinstance(cell, str) and cell.startswith("{@") and cell.endswith("}")


def resolve(unresolved: Any, data: Mapping[str, Any]) -> Any:
    """Resolve a mapping value: a ``{"@pipe": rows}`` object, or a single cell."""
    if isinstance(unresolved, dict) and "@pipe" in unresolved:
        return Pipe(unresolved["@pipe"], data).process()
    return Pipe([[unresolved]], data).process()


def nested(data: Any, path: str) -> Any:
    """``a.b.c`` inside ``data``; undefined where any step is missing."""
    current = data
    for part in path.split("."):
        if not isinstance(current, dict | list) or (
            isinstance(current, dict) and part not in current
        ):
            return UNDEFINED
        current = member(current, part)
        if current is UNDEFINED:
            return UNDEFINED
    return current


class Pipe:
    def __init__(
        self, rules: Any, data: Mapping[str, Any], context: dict[str, Any] | None = None
    ) -> None:
        if not isinstance(rules, list) or not rules:
            raise PipeError(f"a @pipe is a non-empty list of rows, not {rules!r}")
        self.rules = rules
        self.data = data
        self.context = context or {}

    def process(self, resolved: list[Any] | None = None) -> Any:
        index = 0
        if resolved is None and not _is_special(self.rules[0]):
            resolved = self.cells(self.rules[0])
            index = 1
        queue: list[Any] = []
        for row in self.rules[index:]:
            resolved = self.row(row, resolved, queue)
        if not resolved:
            raise PipeError("the @pipe produced no value: its last row is empty")
        return resolved[0]

    def reduce(self, arguments: list[Any]) -> list[Any]:
        collection = arguments[0] if arguments else UNDEFINED
        accumulated = arguments[1] if len(arguments) > 1 else None
        if accumulated is UNDEFINED:
            accumulated = None
        if isinstance(collection, list):
            items: list[tuple[str, Any]] = [(str(i), item) for i, item in enumerate(collection)]
        elif isinstance(collection, dict):
            items = list(collection.items())
        else:
            items = []
        for index, (key, item) in enumerate(items):
            self.context = {
                "$input": collection,
                "$output": accumulated,
                "$item": item,
                "$key": key,
                "$index": index,
            }
            accumulated = self.process([accumulated])
        return [accumulated]

    def row(self, row: Any, prior: list[Any] | None, queue: list[Any]) -> list[Any]:
        if isinstance(row, dict) and "@reduce" in row and prior is not None:
            return Pipe(row["@reduce"], self.data).reduce(prior)
        if isinstance(row, dict) and "@pipe" in row:
            queue.append(Pipe(row["@pipe"], self.data, self.context).process())
            return prior or []
        if not isinstance(row, list):
            raise PipeError(
                f"a @pipe row is a list of cells, {{'@pipe': ...}} or {{'@reduce': ...}}, not {row!r}"
            )
        if queue:
            prior = list(queue)
            queue.clear()
        if prior is None:
            return self.cells(row)
        if not row:
            raise PipeError("a @pipe row after the first must start with a function")
        head, *rest = row
        if isinstance(head, str) and head in CONTEXT_VARIABLES:
            value = self.context_value(head)
        elif is_function_cell(head):
            value = _call(head, prior)
        else:
            raise PipeError(f"a @pipe row after the first must start with a function, not {head!r}")
        return [value, *self.cells(rest)]

    def cells(self, cells: list[Any]) -> list[Any]:
        return [self.cell(cell) for cell in cells]

    def cell(self, cell: Any) -> Any:
        if is_function_cell(cell):
            return _call(cell, [])
        if isinstance(cell, str) and cell in CONTEXT_VARIABLES:
            return self.context_value(cell)
        if isinstance(cell, str) and cell.startswith("{") and cell.endswith("}"):
            return nested(self.data, cell[1:-1])
        return cell

    def context_value(self, cell: str) -> Any:
        return self.context.get(cell[1:-1], UNDEFINED)


def _is_special(row: Any) -> bool:
    return isinstance(row, dict) and ("@pipe" in row or "@reduce" in row)


def _call(cell: str, arguments: list[Any]) -> Any:
    function = function_named(cell)
    try:
        return function(*arguments)
    except PipeError:
        raise
    except (TypeError, ValueError, OverflowError, ZeroDivisionError) as error:
        raise PipeError(f"{cell} failed: {error}") from error
