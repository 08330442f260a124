"""The signal activity: Leg 1 sends its mapped ``signal.maps`` data, with ``code``, to the
hooks waiting on ``topic`` and completes. ``subtype: all`` resumes every hook waiting on the
topic (or, with ``key_value``, those registered under that key) and is never buffered; a plain
signal goes where the app's hook rules send it, and waits for its hook when none waits yet.

:func:`deliveries` is also how a signal from a client (``Mesh.signal``) finds its hooks."""

from __future__ import annotations

from typing import Any

import msgspec

from mesh.model.graph.activities.base import ActivityType, AppView, Leg
from mesh.model.graph.mapping import map_values, resolve_rule, signal_key
from mesh.model.graph.parts import ActivityFields
from mesh.model.graph.state import DeliverSignal
from mesh.model.pipe.js import UNDEFINED, to_number


class Signal(ActivityFields, tag="signal", frozen=True):
    topic: Any = None
    signal: dict[str, Any] = msgspec.field(default_factory=dict)
    resolver: dict[str, Any] = msgspec.field(default_factory=dict)
    key_name: Any = None
    key_value: Any = None
    scrub: Any = False
    status: Any = None
    code: Any = None


class SignalType(ActivityType[Signal]):
    struct = Signal

    def enter(self, leg: Leg) -> None:
        activity: Signal = leg.activity
        topic = leg.topic()
        payload = map_values(activity.signal.get("maps"), leg.context, leg.aid, "signal.maps")
        rule = activity.code if activity.code is not None else activity.status
        code = int(to_number(leg.resolve(rule, "code"))) if rule is not None else 200
        if activity.subtype == "all":
            key = None
            if activity.key_value is not None:
                key = signal_key(leg.resolve(activity.key_value, "key_value"))
            leg.command(DeliverSignal(topic, key, payload, code, buffer=False))
        else:
            for delivery in deliveries(leg.engine.app, topic, payload, code):
                leg.command(delivery)
        leg.complete(200, output=payload)


def deliveries(app: AppView, topic: str, data: Any, code: int = 200) -> list[DeliverSignal]:
    """Where a signal on ``topic`` goes: one delivery per distinct match key its hook rules
    resolve from ``data``. Empty when no hook of ``app`` listens to ``topic``."""
    keys: list[str] = []
    hook_context = {"$self": {"hook": {"data": data}}, "$hook": {"data": data}}
    for rule in app.hook_rules.get(topic, []):
        actual: Any = UNDEFINED
        if rule.conditions is not None and rule.conditions.match:
            actual = resolve_rule(
                rule.conditions.match[0].actual, hook_context, rule.to, f"hooks.{topic}.actual"
            )
        key = signal_key(actual)
        if key not in keys:
            keys.append(key)
    return [DeliverSignal(topic, key, data, code) for key in keys]


TYPE = SignalType()
