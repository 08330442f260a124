"""Manifest validation: every problem, with its path, before anything is stored.

``validate_manifest(document)`` walks the parsed YAML (plain dicts and lists), collects all
problems as ``path: what is wrong`` (``graphs[0].activities.price.input.maps.qty: unknown
activity 'prise'``) and raises :class:`ManifestInvalid` listing them; a clean document comes
back as a :class:`~mesh.model.graph.manifest.Manifest`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Set
from typing import Any

import msgspec

from mesh.errors import InvalidIdentifier, InvalidPayload, ManifestInvalid
from mesh.model.graph.activities import TYPES, GraphScope, type_named
from mesh.model.graph.manifest import Manifest
from mesh.model.graph.schema import schema_definition_problems
from mesh.model.ids import validate_app_id, validate_topic
from mesh.model.pipe.evaluator import CONTEXT_VARIABLES, FUNCTIONS
from mesh.model.retry import policy_from_spec

ACTIVITY_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SYSTEM_ROOTS = {"$self", "$job", "$app", "$graph", "$hook"}
ACTIVITY_PARTS = {"input", "output", "hook", "settings", "errors"}
GRAPH_KEYS = {
    "subscribes",
    "publishes",
    "expire",
    "persistent",
    "input",
    "output",
    "activities",
    "transitions",
    "hooks",
}


def validate_manifest(document: Any) -> Manifest:
    try:
        problems = list(_problems(document))
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as error:
        # A shape the walker did not anticipate: still a refusal that names it, never a crash.
        problems = [f"(manifest): a value has a shape mesh cannot read ({error})"]
    if problems:
        raise ManifestInvalid(problems)
    app = dict(document["app"])
    app["version"] = str(app["version"])
    for graph in app["graphs"]:
        for activity in graph["activities"].values():
            kind = type_named(activity["type"])
            assert kind is not None  # checked above
            activity["type"] = kind.name  # HotMesh's legacy names ("activity" is a hook)
    try:
        return msgspec.convert({"app": app}, Manifest)
    except (msgspec.ValidationError, RecursionError) as error:  # a shape the walker missed
        raise ManifestInvalid([str(error) or type(error).__name__]) from error


def _problems(document: Any) -> Iterator[str]:
    if not isinstance(document, dict) or not isinstance(document.get("app"), dict):
        yield "(top level): a manifest starts with 'app:' (id, version, graphs)"
        return
    app = document["app"]
    yield from _unknown_keys(app, {"id", "version", "settings", "graphs"}, "app")
    try:
        validate_app_id(app.get("id"))
    except InvalidIdentifier as error:
        yield f"app.id: {error}"
    if (
        not isinstance(app.get("version"), str | int | float)
        or str(app.get("version")).strip() == ""
    ):
        yield "app.version: required, e.g. '1'"
    graphs = app.get("graphs")
    if not isinstance(graphs, list) or not graphs:
        yield "app.graphs: required: a list of graphs"
        return
    seen_ids: dict[str, str] = {}
    subscribed: dict[str, str] = {}
    for index, graph in enumerate(graphs):
        path = f"graphs[{index}]"
        if not isinstance(graph, dict):
            yield f"{path}: a graph is a mapping"
            continue
        topic = graph.get("subscribes")
        if isinstance(topic, str) and topic in subscribed:
            yield f"{path}.subscribes: topic {topic!r} is already subscribed by {subscribed[topic]}"
        elif isinstance(topic, str):
            subscribed[topic] = path
        activities = graph.get("activities")
        for aid in activities if isinstance(activities, dict) else {}:
            if not isinstance(aid, str):
                continue  # reported with the graph's activities
            if aid in seen_ids:
                yield f"{path}.activities.{aid}: activity id already used in {seen_ids[aid]} (ids are unique across graphs)"
            seen_ids.setdefault(aid, path)
    for index, graph in enumerate(graphs):
        if isinstance(graph, dict):
            yield from _graph_problems(graph, f"graphs[{index}]", set(subscribed))


def _graph_problems(graph: dict[str, Any], path: str, subscribed: set[str]) -> Iterator[str]:
    yield from _unknown_keys(graph, GRAPH_KEYS, path)
    for key in ("subscribes", "publishes"):
        if key in graph or key == "subscribes":
            try:
                validate_topic(graph.get(key))  # type: ignore[arg-type]
            except InvalidIdentifier as error:
                yield f"{path}.{key}: {error}"
    for key in ("input", "output"):
        schema = (graph.get(key) or {}).get("schema") if isinstance(graph.get(key), dict) else None
        if schema is not None:
            yield from schema_definition_problems(schema, f"{path}.{key}.schema")
    activities = graph.get("activities")
    if not isinstance(activities, dict) or not activities:
        yield f"{path}.activities: required: a mapping of activity id to activity"
        return
    odd = [aid for aid in activities if not isinstance(aid, str)]
    for aid in odd:
        yield f"{path}.activities.{aid}: activity ids are names (letters, digits and '_'), not {type(aid).__name__}s; quote it"
    if odd:
        return
    triggers = [
        aid for aid, a in activities.items() if isinstance(a, dict) and a.get("type") == "trigger"
    ]
    if len(triggers) != 1:
        yield f"{path}.activities: a graph has exactly one trigger activity, found {len(triggers)}"
    ids = set(activities)
    transitions = graph.get("transitions") or {}
    scope = GraphScope(frozenset(ids), frozenset(subscribed), _edges(transitions, ids))
    for aid, activity in activities.items():
        yield from _activity_problems(aid, activity, f"{path}.activities.{aid}", scope)
    yield from _mapping_problems(graph.get("expire"), f"{path}.expire", ids)
    yield from _mapping_problems(graph.get("persistent"), f"{path}.persistent", ids)
    yield from _transition_problems(transitions, f"{path}.transitions", ids)
    trigger = triggers[0] if len(triggers) == 1 else None
    yield from _flow_problems(activities, scope.edges, trigger, path)
    yield from _hook_problems(graph.get("hooks") or {}, f"{path}.hooks", activities)


def _activity_problems(aid: str, activity: Any, path: str, scope: GraphScope) -> Iterator[str]:
    if not ACTIVITY_ID.fullmatch(aid):
        yield f"{path}: activity ids are letters, digits and '_', not starting with a digit"
    if not isinstance(activity, dict):
        yield f"{path}: an activity is a mapping with a 'type'"
        return
    name = activity.get("type")
    kind = type_named(name) if isinstance(name, str) else None
    if kind is None:
        yield f"{path}.type: unknown activity type {name!r} (use {', '.join(TYPES)})"
        return
    yield from _unknown_keys(activity, {"type", *kind.struct.__struct_encode_fields__}, path)
    yield from kind.problems(activity, path, scope)
    if "retry" in activity:
        try:
            policy_from_spec(activity["retry"])
        except InvalidPayload as error:
            yield f"{path}.retry: {error}"
    for key, value in activity.items():
        if key not in ("type", "title") and key not in kind.literal_fields:
            yield from _mapping_problems(value, f"{path}.{key}", scope.ids)
    for key in ("input", "output"):
        section = activity.get(key)
        if isinstance(section, dict) and isinstance(section.get("schema"), dict):
            yield from schema_definition_problems(section["schema"], f"{path}.{key}.schema")


def _mapping_problems(value: Any, path: str, ids: Set[str]) -> Iterator[str]:
    """References and functions inside a mapping value (recursively)."""
    if isinstance(value, dict):
        if "@pipe" in value or "@reduce" in value:
            rows = value.get("@pipe", value.get("@reduce"))
            if not isinstance(rows, list) or not rows:
                yield f"{path}: a @pipe is a non-empty list of rows"
                return
        for key, item in value.items():
            if key != "schema":  # JSON Schemas are not mappings
                yield from _mapping_problems(item, f"{path}.{key}", ids)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _mapping_problems(item, f"{path}[{index}]", ids)
    elif isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        yield from _reference_problems(value, path, ids)


def _reference_problems(cell: str, path: str, ids: Set[str]) -> Iterator[str]:
    inner = cell[1:-1]
    if inner.startswith("@"):
        family, _, name = inner[1:].partition(".")
        if family not in FUNCTIONS:
            yield f"{path}: unknown function family '@{family}' (use {', '.join('@' + f for f in sorted(FUNCTIONS))})"
        elif name not in FUNCTIONS[family]:
            yield f"{path}: unknown function '@{family}.{name}'"
        return
    if cell in CONTEXT_VARIABLES:
        return
    root, _, rest = inner.partition(".")
    if root in SYSTEM_ROOTS:
        return
    if root not in ids:
        yield f"{path}: unknown activity {root!r}"
    elif rest.split(".")[0] not in ACTIVITY_PARTS:
        yield f"{path}: {cell} should read {{{root}.output.data...}} (or input, hook)"


def _edges(transitions: Any, ids: set[str]) -> dict[str, list[str]]:
    """from -> [to] for the well-formed transitions between known activities."""
    edges: dict[str, list[str]] = {}
    for source, targets in transitions.items() if isinstance(transitions, dict) else []:
        for entry in targets if isinstance(targets, list) else []:
            target = entry.get("to") if isinstance(entry, dict) else None
            if isinstance(target, str) and target in ids and source in ids:
                edges.setdefault(source, []).append(target)
    return edges


def _transition_problems(transitions: Any, path: str, ids: set[str]) -> Iterator[str]:
    if not isinstance(transitions, dict):
        yield f"{path}: a mapping of activity id to a list of {{to, conditions}}"
        return
    for source, targets in transitions.items():
        where = f"{path}.{source}"
        if source not in ids:
            yield f"{where}: unknown activity {source!r}"
        if not isinstance(targets, list):
            yield f"{where}: a list of {{to: activity, conditions: ...}}"
            continue
        for index, entry in enumerate(targets):
            at = f"{where}[{index}]"
            if not isinstance(entry, dict) or "to" not in entry:
                yield f"{at}: each transition needs 'to'"
                continue
            yield from _unknown_keys(entry, {"to", "conditions"}, at)
            if not isinstance(entry["to"], str):
                yield f"{at}.to: the id of one activity, not {entry['to']!r}"
            elif entry["to"] not in ids:
                yield f"{at}.to: unknown activity {entry['to']!r}"
            yield from _conditions_problems(entry.get("conditions"), f"{at}.conditions", ids)


def _conditions_problems(conditions: Any, path: str, ids: set[str]) -> Iterator[str]:
    if conditions is None:
        return
    if not isinstance(conditions, dict):
        yield f"{path}: a mapping with code, match and gate"
        return
    yield from _unknown_keys(conditions, {"code", "match", "gate"}, path)
    if conditions.get("gate", "and") not in ("and", "or"):
        yield f"{path}.gate: 'and' or 'or'"
    code = conditions.get("code")
    if code is not None and not (
        isinstance(code, int) or (isinstance(code, list) and all(isinstance(c, int) for c in code))
    ):
        yield f"{path}.code: a status code or a list of them"
    match = conditions.get("match", [])
    if not isinstance(match, list):
        yield f"{path}.match: a list of {{expected, actual}}"
        return
    for index, rule in enumerate(match):
        if not isinstance(rule, dict) or "actual" not in rule:
            yield f"{path}.match[{index}]: needs 'actual' (and 'expected')"
            continue
        yield from _unknown_keys(rule, {"expected", "actual"}, f"{path}.match[{index}]")
        yield from _mapping_problems(rule, f"{path}.match[{index}]", ids)


def _flow_problems(
    activities: dict[str, Any], edges: dict[str, list[str]], trigger: str | None, path: str
) -> Iterator[str]:
    if trigger is None:
        return
    # A cycle in the transitions is a loop with no bound: loops go through a cycle activity.
    # Iterative depth-first search: a chain of 10,000 activities must not hit the recursion
    # limit.
    state: dict[str, int] = {trigger: 1}  # 1: on the current path, 2: done
    trail = [trigger]
    stack = [iter(edges.get(trigger, []))]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            state[trail.pop()] = 2
            stack.pop()
        elif state.get(nxt) == 1:
            loop = " -> ".join([*trail[trail.index(nxt) :], nxt])
            yield f"{path}.transitions: {loop} is a loop; re-enter with a 'cycle' activity instead"
        elif nxt not in state:
            state[nxt] = 1
            trail.append(nxt)
            stack.append(iter(edges.get(nxt, [])))
    for aid in activities:
        if aid not in state:
            yield f"{path}.activities.{aid}: never reached from the trigger {trigger!r}; add a transition to it or remove it"


def _hook_problems(hooks: Any, path: str, activities: dict[str, Any]) -> Iterator[str]:
    if not isinstance(hooks, dict):
        yield f"{path}: a mapping of signal topic to a list of {{to, conditions}}"
        return
    for topic, rules in hooks.items():
        try:
            validate_topic(topic)
        except InvalidIdentifier as error:
            yield f"{path}.{topic}: {error}"
        for index, rule in enumerate(rules if isinstance(rules, list) else []):
            at = f"{path}.{topic}[{index}]"
            target = rule.get("to") if isinstance(rule, dict) else None
            activity = activities.get(target) if isinstance(target, str) else None
            if activity is None:
                yield f"{at}.to: unknown activity {target!r}"
            elif isinstance(activity, dict) and not _takes_signals(activity.get("type")):
                yield f"{at}.to: {target!r} is a {activity.get('type')} activity; signals resume hook activities"
            if isinstance(rule, dict):
                yield from _conditions_problems(
                    rule.get("conditions"), f"{at}.conditions", set(activities)
                )


def _takes_signals(name: Any) -> bool:
    kind = type_named(name) if isinstance(name, str) else None
    return kind is not None and kind.takes_signals


def _unknown_keys(mapping: dict[str, Any], allowed: set[str], path: str) -> Iterator[str]:
    for key in mapping:
        if key not in allowed:
            yield f"{path}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})"
