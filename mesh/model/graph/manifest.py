"""The manifest model: an app of graphs of activities (HotMesh's YAML DSL, reference §5).

These Structs are filled only from manifests that passed :mod:`validation`, which reports
every problem with its path; mapping values (``maps``, conditions, ``@pipe`` objects) stay
as the plain JSON-like data the ``@pipe`` evaluator reads.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

ActivityType = Literal["trigger", "worker", "await", "hook", "signal", "cycle", "interrupt"]


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


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """One activity; which fields apply depends on ``type`` (validation enforces it)."""

    type: ActivityType
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
    # trigger
    stats: dict[str, Any] = msgspec.field(default_factory=dict)
    entity: Any = None
    # worker, await, signal, interrupt
    topic: Any = None
    # await
    await_: Any = msgspec.field(default=True, name="await")
    # hook
    sleep: Any = None
    hook: dict[str, Any] | None = None
    escalation: dict[str, Any] | None = None
    # signal
    signal: dict[str, Any] = msgspec.field(default_factory=dict)
    resolver: dict[str, Any] = msgspec.field(default_factory=dict)
    key_name: Any = None
    key_value: Any = None
    scrub: Any = False
    status: Any = None
    code: Any = None
    # cycle
    ancestor: str = ""
    # interrupt
    target: Any = None
    reason: Any = None
    throw: Any = True
    stack: Any = None
    expire: Any = None
    descend: Any = False


class Graph(msgspec.Struct, frozen=True):
    subscribes: str
    activities: dict[str, Activity]
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
