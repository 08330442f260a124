"""Bounds on what mesh accepts from outside a process: JSON nesting, sizes, text.

Anything decoded from a NOTIFY, a stream row, a command line, a config file or an API call
goes through one of these first, so hostile input is refused with a clear error instead of
exhausting the recursion limit (msgspec, the YAML composer and mesh's own walkers recurse per
nesting level), a thread's memory, or Postgres (which refuses NUL characters and lone
surrogates in ``jsonb`` and ``text`` with a driver error).

The depth scan works on the raw text, before any parser sees it, and costs a few C-speed
passes (a regex that removes string literals, then a byte count); it never decides what is
valid JSON, only that it is not nested past :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import msgspec

from mesh.errors import InvalidPayload

MAX_DEPTH = 100
"""Nesting levels of JSON or YAML data (objects, arrays, mappings, sequences) mesh accepts.
Real documents stay far below it; mesh's walkers and msgspec recurse once per level, and
Python's recursion limit is 1,000."""

MAX_QUORUM_BODY_BYTES = 1 << 20
"""Largest quorum message mesh stores or loads (sent by reference when over NOTIFY's limit)."""

# A string literal, or an unterminated one running to the end (so an unclosed quote cannot
# make the scan quadratic). Both alternatives inside the repeat are disjoint: no backtracking.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def nesting_depth(text: bytes | str) -> int:
    """How deep the arrays and objects of JSON ``text`` nest (an upper bound for invalid JSON).

    Fast when there are few brackets: the depth cannot exceed the number of openers.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    openers = brackets.count(b"[") + brackets.count(b"{")
    if openers <= MAX_DEPTH:
        return openers
    return max(itertools.accumulate(_STEP[b] for b in brackets))


def check_json_text(text: bytes | str, what: str) -> None:
    """Refuse JSON ``text`` nested deeper than :data:`MAX_DEPTH` (before it is parsed)."""
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise InvalidPayload(
            f"{what} nests {depth} levels deep; mesh accepts at most {MAX_DEPTH}: flatten it"
        )


def check_value(value: Any, what: str) -> None:
    """Refuse a JSON-like value mesh could not store or walk safely.

    Checked: nesting deeper than :data:`MAX_DEPTH`, NUL characters and lone surrogates in
    strings and keys (Postgres refuses both). Walks iteratively, so any depth is safe to check.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, what)
        elif isinstance(item, dict | list | tuple):
            if depth > MAX_DEPTH:
                raise InvalidPayload(
                    f"{what} nests more than {MAX_DEPTH} levels deep; mesh accepts at most "
                    f"{MAX_DEPTH}: flatten it"
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str):
                        _check_text(key, what)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def json_text(value: Any, what: str) -> str:
    """``value`` checked (:func:`check_value`) and encoded as JSON text; a value JSON cannot
    hold (a set, an arbitrary object) is refused with :class:`InvalidPayload` naming
    ``what``, before anything reaches the database."""
    check_value(value, what)
    try:
        return _ENCODE(value).decode()
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidPayload(
            f"{what} cannot be encoded as JSON: {error}; pass JSON values (dict, list, str, "
            "int, float, bool, None)"
        ) from error


_ENCODE = msgspec.json.Encoder().encode


def check_text(text: str, what: str) -> str:
    """``text`` unchanged, or :class:`InvalidPayload` if Postgres could not store it."""
    _check_text(text, what)
    return text


def _check_text(text: str, what: str) -> None:
    if text.isascii():
        if "\x00" in text:
            raise InvalidPayload(
                f"{what} contains a NUL character (\\u0000), which Postgres cannot store; "
                "remove it or encode the data (base64)"
            )
        return
    if "\x00" in text:
        _check_text("\x00", what)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidPayload(
            f"{what} contains a lone surrogate ({text[error.start]!r} at position "
            f"{error.start}), which is not valid Unicode; send valid UTF-8 text"
        ) from None
