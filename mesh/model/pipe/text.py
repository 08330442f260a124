"""``@string`` and ``@json`` (HotMesh ``services/pipe/functions/string.ts``, ``json.ts``)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from mesh.model.pipe.js import (
    JS_WHITESPACE,
    UNDEFINED,
    is_nullish,
    is_number,
    js_number,
    number_to_string,
    own_keys,
    relative_index,
    to_integer,
    to_number,
    to_string,
    truthy,
)
from mesh.model.pipe.jsdate import JSDate, iso_string


def _text(value: Any, function: str) -> str:
    if is_nullish(value):
        raise TypeError(f"@string.{function} needs a string, not {to_string(value)}")
    return to_string(value)


def _clamped(value: Any, length: int, default: int) -> int:
    return default if value is UNDEFINED else int(min(max(to_integer(value), 0), length))


def split(text: Any = UNDEFINED, separator: Any = UNDEFINED) -> list[str]:
    source = _text(text, "split")
    if separator is UNDEFINED:
        return [source]
    glue = to_string(separator)
    return list(source) if glue == "" else source.split(glue)


def char_at(text: Any = UNDEFINED, index: Any = UNDEFINED) -> str:
    source = _text(text, "charAt")
    position = to_integer(index)
    return source[int(position)] if 0 <= position < len(source) else ""


def concat(*parts: Any) -> str:
    return "".join("" if is_nullish(part) else to_string(part) for part in parts)


def includes(text: Any = UNDEFINED, search: Any = UNDEFINED, position: Any = UNDEFINED) -> bool:
    source = _text(text, "includes")
    return to_string(search) in source[_clamped(position, len(source), 0) :]


def index_of(text: Any = UNDEFINED, search: Any = UNDEFINED, start: Any = UNDEFINED) -> int:
    source = _text(text, "indexOf")
    return source.find(to_string(search), _clamped(start, len(source), 0))


def last_index_of(text: Any = UNDEFINED, search: Any = UNDEFINED, start: Any = UNDEFINED) -> int:
    source, needle = _text(text, "lastIndexOf"), to_string(search)
    number = math.inf if math.isnan(to_number(start)) else to_integer(start)
    begin = int(min(max(number, 0), len(source))) if not math.isinf(number) else len(source)
    return source.rfind(needle, 0, begin + len(needle))


def slice_text(text: Any = UNDEFINED, start: Any = UNDEFINED, end: Any = UNDEFINED) -> str:
    source = _text(text, "slice")
    return source[
        relative_index(len(source), start, 0) : relative_index(len(source), end, len(source))
    ]


def substring(text: Any = UNDEFINED, start: Any = UNDEFINED, end: Any = UNDEFINED) -> str:
    source = _text(text, "substring")
    begin, finish = _clamped(start, len(source), 0), _clamped(end, len(source), len(source))
    return source[min(begin, finish) : max(begin, finish)]


def _pad(text: Any, length: Any, filler: Any, at_start: bool, name: str) -> str:
    source = _text(text, name)
    target = int(to_integer(length))
    fill = " " if filler is UNDEFINED else to_string(filler)
    if target <= len(source) or fill == "":
        return source
    padding = (fill * (target // len(fill) + 1))[: target - len(source)]
    return padding + source if at_start else source + padding


_SUBSTITUTION = re.compile(r"\$([$&`'])")


def replace(text: Any = UNDEFINED, search: Any = UNDEFINED, replacement: Any = UNDEFINED) -> str:
    """Replace the first occurrence of ``search`` (a string, as in JavaScript); ``$&``,
    ``$```, ``$'`` and ``$$`` in ``replacement`` work as there."""
    source, needle = _text(text, "replace"), to_string(search)
    position = source.find(needle)
    if position < 0:
        return source
    after = position + len(needle)
    pieces = {"$": "$", "&": needle, "`": source[:position], "'": source[after:]}
    insert = _SUBSTITUTION.sub(lambda m: pieces[m.group(1)], to_string(replacement))
    return source[:position] + insert + source[after:]


def search(text: Any = UNDEFINED, pattern: Any = UNDEFINED) -> int:
    """Index of the first match of ``pattern`` (a regular expression source), or -1."""
    source = _text(text, "search")
    expression = "(?:)" if pattern is UNDEFINED else to_string(pattern)
    try:
        match = re.search(expression, source)
    except re.error as error:
        raise ValueError(
            f"@string.search: invalid regular expression {expression!r}: {error}"
        ) from error
    return match.start() if match else -1


def starts_with(text: Any = UNDEFINED, search: Any = UNDEFINED, position: Any = UNDEFINED) -> bool:
    source = _text(text, "startsWith")
    return source.startswith(to_string(search), _clamped(position, len(source), 0))


def ends_with(text: Any = UNDEFINED, search: Any = UNDEFINED, length: Any = UNDEFINED) -> bool:
    source = _text(text, "endsWith")
    return source[: _clamped(length, len(source), len(source))].endswith(to_string(search))


def repeat(text: Any = UNDEFINED, count: Any = UNDEFINED) -> str:
    times = to_integer(count)
    if times < 0 or math.isinf(times):
        raise ValueError("Invalid repeat count. Must be a positive finite number.")
    return _text(text, "repeat") * int(times)


STRING: dict[str, Callable[..., Any]] = {
    "split": split,
    "charAt": char_at,
    "concat": concat,
    "includes": includes,
    "indexOf": index_of,
    "lastIndexOf": last_index_of,
    "slice": slice_text,
    "toLowerCase": lambda text=UNDEFINED: _text(text, "toLowerCase").lower(),
    "toUpperCase": lambda text=UNDEFINED: _text(text, "toUpperCase").upper(),
    "trim": lambda text=UNDEFINED: _text(text, "trim").strip(JS_WHITESPACE),
    "trimStart": lambda text=UNDEFINED: _text(text, "trimStart").lstrip(JS_WHITESPACE),
    "trimEnd": lambda text=UNDEFINED: _text(text, "trimEnd").rstrip(JS_WHITESPACE),
    "padStart": lambda text=UNDEFINED, length=UNDEFINED, fill=UNDEFINED: _pad(
        text, length, fill, True, "padStart"
    ),
    "padEnd": lambda text=UNDEFINED, length=UNDEFINED, fill=UNDEFINED: _pad(
        text, length, fill, False, "padEnd"
    ),
    "replace": replace,
    "search": search,
    "substring": substring,
    "startsWith": starts_with,
    "endsWith": ends_with,
    "repeat": repeat,
}


# -- @json --------------------------------------------------------------------------------


def to_json_compatible(value: Any, in_array: bool = False) -> Any:
    """What JSON.stringify would keep: undefined dropped from objects (null in arrays),
    NaN and Infinity as null, integral numbers without a fraction."""
    if value is UNDEFINED:
        return None if in_array else UNDEFINED
    if isinstance(value, JSDate):
        return iso_string(value) if value.valid else None  # Date.prototype.toJSON
    if is_number(value) and not isinstance(value, bool):
        return js_number(float(value)) if math.isfinite(value) else None
    if isinstance(value, list):
        return [to_json_compatible(item, True) for item in value]
    if isinstance(value, dict):
        return {
            key: converted
            for key in own_keys(value)
            if (converted := to_json_compatible(value[key])) is not UNDEFINED
        }
    return value


def stringify(value: Any = UNDEFINED, replacer: Any = UNDEFINED, space: Any = UNDEFINED) -> Any:
    """JSON.stringify (without replacer functions): undefined for undefined, compact by
    default, ``space`` a count (at most 10) or a string indent."""
    data = to_json_compatible(value)
    if data is UNDEFINED:
        return UNDEFINED
    indent: str | None = None
    if is_number(space) and truthy(space):
        indent = " " * min(int(space), 10)
    elif isinstance(space, str) and space:
        indent = space[:10]
    if indent is None:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return json.dumps(data, ensure_ascii=False, indent=indent, allow_nan=False)


def parse(text: Any = UNDEFINED, reviver: Any = UNDEFINED) -> Any:
    try:
        return json.loads(to_string(text), parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"@json.parse: {error}") from error


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


JSON: dict[str, Callable[..., Any]] = {"stringify": stringify, "parse": parse}
__all__ = ["JSON", "STRING", "number_to_string", "to_json_compatible"]
