"""A supervisor: restarts failed children with backoff, within a restart intensity limit.

A child that returns normally is done. A child that raises is restarted after a backoff that
doubles with each recent failure; more than ``max_restarts`` failures within
``within_seconds`` make the supervisor raise :class:`SupervisorGaveUp`, which ends the node
with a non-zero exit so systemd or the Procfile runner restarts the whole process.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from mesh.errors import SupervisorGaveUp
from mesh.model.restart import Escalate, RestartIntensity, RestartPolicy
from mesh.runtime.actor import Actor

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, name: str, policy: RestartPolicy | None = None) -> None:
        self.name = name
        self.policy = policy or RestartPolicy()
        self.children: list[Actor[Any]] = []

    async def start(self, nursery: trio.Nursery, child: Actor[Any]) -> None:
        """Start ``child`` under supervision; returns once it reported ready the first time."""
        self.children.append(child)
        await nursery.start(self._supervise, child)

    async def _supervise(self, child: Actor[Any], *, task_status: trio.TaskStatus[None]) -> None:
        intensity = RestartIntensity(self.policy)
        readiness = _FirstReadiness(task_status)
        while True:
            try:
                await child.run(task_status=readiness)
                return
            except Exception as error:  # a child's crash must not take its siblings down
                if not readiness.reported:
                    # Failing before it ever became ready is a setup problem: fail the start.
                    raise
                decision = intensity.record_failure(trio.current_time())
                if isinstance(decision, Escalate):
                    log.error(
                        "event=supervisor_gave_up child=%s reason=%s", child.name, decision.reason
                    )
                    raise SupervisorGaveUp(f"{child.name}: {decision.reason}: {error!r}") from error
                child.restarts += 1
                log.warning(
                    "event=actor_restart child=%s error=%r restart_in=%.2fs restarts=%d",
                    child.name,
                    error,
                    decision.after,
                    child.restarts,
                )
                await trio.sleep(decision.after)


class _FirstReadiness:
    """Passes the first ``started()`` to the supervisor's caller; later ones are no-ops."""

    def __init__(self, task_status: trio.TaskStatus[None]) -> None:
        self._task_status = task_status
        self.reported = False

    def started(self, value: None = None) -> None:
        if not self.reported:
            self.reported = True
            self._task_status.started()
