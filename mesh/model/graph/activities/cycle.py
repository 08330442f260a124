"""The cycle activity: Leg 1 closes it and re-enters its ``ancestor`` in a new dimension (a
``reenter`` resume), with the cycle's mapped input as the ancestor's input. The semaphore
stays: the cycle closes as the ancestor opens. A job re-enters at most ``MAX_CYCLES`` times."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mesh.errors import WorkflowError
from mesh.model.graph.activities.base import ActivityType, GraphScope, Leg
from mesh.model.graph.parts import ActivityFields
from mesh.model.graph.state import lineage
from mesh.model.messages import Resume

MAX_CYCLES = 10_000
REENTERED = 100
"""The code of a Leg 1 step entered by a cycle's re-entry (a plain entry records 200)."""


class Cycle(ActivityFields, tag="cycle", frozen=True):
    ancestor: str = ""


class CycleType(ActivityType[Cycle]):
    struct = Cycle
    literal_fields = frozenset({"ancestor"})

    def problems(self, activity: dict[str, Any], path: str, scope: GraphScope) -> Iterator[str]:
        ancestor = activity.get("ancestor")
        if not ancestor:
            yield f"{path}.ancestor: required: the activity to re-enter"
        elif not isinstance(ancestor, str):
            yield f"{path}.ancestor: the id of the activity to re-enter"
        elif ancestor not in scope.ids:
            yield f"{path}.ancestor: unknown activity {ancestor!r}"
        else:
            aid = path.rsplit(".", 1)[-1]
            if not scope.reaches(ancestor, aid):
                yield f"{path}.ancestor: {ancestor!r} does not come before {aid!r} in the graph"

    def enter(self, leg: Leg) -> None:
        job = leg.job
        ancestor = leg.activity.ancestor
        # New rounds hang off the round the loop started in, not off the previous round, so
        # dimensions stay as deep as the loops are nested however often they turn.
        base = next(
            (
                d
                for d in lineage(leg.dim)
                if job.steps.get((ancestor, d, 1), REENTERED) != REENTERED
            ),
            "",
        )
        job.cycles += 1
        job.changed = True
        if job.cycles > MAX_CYCLES:
            raise WorkflowError(
                f"activity {leg.aid!r} re-entered {ancestor!r} more than {MAX_CYCLES} times"
            )
        job.add_step(leg.aid, leg.dim, 2)
        leg.send(
            Resume(
                id=leg.engine.new_id(),
                app=job.app,
                kind="reenter",
                job_id=job.key,
                gid=job.gid,
                activity_id=ancestor,
                dimension=f"{base}/{job.cycles}",
                data=leg.data,
                sent_at=leg.engine.now,
            )
        )


TYPE = CycleType()
