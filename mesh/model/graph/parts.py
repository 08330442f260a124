"""The parts of a manifest that the activity types read without the manifest itself (which
decodes activities into the types' union, and so imports them): the fields every activity
has, transitions, hook rules and their conditions, and a graph as a protocol.
:mod:`mesh.model.graph.manifest` re-exports the structs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

import msgspec


class ActivityFields(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True
):
    """The fields every activity may have; each type's struct adds its own (the manifest's
    ``type:`` picks the struct, and a field the type does not know is refused)."""

    title: str = ""
    subtype: str = ""
    input: dict[str, Any] = msgspec.field(default_factory=dict)
    output: dict[str, Any] = msgspec.field(default_factory=dict)
    job: dict[str, Any] = msgspec.field(default_factory=dict)
    telemetry: dict[str, Any] = msgspec.field(default_factory=dict)
    emit: Any = False
    persist: Any = False
    statusThreshold: Any = None
    statusThresholdType: Any = None
    retry: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def type(self) -> str:
        """The manifest's ``type:`` of this activity."""
        return str(self.__struct_config__.tag)


class Match(msgspec.Struct, frozen=True):
    expected: Any = None
    actual: Any = None


class Conditions(msgspec.Struct, frozen=True):
    code: int | list[int] | None = None
    match: list[Match] = msgspec.field(default_factory=list)
    gate: Literal["and", "or"] = "and"


class Transition(msgspec.Struct, frozen=True):
    to: str
    conditions: Conditions | None = None


class HookRule(msgspec.Struct, frozen=True):
    to: str
    conditions: Conditions | None = None


class GraphView(Protocol):
    """A graph as the activity types and the mappings read it: a
    :class:`mesh.model.graph.manifest.Graph`."""

    @property
    def subscribes(self) -> str: ...

    @property
    def publishes(self) -> str | None: ...

    @property
    def activities(self) -> Mapping[str, ActivityFields]: ...
