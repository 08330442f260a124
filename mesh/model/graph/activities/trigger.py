"""The trigger: the first activity of every graph. Starting a job runs both its legs at once:
the job's input becomes its output, its job maps run, then the transitions pick what runs
next. ``stats.id`` may choose the job's id and ``entity`` its entity from the input."""

from __future__ import annotations

from typing import Any

import msgspec

from mesh.model.graph.activities.base import ActivityType
from mesh.model.graph.mapping import resolve_rule, text
from mesh.model.graph.parts import ActivityFields
from mesh.model.pipe.js import UNDEFINED


class Trigger(ActivityFields, tag="trigger", frozen=True):
    stats: dict[str, Any] = msgspec.field(default_factory=dict)
    entity: Any = None


class TriggerType(ActivityType[Trigger]):
    struct = Trigger

    def identity(self, aid: str, trigger: Trigger, data: Any) -> tuple[str | None, str | None]:
        """The job id ``stats.id`` chooses for ``data`` (None: none chosen) and the entity."""
        context = {"$self": {"input": {"data": data}, "output": {"data": data}}}
        key: str | None = None
        if "id" in trigger.stats:
            resolved = resolve_rule(trigger.stats["id"], context, aid, "stats.id")
            if resolved not in (None, UNDEFINED, ""):
                key = resolved if isinstance(resolved, str) else text(resolved)
        entity = None
        if trigger.entity is not None:
            resolved = resolve_rule(trigger.entity, context, aid, "entity")
            entity = None if resolved in (None, UNDEFINED) else text(resolved)
        return key, entity


TYPE = TriggerType()
