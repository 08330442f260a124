"""The manifest model: an app of graphs of activities (HotMesh's YAML DSL).

These Structs are filled only from manifests that passed :mod:`validation`, which reports
every problem with its path. An activity is one struct per type, defined with the type's code
in :mod:`mesh.model.graph.activities`; mapping values (``maps``, conditions, ``@pipe`` objects) stay
as the plain JSON-like data the ``@pipe`` evaluator reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from mesh.model.graph.activities import ANY_ACTIVITY, type_named
from mesh.model.graph.parts import ActivityFields, Conditions, HookRule, Match, Transition

Activity = ActivityFields
"""An activity of any type (each type's struct derives from it)."""

if TYPE_CHECKING:
    AnyActivity = ActivityFields
else:
    AnyActivity = ANY_ACTIVITY  # the tagged union msgspec decodes into


class Graph(msgspec.Struct, frozen=True):
    subscribes: str
    activities: dict[str, AnyActivity]
    publishes: str | None = None
    expire: Any = None
    persistent: Any = False
    input: dict[str, Any] = msgspec.field(default_factory=dict)
    output: dict[str, Any] = msgspec.field(default_factory=dict)
    transitions: dict[str, list[Transition]] = msgspec.field(default_factory=dict)
    hooks: dict[str, list[HookRule]] = msgspec.field(default_factory=dict)

    @property
    def trigger_id(self) -> str:
        return next(aid for aid, activity in self.activities.items() if activity.type == "trigger")


class App(msgspec.Struct, frozen=True):
    id: str
    version: str
    graphs: list[Graph]
    settings: dict[str, Any] = msgspec.field(default_factory=dict)


class Manifest(msgspec.Struct, frozen=True):
    app: App


_DECODER = msgspec.json.Decoder(Manifest)


def decode_manifest(stored: bytes | str) -> Manifest:
    """A manifest as stored at deploy (validated then). Manifests stored before each activity
    type had a struct of its own carry every type's fields with their defaults: the fields
    an activity's type does not have are dropped."""
    try:
        return _DECODER.decode(stored)
    except msgspec.ValidationError:
        document = msgspec.json.decode(stored)
        for graph in document["app"]["graphs"]:
            activities = graph["activities"]
            for aid, activity in activities.items():
                kind = type_named(activity["type"])
                if kind is not None:
                    own = {"type", *kind.struct.__struct_encode_fields__}
                    activities[aid] = {k: v for k, v in activity.items() if k in own}
        return msgspec.convert(document, Manifest)


__all__ = [
    "Activity",
    "ActivityFields",
    "App",
    "Conditions",
    "Graph",
    "HookRule",
    "Manifest",
    "Match",
    "Transition",
    "decode_manifest",
]
