"""A batch's decisions: refusals and their codes, persistence, finished jobs, what the
database's answers to commands become, and the activity registry (no database)."""

from __future__ import annotations

import msgspec
import pytest

from mesh.errors import (
    DuplicateJob,
    InputInvalid,
    InvalidIdentifier,
    ManifestInvalid,
    UnknownHook,
    UnknownJob,
    UnknownTopic,
)
from mesh.model.graph.activities import TYPES, type_named
from mesh.model.graph.activities.hook import Hook
from mesh.model.graph.batch import refusal_code
from mesh.model.graph.effects import (
    ANNOUNCEMENT_BYTES,
    announcement,
    announcement_payloads,
    buffer_seconds,
    child_interrupts,
    route_signal,
    signal_resumes,
)
from mesh.model.graph.manifest import Manifest, decode_manifest
from mesh.model.graph.state import Announce, DeliverSignal, InterruptChildren
from mesh.model.graph.validation import validate_manifest
from mesh.model.messages import InterruptJob, ParentRef, Resume, StartJob
from tests.unit.graph_harness import Mesh, compile_app, requests, to_engine

APP = """
app:
  id: batch
  version: '2'
  graphs:
    - subscribes: typed
      input:
        schema: {type: object, properties: {n: {type: number}}, required: [n]}
      activities:
        t: {type: trigger, stats: {id: '{$self.input.data.id}'}}
        work: {type: worker, topic: typed.work, persist: true}
        more: {type: worker, topic: typed.more}
      transitions:
        t: [{to: work}]
        work: [{to: more}]
    - subscribes: open
      persistent: true
      activities:
        o: {type: trigger, statusThreshold: 1}
        wait: {type: hook}
      transitions:
        o: [{to: wait}]
      hooks:
        go: [{to: wait}]
"""


@pytest.fixture
def mesh() -> Mesh:
    return Mesh(compile_app(APP))


def _start(mesh: Mesh, topic: str, data: object, **fields: object) -> StartJob:
    return StartJob(id=mesh.new_id(), app="batch", topic=topic, data=data, **fields)  # type: ignore[arg-type]


def test_refusals__unknown_topic_bad_input_taken_and_malformed_ids(mesh: Mesh) -> None:
    mesh.start("typed", {"n": 1, "id": "taken"})
    plan, sent = mesh.run(
        _start(mesh, "nope", {}),
        _start(mesh, "typed", {"n": "one"}),
        _start(mesh, "typed", {"n": 2, "id": "taken"}),
        _start(mesh, "typed", {"n": 3}, job_id="bad\nid"),
        direct=True,
    )
    errors = [type(r.error) for r in plan.results]
    assert errors == [UnknownTopic, InputInvalid, DuplicateJob, InvalidIdentifier]
    assert all(r.outcome == "refused" for r in plan.results) and sent == []
    assert "subscribed: open, typed" in str(plan.results[0].error)


def test_refusals__a_parent_hears_the_code_of_its_childs_refusal(mesh: Mesh) -> None:
    mesh.start("typed", {"n": 1, "id": "taken"})
    parent = ParentRef("P", "g", "child", "")
    _plan, sent = mesh.run(
        _start(mesh, "typed", {"n": 1}, job_id="taken", parent=parent),
        _start(mesh, "typed", {"n": "x"}, parent=parent),
        _start(mesh, "nope", {}, parent=parent),
    )
    codes = [(m.kind, m.code, m.job_id) for m in to_engine(sent)]
    assert codes == [("child", 409, "P"), ("child", 400, "P"), ("child", 500, "P")]
    assert refusal_code(None) == 500


def test_refusals__a_parents_child_id_is_not_a_chosen_id(mesh: Mesh) -> None:
    """A child's id comes from its parent (fresh), so it is not locked as chosen."""
    from mesh.model.graph.batch import Batch, Message

    child = _start(mesh, "typed", {"n": 1}, job_id="c1", parent=ParentRef("P", "g", "a", ""))
    chosen = _start(mesh, "typed", {"n": 1}, job_id="mine")
    batch = Batch("batch", [Message(child), Message(chosen)], now=0, new_id=mesh.new_id)
    assert batch.admit(mesh.app) == {"mine"}


def test_interrupt_of_an_unknown_job__refused_when_asked_directly_stale_from_a_stream(
    mesh: Mesh,
) -> None:
    plan, _ = mesh.run(mesh.interrupt("ghost"), direct=True)
    assert plan.results[0].outcome == "refused" and isinstance(plan.results[0].error, UnknownJob)
    plan, _ = mesh.run(mesh.interrupt("ghost"))
    assert plan.results[0].outcome == "stale"


def test_persist__answers_waiters_and_parent_once_and_keeps_running(mesh: Mesh) -> None:
    parent = ParentRef("P", "g", "child", "")
    _plan, sent = mesh.run(_start(mesh, "typed", {"n": 1, "id": "J"}, parent=parent))
    job = mesh.jobs["J"]
    _, sent = mesh.run(mesh.respond(requests(sent)[0], {"v": 1}))
    answers = [m for m in to_engine(sent) if isinstance(m, Resume)]
    assert [(a.kind, a.job_id) for a in answers] == [("child", "P")]
    assert job.running and job.persisted
    assert Announce("typed", "persisted") in mesh.commands["J"]
    more = next(r for r in requests(sent) if r.topic == "typed.more")
    _, sent = mesh.run(mesh.respond(more, {}))
    assert job.status == "done" and to_engine(sent) == []  # the parent had its answer


def test_persistent_graph__persists_when_only_waits_remain(mesh: Mesh) -> None:
    job, _ = mesh.start("open", {})
    assert job.running and job.persisted and job.semaphore == 1
    assert Announce("open", "persisted") in mesh.commands[job.key]


def test_messages_after_the_end__finished(mesh: Mesh) -> None:
    job, sent = mesh.start("typed", {"n": 1})
    request = requests(sent)[0]
    mesh.run(mesh.interrupt(job.key))
    plan, sent = mesh.run(mesh.respond(request, {}))
    assert plan.results[0].outcome == "finished" and sent == []


def test_effects__signal_routes_resumes_buffers_and_child_interrupts(mesh: Mesh) -> None:
    routes = route_signal("batch", [mesh.app], "go", {"x": 1})
    assert routes == [DeliverSignal("go", "", {"x": 1}, 200)]
    with pytest.raises(UnknownHook, match="hook topics of the active version 2: go"):
        route_signal("batch", [mesh.app], "nobody", {})
    assert buffer_seconds(routes[0]) == 600.0
    assert buffer_seconds(DeliverSignal("go", "k", {"$expire": 5}, 200)) == 5.0
    assert buffer_seconds(DeliverSignal("go", None, {}, 200, buffer=False)) is None
    ids = iter(["m1", "m2"])
    (resume,) = signal_resumes(
        "batch", routes[0], [("J", "g", "wait", "/1")], new_id=lambda: next(ids), now=1.0
    )
    message = msgspec.json.decode(resume.payload, type=Resume)
    assert (message.kind, message.job_id, message.dimension, message.data) == (
        "signal",
        "J",
        "/1",
        {"x": 1},
    )
    (stop,) = child_interrupts(
        "batch", InterruptChildren("why", 410), ["C"], new_id=lambda: next(ids), now=1.0
    )
    interrupt = msgspec.json.decode(stop.payload, type=InterruptJob)
    assert (interrupt.job_id, interrupt.descend, interrupt.code) == ("C", True, 410)


def test_effects__announcements_pack_into_notify_sized_payloads() -> None:
    events = [announcement("t", f"job-{i:05d}", "done") for i in range(400)]
    payloads = announcement_payloads(events)
    assert len(payloads) > 1 and all(len(p.encode()) <= ANNOUNCEMENT_BYTES for p in payloads)
    decoded = [e for p in payloads for e in msgspec.json.decode(p)]
    assert [e["job_id"] for e in decoded] == [f"job-{i:05d}" for i in range(400)]
    assert announcement_payloads([]) == []


def test_registry__every_type_has_a_module_and_legacy_names_resolve() -> None:
    assert set(TYPES) == {"trigger", "worker", "await", "hook", "signal", "cycle", "interrupt"}
    assert type_named("activity") is TYPES["hook"] and type_named("nope") is None


def test_registry__a_types_struct_refuses_fields_of_other_types() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `topic`"):
        msgspec.convert({"type": "hook", "topic": "x"}, Hook)
    document = {
        "app": {
            "id": "a",
            "version": 1,
            "graphs": [
                {
                    "subscribes": "s",
                    "activities": {"t": {"type": "trigger"}, "h": {"type": "hook", "topic": "x"}},
                    "transitions": {"t": [{"to": "h"}]},
                }
            ],
        }
    }
    with pytest.raises(ManifestInvalid, match=r"activities\.h\.topic: unknown key \(allowed: "):
        validate_manifest(document)


def test_decode_manifest__reads_manifests_stored_with_every_types_fields() -> None:
    manifest = compile_app(APP).manifest
    stored = msgspec.json.decode(msgspec.json.encode(manifest))
    for graph in stored["app"]["graphs"]:
        for activity in graph["activities"].values():
            activity.update({"topic": activity.get("topic"), "sleep": None, "ancestor": ""})
    assert decode_manifest(msgspec.json.encode(stored)) == manifest
    assert isinstance(decode_manifest(msgspec.json.encode(manifest)), Manifest)
