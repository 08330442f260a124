"""``$ref`` in manifests: ``{$ref: ./graphs/order.yaml}``, ``{$ref: '../schemas.yaml#/input'}``
and ``{$ref: '#/app/settings/x'}`` (a JSON pointer into the same document). Pure: the caller
supplies ``load(path) -> parsed document``.

References copy what they name, so a few of them can describe an enormous document (each
level referring to the one below ten times). Resolution therefore counts what it builds and
stops past :data:`MAX_RESOLVED_NODES` values or :data:`~mesh.model.limits.MAX_DEPTH` levels.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

from mesh.model.limits import MAX_DEPTH

Loader = Callable[[str], Any]

MAX_RESOLVED_NODES = 1_000_000
"""Values (mappings, lists, scalars) a resolved manifest may hold."""


class RefError(ValueError):
    pass


def resolve_refs(document: Any, source: str, load: Loader) -> Any:
    """``document`` (parsed from ``source``) with every ``$ref`` replaced by what it names."""
    return _Resolution(load).resolve(document, source, document, (), "", 1)


class _Resolution:
    """One resolution: the loader and what is left of the budget of values."""

    def __init__(self, load: Loader) -> None:
        self.load = load
        self.left = MAX_RESOLVED_NODES

    def resolve(
        self, value: Any, source: str, root: Any, trail: tuple[str, ...], path: str, depth: int
    ) -> Any:
        self.left -= 1
        if self.left < 0:
            raise RefError(
                f"{path}: the manifest grows past {MAX_RESOLVED_NODES:,} values once its $refs "
                "are resolved (references that copy references); refer to less"
            )
        if isinstance(value, dict | list) and depth > MAX_DEPTH:
            raise RefError(
                f"{path}: nested more than {MAX_DEPTH} levels deep once its $refs are resolved"
            )
        if isinstance(value, dict):
            if set(value) == {"$ref"} and isinstance(value["$ref"], str):
                return self.follow(value["$ref"], source, root, trail, path, depth)
            return {
                k: self.resolve(
                    v, source, root, trail, f"{path}.{k}" if path else str(k), depth + 1
                )
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [
                self.resolve(v, source, root, trail, f"{path}[{i}]", depth + 1)
                for i, v in enumerate(value)
            ]
        return value

    def follow(
        self, ref: str, source: str, root: Any, trail: tuple[str, ...], path: str, depth: int
    ) -> Any:
        file_part, _, pointer = ref.partition("#")
        target_source = (
            posixpath.normpath(posixpath.join(posixpath.dirname(source), file_part))
            if file_part
            else source
        )
        key = f"{target_source}#{pointer}"
        if key in trail:
            raise RefError(
                f"{path}: $ref {ref!r} refers back to itself ({' -> '.join((*trail, key))})"
            )
        if file_part:
            try:
                target_root = self.load(target_source)
            except OSError as error:
                raise RefError(
                    f"{path}: $ref {ref!r}: cannot read {target_source}: {error.strerror or error}"
                ) from error
        else:
            target_root = root
        target = _pointer(target_root, pointer, ref, path)
        return self.resolve(target, target_source, target_root, (*trail, key), path, depth)


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
