"""Every operation a client asks of the mesh, implemented once, each one transaction.

:class:`Operations` holds them; the trio :class:`~mesh.api.Mesh` runs them in its database
thread and the synchronous :class:`~mesh.pg.client.MeshClient` on its own pool, so both
return the same values and raise the same errors. Starting and interrupting a job are
:func:`mesh.pg.graphs.process` for one message; a signal finds its hooks through the rules
of every deployed version (:func:`~mesh.model.graph.effects.route_signal`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mesh import telemetry
from mesh.errors import UnknownJob
from mesh.model.durations import Duration
from mesh.model.graph.app import no_active_version
from mesh.model.graph.batch import Result
from mesh.model.graph.client import interrupt_message, start_message
from mesh.model.graph.effects import route_signal
from mesh.model.graph.manifest import Manifest
from mesh.model.ids import new_message_id
from mesh.model.jobs import JobRecord, WorkflowStatus
from mesh.model.limits import check_text, check_value
from mesh.model.messages import StartJob
from mesh.model.payloads import to_json
from mesh.model.quorum import JobNotices
from mesh.model.schedules import ScheduleSpec
from mesh.model.workflow.description import WorkflowDescription, no_pollers_warning
from mesh.model.workflow.plan import workflow_stream
from mesh.pg import (
    apps,
    job_queries,
    presence,
    schedules,
    workflow_describe,
    workflow_messages,
)
from mesh.pg import jobs as rows
from mesh.pg.batch import Delivery
from mesh.pg.database import Connection
from mesh.pg.graphs import AppVersions, process
from mesh.pg.queries import query
from mesh.pg.schedules import ScheduleDescription
from mesh.pg.streams import enqueue

log = logging.getLogger(__name__)

SERVED_RECHECK = 30.0
"""Seconds between two looks, per task queue, for a live node that serves it."""


class Operations:
    """The operations of one app's clients. Each method takes the connection to run on."""

    def __init__(
        self, app: str, versions: AppVersions | None = None, notices: JobNotices | None = None
    ) -> None:
        self.app = app
        self.versions = versions or AppVersions()
        self.notices = notices
        """Job events also go to the quorum (a node's, when its app asks for them)."""
        self._served_checked: dict[str, float] = {}
        """Task queue -> when (monotonic) to look again for a node that serves it."""

    # -- versions ----------------------------------------------------------------------------

    def deploy(self, conn: Connection, manifest: Manifest) -> bool:
        """Store a validated manifest; True if new (:class:`VersionConflict` if that
        version exists with other content)."""
        return apps.deploy(conn, manifest)

    def activate(
        self, conn: Connection, version: str, *, secret: bytes | None = None, sender: str = ""
    ) -> None:
        """Make a deployed version active for new jobs (in-flight jobs keep theirs)."""
        apps.activate(conn, self.app, version, secret=secret, sender=sender)

    def announce_activation(
        self,
        conn: Connection,
        version: str,
        delay: float,
        *,
        secret: bytes | None = None,
        sender: str = "",
    ) -> None:
        """Tell the quorum ``version`` becomes active in ``delay`` seconds (see
        :func:`mesh.pg.apps.announce_activation`)."""
        apps.announce_activation(conn, self.app, version, delay, secret=secret, sender=sender)

    # -- jobs --------------------------------------------------------------------------------

    def start_message(
        self,
        topic: str,
        data: Any,
        *,
        job_id: str = "",
        pending: Duration | None = None,
        trace: str = "",
    ) -> StartJob:
        """The checked message that starts a job (see :func:`start_message`)."""
        return start_message(self.app, topic, data, job_id=job_id, pending=pending, trace=trace)

    def pub(
        self,
        conn: Connection,
        topic: str,
        data: Any,
        *,
        job_id: str = "",
        pending: Duration | None = None,
    ) -> str:
        """Start a job of the graph subscribed to ``topic``; returns its id. Raises
        :class:`UnknownTopic`, :class:`InputInvalid`, :class:`DuplicateJob`, or
        :class:`NoActiveVersion`, having stored nothing."""
        with telemetry.current().producing(self.app, topic) as producer:
            message = self.start_message(
                topic, data, job_id=job_id, pending=pending, trace=producer.trace
            )
            delivery = Delivery(message)
            result = process(conn, self.app, self.versions, [delivery], notices=self.notices)
            key = started(result.results[0])
            producer.started(key)
            return key

    def signal(self, conn: Connection, topic: str, data: Any, code: int = 200) -> int:
        """Deliver ``data`` to the hooks waiting on ``topic``; returns how many were resumed
        now (0: kept until the hook registers). :class:`UnknownHook` if no hook of any
        deployed version listens there (a job keeps the version it started with)."""
        check_value(data, "the signal data")
        check_text(topic, "the signal topic")
        app = self.app
        with conn.transaction():
            deployed = conn.execute(query("signal_versions"), {"app": app}).fetchall()
            if not deployed or not deployed[0][1]:
                raise no_active_version(app)
            compiled = [self.versions.get(conn, app, version) for version, _ in deployed]
            routes = route_signal(app, compiled, topic, data, code)
            rows.lock_signal_keys(conn, ((app, d.topic, d.match_key) for d in routes))
            now = time.time()
            outgoing = [
                o for d in routes for o in rows.deliver_signal(conn, app, d, new_message_id, now)
            ]
            enqueue(conn, outgoing)
            return len(outgoing)

    def interrupt(
        self,
        conn: Connection,
        job_id: str,
        *,
        reason: str = "interrupted",
        code: int = 410,
        descend: bool = False,
    ) -> bool:
        """Interrupt a running job now (and with ``descend`` its children); False if it had
        already finished. :class:`UnknownJob` if there is no such job."""
        message = interrupt_message(
            self.app, job_id, reason=reason, code=code, descend=descend, now=time.time()
        )
        result = process(
            conn, self.app, self.versions, [Delivery(message)], notices=self.notices
        ).results[0]
        if result.error is not None:
            raise result.error
        return result.outcome == "applied"

    def start_workflow(
        self, conn: Connection, name: str, args: list[Any], task_queue: str, workflow_id: str
    ) -> str:
        """Start a workflow written as code; its id (:class:`DuplicateJob` if taken)."""
        with telemetry.current().producing(self.app, name) as producer:
            key = workflow_messages.start(
                conn,
                self.app,
                name,
                args,
                task_queue=task_queue,
                workflow_id=workflow_id,
                trace=producer.trace,
            )
            producer.started(key)
        self.check_served(conn, task_queue)
        return key

    def start_workflows(
        self, conn: Connection, starts: list[workflow_messages.WorkflowStart]
    ) -> list[str | Exception]:
        """Start workflows in one transaction: each one's id, or :class:`DuplicateJob`."""
        started = workflow_messages.start_many(conn, self.app, starts)
        for task_queue in {s.task_queue for s in starts}:
            self.check_served(conn, task_queue)
        return started

    def check_served(self, conn: Connection, task_queue: str) -> None:
        """Warn (once per :data:`SERVED_RECHECK` seconds per task queue) when no live node
        serves ``task_queue``: a workflow started there waits, silently otherwise."""
        now = time.monotonic()
        if self._served_checked.get(task_queue, -math.inf) > now:
            return
        self._served_checked[task_queue] = now + SERVED_RECHECK
        stream = workflow_stream(task_queue)
        if not presence.consumers(conn, self.app, [stream]):
            log.warning(
                "event=no_pollers app=%s %s", self.app, no_pollers_warning(task_queue, stream)
            )

    def describe_workflow(self, conn: Connection, workflow_id: str) -> WorkflowDescription:
        """Where a workflow stands, the calls it waits for (attempts, next retry, last
        failure) and the live nodes of its task queue."""
        return workflow_describe.describe(conn, self.app, self.get_job(conn, workflow_id))

    def signal_workflow(
        self, conn: Connection, workflow_id: str, signal_id: str, data: Any
    ) -> bool:
        """Send a signal to a running workflow written as code; False if none by that id.
        ``data`` may be any value :func:`mesh.model.payloads.to_json` sends."""
        sent = to_json(data, f"the data of signal {signal_id!r}")
        return workflow_messages.signal(conn, self.app, workflow_id, signal_id, sent)

    def cancel_workflow(self, conn: Connection, workflow_id: str) -> bool:
        """Ask a running workflow written as code to stop; False if none by that id."""
        return workflow_messages.cancel(conn, self.app, workflow_id)

    def terminate_workflow(self, conn: Connection, workflow_id: str, reason: str) -> bool:
        """End a running workflow written as code at once (its code is not told); False if
        it is not running."""
        return workflow_messages.terminate(conn, self.app, workflow_id, reason)

    def export_workflow(
        self, conn: Connection, workflow_id: str, allow: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """HotMesh's ``export``: ``data``, ``state``, ``status``, ``timeline`` (or those
        ``allow`` names)."""
        return self.get_job(conn, workflow_id).export(self.app, allow)

    def scrub(self, conn: Connection, job_id: str) -> bool:
        """Delete a finished job and its data now (its id becomes free); False if it is
        running or unknown."""
        return job_queries.scrub(conn, self.app, job_id)

    # -- schedules ---------------------------------------------------------------------------

    def create_schedule(self, conn: Connection, spec: ScheduleSpec, *, replace: bool) -> bool:
        """Store a schedule; True if new (an existing id is refused unless ``replace``)."""
        return schedules.create(conn, self.app, spec, replace=replace)

    def describe_schedule(self, conn: Connection, schedule_id: str) -> ScheduleDescription:
        return schedules.describe(conn, self.app, schedule_id)

    def list_schedules(
        self, conn: Connection, *, after: str = "", limit: int = 100
    ) -> list[ScheduleDescription]:
        return schedules.list_all(conn, self.app, after=after, limit=limit)

    def pause_schedule(self, conn: Connection, schedule_id: str) -> None:
        schedules.pause(conn, self.app, schedule_id)

    def resume_schedule(self, conn: Connection, schedule_id: str) -> None:
        schedules.resume(conn, self.app, schedule_id)

    def delete_schedule(self, conn: Connection, schedule_id: str) -> None:
        schedules.delete(conn, self.app, schedule_id)

    def trigger_schedule(self, conn: Connection, schedule_id: str) -> str:
        """Start a run of the schedule now; its workflow id."""
        return schedules.trigger(conn, self.app, schedule_id)

    def backfill_schedule(
        self, conn: Connection, schedule_id: str, start: datetime, end: datetime
    ) -> list[str]:
        """Start the runs of the ticks in [start, end] that have none; their ids."""
        return schedules.backfill(conn, self.app, schedule_id, start, end)

    def fire_schedules(self, conn: Connection) -> schedules.FireReport:
        """The leader's look at the due schedules (one transaction)."""
        return schedules.fire_due(conn, self.app)

    # -- reading jobs ------------------------------------------------------------------------

    def get_job(self, conn: Connection, job_id: str, *, details: bool = True) -> JobRecord:
        """The job's record (with ``details``: its data, activities and timeline)."""
        record = job_queries.get_job(conn, self.app, job_id, details=details)
        if record is None:
            raise self.unknown(job_id)
        return record

    def get_results(self, conn: Connection, job_ids: list[str]) -> list[JobRecord | Exception]:
        """Jobs by id in one read, each with only its ``result`` data field;
        :class:`UnknownJob` in place of one that does not exist."""
        records = job_queries.get_results(conn, self.app, job_ids)
        return [
            self.unknown(key) if r is None else r for key, r in zip(job_ids, records, strict=True)
        ]

    def get_status(self, conn: Connection, job_id: str) -> WorkflowStatus:
        """running, pending, done, failed or interrupted."""
        return WorkflowStatus(self.get_job(conn, job_id, details=False).status)

    def get_state(self, conn: Connection, job_id: str) -> dict[str, Any]:
        """``{"metadata": {...}, "data": {...}}`` (HotMesh's job state shape)."""
        return self.get_job(conn, job_id).state(self.app)

    def get_query_state(self, conn: Connection, job_id: str, fields: list[str]) -> dict[str, Any]:
        """Chosen fields: job data names, or ``activity/part`` (``checkInventory/output``)."""
        return self.get_job(conn, job_id).query_state(fields)

    def get_raw(self, conn: Connection, job_id: str) -> dict[str, Any]:
        """The job exactly as stored: ``{"job": its mesh.jobs row, "attributes": its
        mesh.jobs_attributes rows, "steps": its mesh.job_steps rows}``."""
        raw = job_queries.get_raw(conn, self.app, job_id)
        if raw is None:
            raise self.unknown(job_id)
        return raw

    def export(self, conn: Connection, job_id: str) -> dict[str, Any]:
        """The job with its activity timeline (what ``mesh job ID --json`` prints)."""
        return self.get_job(conn, job_id).as_dict()

    def unknown(self, job_id: str) -> UnknownJob:
        return UnknownJob(
            f"no job {job_id!r} in app {self.app!r} (never started, or expired and pruned)"
        )


def started(result: Result) -> str:
    """The id of the job a start's ``result`` reports, or the error it was refused with."""
    if result.error is not None:
        raise result.error
    return result.job_id
