"""The hook activity: Leg 1 registers the job to wait for a signal (when a ``hooks:`` rule of
the app names it) and/or sets a timer (``sleep``); the signal or the timer completes it. A
signal with code 202 updates its hook data and keeps it waiting. With neither, it passes its
input through at once."""

from __future__ import annotations

from typing import Any

from mesh.model.graph.activities.base import ActivityType, Leg
from mesh.model.graph.mapping import resolve_rule, signal_key, to_seconds
from mesh.model.graph.parts import ActivityFields
from mesh.model.graph.state import RegisterHook, UnregisterHooks
from mesh.model.messages import Resume
from mesh.model.pipe.js import UNDEFINED

KEEP_WAITING = 202
"""A signal code that updates the hook's data without completing it."""


class Hook(ActivityFields, tag="hook", frozen=True):
    sleep: Any = None
    hook: dict[str, Any] | None = None
    escalation: dict[str, Any] | None = None


class HookType(ActivityType[Hook]):
    struct = Hook
    aliases = ("activity",)
    takes_signals = True

    def enter(self, leg: Leg) -> None:
        app = leg.engine.app
        topic = app.hook_topics.get(leg.aid)
        if topic is not None:
            rule = app.rule_for(topic, leg.aid)
            expected: Any = UNDEFINED
            if rule is not None and rule.conditions is not None and rule.conditions.match:
                expected = resolve_rule(
                    rule.conditions.match[0].expected,
                    leg.context,
                    leg.aid,
                    f"hooks.{topic}.expected",
                )
            leg.command(RegisterHook(topic, signal_key(expected), leg.aid, leg.dim))
        if leg.activity.sleep is not None:
            seconds = to_seconds(leg.resolve(leg.activity.sleep, "sleep"), leg.aid)
            leg.send(leg.resume_message("wake"), delay=seconds)
        if topic is None and leg.activity.sleep is None:
            leg.complete(200, output=leg.data)  # passthrough

    def resume(self, leg: Leg, message: Resume) -> str:
        if message.kind == "wake":
            leg.command(UnregisterHooks(leg.aid, leg.dim))
            leg.complete(200, hook=leg.job.part(leg.aid, leg.dim, "hook") or {})
        elif message.kind == "signal":
            if message.code == KEEP_WAITING:
                leg.job.set_part(leg.aid, leg.dim, "hook", message.data)
                return "applied"
            leg.command(UnregisterHooks(leg.aid, leg.dim))
            leg.complete(message.code, hook=message.data)
        else:
            return "stale"
        return "applied"


TYPE = HookType()
