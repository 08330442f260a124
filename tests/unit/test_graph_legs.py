"""Each activity type's two legs, through the engine's pure core (no database)."""

from __future__ import annotations

import pytest

from mesh.model.graph.state import (
    Announce,
    DeliverSignal,
    InterruptChildren,
    JobState,
    RegisterHook,
    UnregisterHooks,
)
from mesh.model.messages import ActivityRequest, InterruptJob, Resume, StartJob
from tests.unit.graph_harness import Mesh, compile_app, requests, to_engine

APP = """
app:
  id: legs
  version: '1'
  graphs:
    - subscribes: order
      publishes: order.done
      activities:
        t:
          type: trigger
          stats: {id: '{$self.input.data.ref}'}
          entity: '{$self.input.data.kind}'
          job: {maps: {ref: '{$self.output.data.ref}'}}
        price:
          type: worker
          topic: pricing
          retry: {maximum_attempts: 7}
          input: {maps: {qty: '{t.output.data.qty}'}}
          output: {maps: {doubled: {'@pipe': [['{$self.output.data.total}', 2], ['{@math.multiply}']]}}}
          job: {maps: {total: '{$self.output.data.doubled}'}}
        ship:
          type: worker
          topic: shipping
      transitions:
        t: [{to: price}]
        price: [{to: ship, conditions: {match: [{expected: true, actual: '{price.output.data.ok}'}]}}]
    - subscribes: parent
      activities:
        p: {type: trigger}
        child:
          type: await
          topic: order
          input: {maps: {ref: child-1, qty: 1}}
        detached: {type: await, topic: order, await: false, input: {maps: {qty: 2}}}
      transitions:
        p: [{to: child}, {to: detached}]
    - subscribes: waiter
      activities:
        w: {type: trigger}
        gate: {type: hook}
        nap: {type: hook, sleep: 30}
        pass: {type: hook, input: {maps: {x: 1}}}
      transitions:
        w: [{to: gate}, {to: nap}, {to: pass}]
      hooks:
        approve: [{to: gate, conditions: {match: [{expected: '{$job.metadata.jid}', actual: '{$self.hook.data.id}'}]}}]
    - subscribes: sender
      activities:
        s: {type: trigger}
        tell: {type: signal, topic: approve, signal: {maps: {id: '{s.output.data.target}', ok: true}}, code: 200}
        all: {type: signal, subtype: all, topic: approve, signal: {maps: {ok: false}}}
      transitions:
        s: [{to: tell}, {to: all}]
    - subscribes: loop
      activities:
        l: {type: trigger}
        body: {type: worker, topic: step}
        again: {type: cycle, ancestor: body, input: {maps: {n: '{body.output.data.n}'}}}
      transitions:
        l: [{to: body}]
        body: [{to: again, conditions: {match: [{expected: true, actual: '{body.output.data.more}'}]}}]
    - subscribes: stopper
      activities:
        st: {type: trigger}
        other: {type: interrupt, target: '{st.output.data.victim}', descend: true}
        self_stop: {type: interrupt, code: 499, reason: enough}
      transitions:
        st: [{to: other}, {to: self_stop, conditions: {match: [{expected: true, actual: '{st.output.data.stop}'}]}}]
"""


@pytest.fixture
def mesh() -> Mesh:
    return Mesh(compile_app(APP))


def test_trigger__maps_its_input_chooses_the_id_and_entity(mesh: Mesh) -> None:
    job, sent = mesh.start("order", {"ref": "A1", "kind": "retail", "qty": 3})
    assert (job.key, job.entity, job.data["ref"]) == ("A1", "retail", "A1")
    assert job.steps[("t", "", 1)] == job.steps[("t", "", 2)] == 200
    assert [r.topic for r in requests(sent)] == ["pricing"]


def test_trigger__pending_start_reserves_and_runs_nothing(mesh: Mesh) -> None:
    job, sent = mesh.start("order", {"ref": "P", "qty": 1}, pending=60.0)
    assert (job.status, job.expire_seconds, sent) == ("pending", 60.0, [])
    plan, _ = mesh.run(mesh.interrupt("P"))
    assert plan.results[0].outcome == "applied" and mesh.jobs["P"].status == "interrupted"


def test_worker__leg1_requests_with_its_retry_policy(mesh: Mesh) -> None:
    job, sent = mesh.start("order", {"ref": "A", "qty": 3})
    (request,) = requests(sent)
    assert (request.data, request.job_id, request.job_gid) == ({"qty": 3}, "A", job.gid)
    assert request.retry is not None and request.retry.maximum_attempts == 7
    assert sent[0].max_attempts == 7
    assert job.semaphore == 1 and job.running


def test_worker__leg2_applies_output_maps_and_follows_conditions(mesh: Mesh) -> None:
    _, sent = mesh.start("order", {"ref": "A", "qty": 3})
    plan, sent = mesh.run(mesh.respond(requests(sent)[0], {"total": 5, "ok": True}))
    job = mesh.jobs["A"]
    assert plan.results[0].outcome == "applied"
    assert job.activities[("price", "")]["output"] == {"total": 5, "ok": True, "doubled": 10}
    assert job.data["total"] == 10
    (ship,) = requests(sent)
    assert ship.topic == "shipping" and ship.retry is None and sent[0].max_attempts == 0
    mesh.run(mesh.respond(ship, {}))
    assert job.status == "done" and job.semaphore == 0
    assert Announce("order.done", "done") in mesh.commands["A"]


def test_worker__condition_false_ends_the_job(mesh: Mesh) -> None:
    _, sent = mesh.start("order", {"ref": "A", "qty": 3})
    mesh.run(mesh.respond(requests(sent)[0], {"total": 1, "ok": False}))
    assert mesh.jobs["A"].status == "done"


def test_worker__an_error_without_a_transition_fails_the_job_with_its_code(mesh: Mesh) -> None:
    _, sent = mesh.start("order", {"ref": "A", "qty": 3})
    mesh.run(mesh.fail(requests(sent)[0], code=422, message="bad sku"))
    job = mesh.jobs["A"]
    assert job.status == "failed" and job.error is not None
    assert job.error["code"] == 422 and "bad sku" in job.error["message"]


def test_worker__pending_response_keeps_the_activity_open(mesh: Mesh) -> None:
    _, sent = mesh.start("order", {"ref": "A", "qty": 3})
    request = requests(sent)[0]
    mesh.run(mesh.respond(request, {"total": 1}, status="pending", code=202))
    job = mesh.jobs["A"]
    assert job.running and not job.has_step("price", "", 2)
    assert job.activities[("price", "")]["output"]["total"] == 1
    plan, _ = mesh.run(mesh.respond(request, {"total": 2, "ok": False}))
    assert plan.results[0].outcome == "applied" and job.status == "done"


def test_worker__data_that_is_not_an_object_fails_the_job(mesh: Mesh) -> None:
    _, sent = mesh.start("order", {"ref": "A", "qty": 3})
    mesh.run(mesh.respond(requests(sent)[0], [1, 2]))
    job = mesh.jobs["A"]
    assert job.status == "failed" and "returned list" in job.error["message"]  # type: ignore[index]
    assert not job.has_step("price", "", 2)  # the failed message's changes were undone


def test_worker__duplicates_and_stale_generations_change_nothing(mesh: Mesh) -> None:
    _, sent = mesh.start("order", {"ref": "A", "qty": 3})
    response = mesh.respond(requests(sent)[0], {"total": 1, "ok": True})
    mesh.run(response)
    before = (dict(mesh.jobs["A"].steps), mesh.jobs["A"].semaphore)
    plan, sent = mesh.run(response)
    assert plan.results[0].outcome == "duplicate" and sent == []
    stale = mesh.respond(_request_of(response), job_gid="old")
    plan, sent = mesh.run(stale)
    assert plan.results[0].outcome == "stale" and sent == []
    assert (dict(mesh.jobs["A"].steps), mesh.jobs["A"].semaphore) == before


def _request_of(response: object) -> ActivityRequest:
    return ActivityRequest(
        id="r",
        app=response.app,  # type: ignore[attr-defined]
        topic=response.topic,  # type: ignore[attr-defined]
        job_id=response.job_id,  # type: ignore[attr-defined]
        activity_id=response.activity_id,  # type: ignore[attr-defined]
        job_gid=response.job_gid,  # type: ignore[attr-defined]
    )


def test_await__starts_the_child_and_completes_with_its_answer(mesh: Mesh) -> None:
    parent, sent = mesh.start("parent", {})
    starts = [m for m in to_engine(sent) if isinstance(m, StartJob)]
    waited = next(s for s in starts if s.parent is not None)
    detached = next(s for s in starts if s.parent is None)
    assert waited.topic == "order" and waited.parent.activity_id == "child"  # type: ignore[union-attr]
    assert parent.activities[("detached", "")]["output"] == {"job_id": detached.job_id}
    assert parent.semaphore == 1  # the detached await completed at once
    mesh.run(waited)  # the child starts, with the id the parent chose
    child = mesh.jobs[waited.job_id]
    assert child.parent == waited.parent and child.data["ref"] == "child-1"


def test_await__the_childs_answer_resumes_the_parent(mesh: Mesh) -> None:
    parent, sent = mesh.start("parent", {})
    waited = next(m for m in to_engine(sent) if isinstance(m, StartJob) and m.parent)
    _, sent = mesh.run(waited)
    _, sent = mesh.run(mesh.respond(requests(sent)[0], {"total": 4, "ok": False}))
    (resume,) = to_engine(sent)
    assert isinstance(resume, Resume) and (resume.kind, resume.code) == ("child", 200)
    plan, _ = mesh.run(resume)
    assert plan.results[0].outcome == "applied" and parent.status == "done"
    assert parent.activities[("child", "")]["output"]["ref"] == "child-1"  # the child's data


def test_await__a_failed_child_fails_the_parent_with_its_code(mesh: Mesh) -> None:
    parent, sent = mesh.start("parent", {})
    waited = next(m for m in to_engine(sent) if isinstance(m, StartJob) and m.parent)
    _, sent = mesh.run(waited)
    _, sent = mesh.run(mesh.fail(requests(sent)[0], code=503))
    (resume,) = to_engine(sent)
    mesh.run(resume)
    assert parent.status == "failed" and parent.error["code"] == 503  # type: ignore[index]


def test_hook__registers_sleeps_and_passes_through(mesh: Mesh) -> None:
    job, sent = mesh.start("waiter", {})
    (register,) = [c for c in mesh.commands[job.key] if isinstance(c, RegisterHook)]
    assert (register.topic, register.match_key, register.activity) == (
        "approve",
        f'"{job.key}"',
        "gate",
    )
    (wake,) = [s for s in sent if isinstance(s.message, Resume)]
    assert (wake.message.kind, wake.message.activity_id, wake.delay) == ("wake", "nap", 30.0)
    assert job.activities[("pass", "")]["output"] == {"x": 1}  # passthrough completed
    assert job.semaphore == 2
    mesh.run(wake.message)
    assert job.has_step("nap", "", 2) and job.semaphore == 1


def resume(job: JobState, activity: str, kind: str, code: int = 200, data: object = None) -> Resume:
    """A resume of ``kind`` for ``activity`` of ``job``, as the database would send it."""
    return Resume(
        id=f"{kind}-{code}-{data}",
        app=job.app,
        kind=kind,
        job_id=job.key,
        gid=job.gid,
        activity_id=activity,
        dimension="",
        code=code,
        data=data,
    )


def test_hook__signal_202_updates_and_keeps_waiting_then_a_signal_completes(mesh: Mesh) -> None:
    job, _ = mesh.start("waiter", {})
    mesh.run(resume(job, "gate", "signal", 202, {"step": 1}))
    assert job.activities[("gate", "")]["hook"] == {"step": 1} and not job.has_step("gate", "", 2)
    final = resume(job, "gate", "signal", 200, {"ok": 1})
    plan, _ = mesh.run(final)
    assert plan.results[0].outcome == "applied" and job.has_step("gate", "", 2)
    assert UnregisterHooks("gate", "") in mesh.commands[job.key]
    assert mesh.run(final)[0].results[0].outcome == "duplicate"


def test_hook__takes_no_child_resume(mesh: Mesh) -> None:
    job, _ = mesh.start("waiter", {})
    plan, sent = mesh.run(resume(job, "gate", "child"))
    assert plan.results[0].outcome == "stale" and sent == []
    assert not job.has_step("gate", "", 2)


def test_signal__delivers_by_the_hook_rules_and_completes(mesh: Mesh) -> None:
    job, _ = mesh.start("sender", {"target": "J9"})
    deliveries = [c for c in mesh.commands[job.key] if isinstance(c, DeliverSignal)]
    assert DeliverSignal("approve", '"J9"', {"id": "J9", "ok": True}, 200) in deliveries
    assert DeliverSignal("approve", None, {"ok": False}, 200, buffer=False) in deliveries
    assert job.status == "done"


def test_cycle__re_enters_its_ancestor_in_new_dimensions(mesh: Mesh) -> None:
    job, sent = mesh.start("loop", {})
    for n in range(3):
        (request,) = requests(sent)
        assert request.dimension == ("" if n == 0 else f"/{n}")
        _, sent = mesh.run(mesh.respond(request, {"more": n < 2, "n": n}))
        if n < 2:
            (reenter,) = to_engine(sent)
            assert (reenter.kind, reenter.activity_id, reenter.data) == (
                "reenter",
                "body",
                {"n": n},
            )
            _, sent = mesh.run(reenter)
            assert mesh.run(reenter)[0].results[0].outcome == "duplicate"
    assert job.status == "done" and job.cycles == 2


def test_cycle__a_runaway_loop_fails_the_job(mesh: Mesh, monkeypatch: pytest.MonkeyPatch) -> None:
    from mesh.model.graph.activities import cycle

    monkeypatch.setattr(cycle, "MAX_CYCLES", 1)
    job, sent = mesh.start("loop", {})
    for _ in range(2):
        _, sent = mesh.run(mesh.respond(requests(sent)[0], {"more": True}))
        reenters = to_engine(sent)
        if not reenters:
            break
        _, sent = mesh.run(reenters[0])
    assert job.status == "failed" and "more than 1 times" in job.error["message"]  # type: ignore[index]


def test_interrupt__another_job_with_descend_and_itself_with_its_code(mesh: Mesh) -> None:
    job, sent = mesh.start("stopper", {"victim": "V1", "stop": True})
    (message,) = to_engine(sent)
    assert isinstance(message, InterruptJob) and (message.job_id, message.descend) == ("V1", True)
    assert job.activities[("other", "")]["output"] == {"job_id": "V1"}
    assert job.status == "interrupted" and job.error == {
        "message": "enough",
        "type": "Interrupted",
        "code": 499,
    }


def test_interrupt__descend_asks_for_the_children(mesh: Mesh) -> None:
    job, _ = mesh.start("order", {"ref": "D", "qty": 1})
    mesh.run(mesh.interrupt("D", descend=True, code=410))
    assert job.status == "interrupted"
    assert InterruptChildren("stop", 410) in mesh.commands["D"]
    assert mesh.run(mesh.interrupt("D"))[0].results[0].outcome == "finished"
