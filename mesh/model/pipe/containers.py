"""``@array`` and ``@object`` (HotMesh ``services/pipe/functions/array.ts``, ``object.ts``).

Like their JavaScript originals, the mutating ones (push, pop, sort, set, assign ...) change
the value they are given and return it (or what JavaScript returns).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from mesh.model.pipe.js import (
    UNDEFINED,
    compare,
    is_nullish,
    member,
    own_keys,
    relative_index,
    strict_equals,
    to_integer,
    to_string,
    truthy,
)


def _list(value: Any, function: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"@array.{function} needs an array, not {to_string(value)!r}")
    return value


# -- @array -------------------------------------------------------------------------------


def array_get(array: Any = UNDEFINED, index: Any = UNDEFINED) -> Any:
    if is_nullish(array):
        return UNDEFINED
    return member(array, index if truthy(index) else 0)


def array_length(array: Any = UNDEFINED) -> Any:
    return UNDEFINED if is_nullish(array) else member(array, "length")


def array_concat(first: Any = UNDEFINED, second: Any = UNDEFINED) -> list[Any]:
    result = list(_list(first, "concat"))
    if isinstance(second, list):
        result.extend(second)
    else:
        result.append(second)
    return result


def array_index_of(array: Any = UNDEFINED, element: Any = UNDEFINED, start: Any = UNDEFINED) -> int:
    items = _list(array, "indexOf")
    for index in range(relative_index(len(items), start, 0), len(items)):
        if strict_equals(items[index], element):
            return index
    return -1


def array_last_index_of(
    array: Any = UNDEFINED, element: Any = UNDEFINED, start: Any = UNDEFINED
) -> int:
    items = _list(array, "lastIndexOf")
    if start is UNDEFINED:
        begin = len(items) - 1
    else:
        offset = int(to_integer(start))
        begin = min(offset, len(items) - 1) if offset >= 0 else len(items) + offset
    for index in range(begin, -1, -1):
        if strict_equals(items[index], element):
            return index
    return -1


def array_join(array: Any = UNDEFINED, separator: Any = UNDEFINED) -> str:
    glue = "," if separator is UNDEFINED else to_string(separator)
    return glue.join("" if is_nullish(item) else to_string(item) for item in _list(array, "join"))


def array_pop(array: Any = UNDEFINED) -> Any:
    items = _list(array, "pop")
    return items.pop() if items else UNDEFINED


def array_push(array: Any = UNDEFINED, *items: Any) -> list[Any]:
    target = _list(array, "push")
    target.extend(items)
    return target


def array_reverse(array: Any = UNDEFINED) -> list[Any]:
    target = _list(array, "reverse")
    target.reverse()
    return target


def array_shift(array: Any = UNDEFINED) -> Any:
    items = _list(array, "shift")
    return items.pop(0) if items else UNDEFINED


def array_slice(array: Any = UNDEFINED, start: Any = UNDEFINED, end: Any = UNDEFINED) -> list[Any]:
    items = _list(array, "slice")
    return items[relative_index(len(items), start, 0) : relative_index(len(items), end, len(items))]


def _sort_key(order: str) -> Any:
    ascending = order != "DESCENDING"

    def compare(a: Any, b: Any) -> int:
        if strict_equals(a, b):
            return 0
        if is_nullish(a):
            return -1 if ascending else 1
        if is_nullish(b):
            return 1 if ascending else -1
        if isinstance(a, str) and isinstance(b, str):
            result = (a > b) - (a < b)
            return result if ascending else -result
        if ascending:
            return -1 if _less(a, b) else 1
        return -1 if _less(b, a) else 1

    return functools.cmp_to_key(compare)


def _less(a: Any, b: Any) -> bool:
    return compare(a, b, "<")


def array_sort(array: Any = UNDEFINED, order: Any = "ASCENDING") -> list[Any]:
    """Sort in place: ASCENDING (default) or DESCENDING, null/undefined first (last)."""
    target = _list(array, "sort")
    target.sort(key=_sort_key("ASCENDING" if order is UNDEFINED else to_string(order)))
    return target


def array_splice(
    array: Any = UNDEFINED, start: Any = UNDEFINED, delete_count: Any = UNDEFINED, *items: Any
) -> list[Any]:
    target = _list(array, "splice")
    begin = relative_index(len(target), start, 0)
    # HotMesh always passes deleteCount, so an absent one is undefined, which deletes 0.
    count = int(min(max(to_integer(delete_count), 0), len(target) - begin))
    removed = target[begin : begin + count]
    target[begin : begin + count] = list(items)
    return removed


def array_unshift(array: Any = UNDEFINED, *items: Any) -> int:
    target = _list(array, "unshift")
    target[0:0] = list(items)
    return len(target)


ARRAY: dict[str, Callable[..., Any]] = {
    "get": array_get,
    "length": array_length,
    "concat": array_concat,
    "indexOf": array_index_of,
    "join": array_join,
    "lastIndexOf": array_last_index_of,
    "pop": array_pop,
    "push": array_push,
    "reverse": array_reverse,
    "shift": array_shift,
    "slice": array_slice,
    "sort": array_sort,
    "splice": array_splice,
    "unshift": array_unshift,
}


# -- @object ------------------------------------------------------------------------------


def _own_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return own_keys(value)
    if isinstance(value, list | str):
        return [str(index) for index in range(len(value))]
    return []


def object_get(target: Any = UNDEFINED, key: Any = UNDEFINED) -> Any:
    return UNDEFINED if is_nullish(target) else member(target, key)


def object_set(target: Any = UNDEFINED, key: Any = UNDEFINED, value: Any = UNDEFINED) -> Any:
    if not truthy(target):
        target = {}
    if isinstance(target, dict):
        target[to_string(key)] = value
    elif isinstance(target, list) and to_string(key).isdigit():
        index = int(to_string(key))
        target.extend([UNDEFINED] * (index + 1 - len(target)))
        target[index] = value
    return target


def object_create(*pairs: Any) -> dict[str, Any]:
    items = list(pairs)
    return {
        to_string(items[i]): items[i + 1] if i + 1 < len(items) else UNDEFINED
        for i in range(0, len(items), 2)
    }


def object_keys(target: Any = UNDEFINED) -> list[str]:
    return _own_keys(target) if truthy(target) else []


def object_values(target: Any = UNDEFINED) -> list[Any]:
    return [member(target, key) for key in _own_keys(target)] if truthy(target) else []


def object_entries(target: Any = UNDEFINED) -> list[list[Any]]:
    return [[key, member(target, key)] for key in _own_keys(target)] if truthy(target) else []


def object_from_entries(entries: Any = UNDEFINED) -> dict[str, Any]:
    if not isinstance(entries, list):
        raise TypeError("@object.fromEntries needs an array of [key, value] pairs")
    return {to_string(member(pair, 0)): member(pair, 1) for pair in entries}


def object_assign(target: Any = UNDEFINED, *sources: Any) -> Any:
    result = target if truthy(target) else {}
    for source in sources:
        for key in _own_keys(source) if not is_nullish(source) else []:
            object_set(result, key, member(source, key))
    return result


def object_own_property_names(target: Any = UNDEFINED) -> list[str]:
    keys = _own_keys(target if truthy(target) else {})
    return [*keys, "length"] if isinstance(target, list | str) else keys


def object_own_property_symbols(target: Any = UNDEFINED) -> list[Any]:
    return []  # JSON data has no symbol keys


def object_own_property_descriptor(target: Any = UNDEFINED, key: Any = UNDEFINED) -> Any:
    if not object_has_own_property(target if truthy(target) else {}, key):
        return UNDEFINED
    return {
        "value": member(target, key),
        "writable": True,
        "enumerable": True,
        "configurable": True,
    }


def object_define_property(
    target: Any = UNDEFINED, key: Any = UNDEFINED, descriptor: Any = UNDEFINED
) -> Any:
    if isinstance(descriptor, dict) and "value" in descriptor:
        object_set(target, key, descriptor["value"])
    return target


def object_define_properties(target: Any = UNDEFINED, descriptors: Any = UNDEFINED) -> Any:
    for key in _own_keys(descriptors):
        object_define_property(target, key, member(descriptors, key))
    return target


def _same(target: Any = UNDEFINED) -> Any:
    """freeze, seal, preventExtensions: JSON data has no such flags; the value is returned."""
    return target


def _is_primitive(target: Any = UNDEFINED) -> bool:
    """isFrozen, isSealed: true only for primitives (data objects are never frozen)."""
    return not isinstance(target, list | dict)


def object_is_extensible(target: Any = UNDEFINED) -> bool:
    return isinstance(target, list | dict)


def object_has_own_property(target: Any = UNDEFINED, key: Any = UNDEFINED) -> bool:
    if is_nullish(target):
        raise TypeError("@object.hasOwnProperty needs an object, not null or undefined")
    return to_string(key) in object_own_property_names(target)


def object_is_prototype_of(target: Any = UNDEFINED, other: Any = UNDEFINED) -> bool:
    return False  # plain data objects are nobody's prototype


def object_property_is_enumerable(target: Any = UNDEFINED, key: Any = UNDEFINED) -> bool:
    return to_string(key) in _own_keys(target)


OBJECT: dict[str, Callable[..., Any]] = {
    "get": object_get,
    "set": object_set,
    "create": object_create,
    "keys": object_keys,
    "values": object_values,
    "entries": object_entries,
    "fromEntries": object_from_entries,
    "assign": object_assign,
    "getOwnPropertyNames": object_own_property_names,
    "getOwnPropertySymbols": object_own_property_symbols,
    "getOwnPropertyDescriptor": object_own_property_descriptor,
    "defineProperty": object_define_property,
    "defineProperties": object_define_properties,
    "freeze": _same,
    "isFrozen": _is_primitive,
    "seal": _same,
    "isSealed": _is_primitive,
    "preventExtensions": _same,
    "isExtensible": object_is_extensible,
    "hasOwnProperty": object_has_own_property,
    "isPrototypeOf": object_is_prototype_of,
    "propertyIsEnumerable": object_property_is_enumerable,
}
