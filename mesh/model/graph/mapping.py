"""Mappings as the engine applies them: the data an activity's mappings read (its
context), resolving rules with errors that name the activity, job maps, topics, durations,
and the registry key of a signal. Stateless functions of the job and the graph."""

from __future__ import annotations

import math
from typing import Any

import msgspec

from mesh.errors import InvalidIdentifier, MeshError, PipeError, WorkflowError
from mesh.model.durations import parse_duration
from mesh.model.graph.parts import ActivityFields, GraphView
from mesh.model.graph.state import JobState, lineage
from mesh.model.ids import validate_topic
from mesh.model.pipe.evaluator import resolve
from mesh.model.pipe.js import UNDEFINED, to_number
from mesh.model.pipe.text import to_json_compatible


def signal_key(value: Any) -> str:
    """The registry key of a resolved match value: JSON text, so 1 and '1' stay apart."""
    value = to_json_compatible(value)
    return "" if value is UNDEFINED else msgspec.json.encode(value).decode()


def topic_of(activity: Any, context: dict[str, Any], aid: str) -> str:
    topic = activity.topic
    if not isinstance(topic, str) or topic.startswith("{") or isinstance(activity.topic, dict):
        topic = resolve_rule(activity.topic, context, aid, "topic")
    try:
        return validate_topic(topic)
    except InvalidIdentifier as error:
        raise WorkflowError(f"activity {aid!r}: topic: {error}") from error


def to_seconds(value: Any, aid: str) -> float:
    if isinstance(value, str) and not value.strip().lstrip("-").replace(".", "", 1).isdigit():
        try:
            return parse_duration(value)
        except (ValueError, MeshError) as error:
            raise WorkflowError(f"activity {aid!r}: {error}") from error
    number = to_number(value)
    if math.isnan(number):
        raise WorkflowError(f"activity {aid!r}: {value!r} is not a number of seconds")
    return max(0.0, number)


def apply_job_maps(
    job: JobState, activity: ActivityFields, context: dict[str, Any], aid: str
) -> None:
    maps = activity.job.get("maps")
    if not maps:
        return
    for name, value in map_values(maps, context, aid, "job.maps").items():
        if name.endswith(("[-]", "[_]")) and isinstance(value, dict):
            prefix = "-" if name.endswith("[-]") else "_"
            for inner, item in value.items():
                job.set_data(prefix + inner, item)
        else:
            job.set_data(name.split("[", 1)[0] if name.endswith("]") else name, value)
    context["$job"]["data"] = job.data


def map_values(maps: Any, context: dict[str, Any], aid: str, where: str) -> dict[str, Any]:
    if not isinstance(maps, dict):
        return {}
    result: dict[str, Any] = {}
    for name, rule in maps.items():
        value = to_json_compatible(resolve_rule(rule, context, aid, f"{where}.{name}"))
        if value is not UNDEFINED:
            result[name] = value
    return result


def resolve_rule(rule: Any, context: dict[str, Any], aid: str, where: str) -> Any:
    try:
        return resolve(rule, context)
    except PipeError as error:
        raise WorkflowError(f"activity {aid!r} {where}: {error}") from error


def context_for(job: JobState, graph: GraphView, aid: str, dim: str) -> dict[str, Any]:
    """The data a mapping of ``aid`` in ``dim`` reads: every activity's parts as seen
    from ``dim`` (its own round first, then the rounds it descends from), ``$self``,
    ``$job``, ``$app`` and ``$graph``."""
    context: dict[str, Any] = {}
    for other in graph.activities:
        for d in lineage(dim):
            parts = job.activities.get((other, d))
            if parts is not None:
                context[other] = {name: {"data": value} for name, value in parts.items()}
                break
    own = job.activities.get((aid, dim), {})
    context["$self"] = {name: {"data": value} for name, value in own.items()}
    context["$hook"] = context["$self"].get("hook")
    context["$job"] = {"data": job.data, "metadata": job_metadata(job)}
    context["$app"] = {"id": job.app, "version": job.version}
    context["$graph"] = {"subscribes": graph.subscribes, "publishes": graph.publishes}
    return context


def job_metadata(job: JobState) -> dict[str, Any]:
    """HotMesh's job metadata names (jid, gid, key, app, vrs, tpc, ts, js)."""
    return {
        "jid": job.key,
        "gid": job.gid,
        "key": job.key,
        "app": job.app,
        "vrs": job.version,
        "tpc": job.topic,
        "ts": job.created_at,
        "js": job.semaphore,
        "pj": job.parent.job_id if job.parent else None,
        "pa": job.parent.activity_id if job.parent else None,
    }


def text(value: Any) -> str:
    if isinstance(value, str):
        return value
    converted = to_json_compatible(value)
    if isinstance(converted, float) and converted.is_integer():
        converted = int(converted)
    return converted if isinstance(converted, str) else msgspec.json.encode(converted).decode()


def preview(value: Any) -> str:
    text = msgspec.json.encode(value).decode() if _encodable(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _encodable(value: Any) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, ValueError):
        return False
    return True
