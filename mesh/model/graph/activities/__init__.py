"""The activity types, one module each, found here by the registry.

Every module of this package (but ``base``) defines a struct for its manifest fields (a
subclass of :class:`~mesh.model.graph.activities.base.ActivityFields` tagged with the
manifest's ``type:``) and an :class:`~mesh.model.graph.activities.base.ActivityType` named
``TYPE`` that checks it and runs its two legs. Adding a type is adding a module: the manifest
union, validation and the engine all read :data:`TYPES`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Union

from mesh.model.graph.activities.base import ActivityType, GraphScope, Leg
from mesh.model.graph.parts import ActivityFields


def _discover() -> dict[str, ActivityType[Any]]:
    found: dict[str, ActivityType[Any]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        kind = getattr(module, "TYPE", None)
        if not isinstance(kind, ActivityType):
            raise TypeError(f"{module.__name__} defines no TYPE (an ActivityType instance)")
        if kind.name in found:
            raise TypeError(f"two modules define the activity type {kind.name!r}")
        found[kind.name] = kind
    return found


TYPES: dict[str, ActivityType[Any]] = _discover()
"""Activity types by their manifest name."""

ALIASES: dict[str, str] = {alias: name for name, t in TYPES.items() for alias in t.aliases}
"""Other manifest names, by the name they stand for."""

ANY_ACTIVITY: Any = Union[tuple(t.struct for t in TYPES.values())]  # noqa: UP007
"""The tagged union the manifest's activities decode into."""


def type_named(name: str) -> ActivityType[Any] | None:
    """The type a manifest's ``type:`` names (its own name or an alias), or None."""
    return TYPES.get(ALIASES.get(name, name))


def type_of(activity: ActivityFields) -> ActivityType[Any]:
    """The type of a decoded activity."""
    return TYPES[activity.type]


__all__ = [
    "ALIASES",
    "ANY_ACTIVITY",
    "TYPES",
    "ActivityFields",
    "ActivityType",
    "GraphScope",
    "Leg",
    "type_named",
    "type_of",
]
