"""The interrupt activity: Leg 1 ends a job. Its own job (no ``target``, or its own id)
ends ``interrupted`` with ``code`` (410), or ``done`` with ``throw: false``; another job gets
an interrupt message and this activity completes. ``descend`` interrupts the job's running
children too."""

from __future__ import annotations

from typing import Any

from mesh.model.graph.activities.base import ActivityType, Leg
from mesh.model.graph.mapping import text
from mesh.model.graph.parts import ActivityFields
from mesh.model.messages import InterruptJob
from mesh.model.pipe.js import UNDEFINED, to_number, truthy

DEFAULT_CODE = 410


class Interrupt(ActivityFields, tag="interrupt", frozen=True):
    target: Any = None
    topic: Any = None
    reason: Any = None
    throw: Any = True
    code: Any = None
    stack: Any = None
    expire: Any = None
    descend: Any = False


class InterruptType(ActivityType[Interrupt]):
    struct = Interrupt

    def enter(self, leg: Leg) -> None:
        activity: Interrupt = leg.activity
        job, engine = leg.job, leg.engine
        target = leg.resolve(activity.target, "target") if activity.target is not None else job.key
        reason = leg.resolve(activity.reason, "reason") if activity.reason is not None else None
        code = (
            int(to_number(leg.resolve(activity.code, "code")))
            if activity.code is not None
            else DEFAULT_CODE
        )
        descend = truthy(leg.resolve(activity.descend, "descend"))
        throw = truthy(leg.resolve(activity.throw, "throw"))
        reason_text = (
            text(reason)
            if reason not in (None, UNDEFINED)
            else f"interrupted by activity {leg.aid!r}"
        )
        if not isinstance(target, str) or target in ("", job.key):
            job.add_step(leg.aid, leg.dim, 2, code)
            engine.interrupt(job, reason_text, code, descend=descend, throw=throw)
            return
        leg.send(
            InterruptJob(
                id=engine.new_id(),
                app=job.app,
                job_id=target,
                reason=reason_text,
                code=code,
                descend=descend,
                sent_at=engine.now,
            )
        )
        leg.complete(200, output={"job_id": target})


TYPE = InterruptType()
