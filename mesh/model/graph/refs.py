"""``$ref`` in manifests: ``{$ref: ./graphs/order.yaml}``, ``{$ref: '../schemas.yaml#/input'}``
and ``{$ref: '#/app/settings/x'}`` (a JSON pointer into the same document). Pure: the caller
supplies ``load(path) -> parsed document``."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

Loader = Callable[[str], Any]


class RefError(ValueError):
    pass


def resolve_refs(document: Any, source: str, load: Loader) -> Any:
    """``document`` (parsed from ``source``) with every ``$ref`` replaced by what it names."""
    return _resolve(document, source, document, load, (), "")


def _resolve(
    value: Any, source: str, root: Any, load: Loader, trail: tuple[str, ...], path: str
) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$ref"} and isinstance(value["$ref"], str):
            return _follow(value["$ref"], source, root, load, trail, path)
        return {
            k: _resolve(v, source, root, load, trail, f"{path}.{k}" if path else k)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve(v, source, root, load, trail, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _follow(
    ref: str, source: str, root: Any, load: Loader, trail: tuple[str, ...], path: str
) -> Any:
    file_part, _, pointer = ref.partition("#")
    target_source = (
        posixpath.normpath(posixpath.join(posixpath.dirname(source), file_part))
        if file_part
        else source
    )
    key = f"{target_source}#{pointer}"
    if key in trail:
        raise RefError(f"{path}: $ref {ref!r} refers back to itself ({' -> '.join((*trail, key))})")
    if file_part:
        try:
            target_root = load(target_source)
        except OSError as error:
            raise RefError(
                f"{path}: $ref {ref!r}: cannot read {target_source}: {error.strerror or error}"
            ) from error
    else:
        target_root = root
    target = _pointer(target_root, pointer, ref, path)
    return _resolve(target, target_source, target_root, load, (*trail, key), path)


def _pointer(document: Any, pointer: str, ref: str, path: str) -> Any:
    current = document
    for raw in [p for p in pointer.split("/") if p]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise RefError(f"{path}: $ref {ref!r}: nothing at {pointer!r}")
    return current
