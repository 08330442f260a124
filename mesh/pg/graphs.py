"""Engine transactions: a batch of engine messages handled in one commit.

``process`` takes the batch's claims (the fenced ack comes first, so a lost lease means no
effects), locks the jobs the messages name in id order, loads their state, applies each
message with the pure :class:`~mesh.model.graph.executor.Engine`, saves what changed,
enqueues what it caused and, optionally, claims the next batch, all in one transaction. A
crash at any point commits all of it or none of it. What clients ask directly (``pub``,
``signal``, ``interrupt``) is in :mod:`mesh.pg.operations`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from mesh import telemetry
from mesh.errors import (
    WorkflowError,
)
from mesh.model.graph.app import CompiledApp, no_active_version
from mesh.model.graph.batch import (
    Batch,
    Message,
    Result,
    details_wanted,
    has_starts,
    jobs_named,
)
from mesh.model.graph.manifest import decode_manifest
from mesh.model.graph.state import JobState
from mesh.model.ids import new_message_id
from mesh.model.messages import (
    StartJob,
)
from mesh.model.quorum import JobNotices
from mesh.pg import jobs as rows
from mesh.pg.batch import Delivery, NextClaim, Retry, transact
from mesh.pg.database import Connection
from mesh.pg.queries import query
from mesh.pg.streams import (
    StreamClaim,
    enqueue_params,
    fence_params,
)


class AppVersions:
    """Compiled app versions, loaded from ``mesh.app_versions`` once each (they never change)."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], CompiledApp] = {}

    def get(self, conn: Connection, app: str, version: str) -> CompiledApp:
        key = (app, version)
        compiled = self._compiled.get(key)
        if compiled is None:
            row = conn.execute(
                query("manifest_of_version"), {"app": app, "version": version}
            ).fetchone()
            if row is None:
                raise WorkflowError(f"version {version!r} of app {app!r} is not deployed")
            compiled = CompiledApp(decode_manifest(row[0]))
            self._compiled[key] = compiled
        return compiled

    def active_from(self, conn: Connection, app: str, row: Any) -> CompiledApp:
        """The version named by a row of the ``active_version`` query, read in the caller's
        transaction (activation is one commit); None: there is no active version."""
        if row is None:
            raise no_active_version(app)
        return self.get(conn, app, row[0])


@dataclass(slots=True)
class BatchReport:
    results: list[Result] = field(default_factory=list)
    lost: int = 0
    """Claims whose lease was gone when the batch ran (another consumer has them)."""
    taken: set[int] = field(default_factory=set)
    """Ids of the claims this batch acked (the rest were lost)."""
    next_claims: list[StreamClaim] = field(default_factory=list)
    jobs: list[JobState] = field(default_factory=list)
    """The jobs the batch touched (for their spans, once committed)."""


def process(
    conn: Connection,
    app: str,
    versions: AppVersions,
    deliveries: Sequence[Delivery],
    *,
    owner: str = "",
    next_claim: NextClaim | None = None,
    new_id: Callable[[], str] = new_message_id,
    notices: JobNotices | None = None,
) -> BatchReport:
    """Handle ``deliveries`` in one transaction (retried whole on a deadlock or a key race).
    ``notices``: job events also go to the quorum (the app asked for them).

    The transaction is pipelined: BEGIN travels with the first statements and COMMIT with the
    last, so a batch of responses takes two round trips (ack, locks and reads; then writes,
    next claim and commit) and a batch of starts three (the insert's ids are read between).
    """
    spans = telemetry.current()
    if spans.enabled:
        deliveries = traced(app, deliveries, spans)

    def work(conn: Connection) -> BatchReport:
        return _process(conn, app, versions, deliveries, owner, new_id, notices)

    report, claims = transact(conn, app, owner, work, next_claim=next_claim)
    report.next_claims = claims
    if spans.enabled:
        spans.legs(app, report.jobs)
    return report


def traced(app: str, deliveries: Sequence[Delivery], spans: telemetry.Telemetry) -> list[Delivery]:
    """The deliveries, each start that carries no trace context given a new trace (a job
    started by a process without telemetry is traced from its start here)."""
    return [
        Delivery(
            msgspec.structs.replace(d.message, trace=spans.new_trace(app, d.message.topic)),
            d.claim,
        )
        if isinstance(d.message, StartJob) and not d.message.trace
        else d
        for d in deliveries
    ]


def _process(
    conn: Connection,
    app: str,
    versions: AppVersions,
    deliveries: Sequence[Delivery],
    owner: str,
    new_id: Callable[[], str],
    notices: JobNotices | None,
) -> BatchReport:
    report = BatchReport()
    jobs, taken, active = _take_and_load(conn, app, versions, deliveries, owner)
    if taken is not None:
        report.taken = taken
        report.lost = sum(1 for d in deliveries if d.claim is not None) - len(taken)
    batch = Batch(
        app,
        [
            Message(d.message, direct=d.claim is None)
            for d in deliveries
            if d.claim is None or d.claim.id in report.taken
        ],
        now=time.time(),
        new_id=new_id,
    )
    if active is not None:
        chosen = batch.admit(active)
        # Chosen ids may be taken: lock them to know. Fresh random ids cannot be.
        jobs.update(rows.lock_jobs(conn, app, chosen - jobs.keys()))
    compiled = {v: versions.get(conn, app, v) for v in batch.versions_needed(jobs)}
    plan = batch.apply(compiled, jobs)
    report.results = plan.results
    report.jobs = plan.touched
    if plan.created:
        inserted = rows.insert_jobs(conn, plan.created)
        if len(inserted) != len(plan.created):
            raise Retry()  # taken since we looked: run again (it is a duplicate then)
    # Sent without waiting: they travel with the COMMIT (run_commands waits only when a hook
    # registration's result is needed).
    rows.save_jobs(conn, plan.touched)
    outgoing = plan.outgoing + rows.run_commands(conn, plan.touched, new_id, batch.now, notices)
    if outgoing:
        conn.execute(query("enqueue"), enqueue_params(outgoing))
    rows.withdraw_ended(conn, plan.touched)
    return report


def _take_and_load(
    conn: Connection,
    app: str,
    versions: AppVersions,
    deliveries: Sequence[Delivery],
    owner: str,
) -> tuple[dict[str, JobState], set[int] | None, CompiledApp | None]:
    """In one round trip: the fenced ack of the claims (the ids taken; None without claims),
    the active version (for the starts it holds), the locks of the jobs the messages name and then their
    state, read under the locks. A lost claim's job is locked and read too, and left alone."""
    claimed = [d.claim for d in deliveries if d.claim is not None]
    messages = [d.message for d in deliveries]
    with conn.pipeline():
        taking = (
            conn.execute(query("take_claims"), fence_params(owner, claimed)) if claimed else None
        )
        reading = (
            conn.execute(query("active_version"), {"app": app}) if has_starts(messages) else None
        )
        locking = rows.send_lock_jobs(conn, app, jobs_named(messages))
        loading = rows.send_load_details(conn, app, details_wanted(messages))
    jobs = rows.read_locked_jobs(app, locking)
    rows.read_details(jobs, loading)
    taken = {row[0] for row in taking.fetchall()} if taking is not None else None
    live = [d for d in deliveries if d.claim is None or (taken and d.claim.id in taken)]
    active = None
    if reading is not None and has_starts(d.message for d in live):
        active = versions.active_from(conn, app, reading.fetchone())
    return jobs, taken, active
