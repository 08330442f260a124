"""The Mesh API: a point of presence in the mesh for trio applications.

::

    async with Mesh.open(dsn, app="orders", workers={"inventory.check": check}) as mesh:
        await mesh.deploy("config/orders.yaml")
        await mesh.activate("1")
        result = await mesh.pubsub("order.placed", {"orderId": "o-1", "sku": "s", "qty": 1})

``Mesh.open`` runs a node (an engine, the given workers, a quorum member and the reaper; each
can be left out) for the lifetime of the ``async with``. Job completions arrive by NOTIFY on
the app's job channel; ``pubsub`` and ``wait`` also re-read the job every ``recheck`` seconds,
so a missed notification costs latency, never a result.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import sniffio
import trio

from mesh import telemetry
from mesh.errors import JobFailed, JobTimeout, MeshError, WrongEventLoop, lone_error
from mesh.handle import AsyncExecute, AsyncStart, WorkflowHandle
from mesh.model.durations import Duration
from mesh.model.graph.manifest import Manifest
from mesh.model.ids import job_channel
from mesh.model.jobs import JobEvent, JobRecord, WorkflowStatus
from mesh.model.quorum import Profile, QuorumMessage, activation_delay
from mesh.model.retry import RetryPolicy
from mesh.model.workflow.definition import result_type, start_arguments, workflow_name
from mesh.model.workflow.description import WorkflowDescription
from mesh.pg.operations import Operations, started
from mesh.pg.workflow_messages import WorkflowStart
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.job_events import JobEvents, Subscriber
from mesh.runtime.node import Node
from mesh.runtime.publisher import GroupCommit, Publisher
from mesh.schedule_calls import AsyncSchedules

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

__all__ = ["JobEvent", "JobFailed", "JobTimeout", "Mesh"]


class Mesh(AsyncSchedules):
    def __init__(self, node: Node, *, recheck: float = 2.0) -> None:
        self.node = node
        self.app = node.app
        self.recheck = recheck
        self.versions = node.versions
        self.operations = Operations(self.app, node.versions, node.job_notices)
        self._publisher = Publisher(node.db, self.app, self.versions, notices=node.job_notices)
        self._workflow_starts: GroupCommit[WorkflowStart, str] = GroupCommit(
            node.db, self.operations.start_workflows
        )
        self._result_reads: GroupCommit[str, JobRecord] = GroupCommit(
            node.db, self.operations.get_results
        )
        self.job_events = JobEvents()
        node.listener.subscribe(job_channel(node.app), self.job_events.on_payload)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        dsn: str | None = None,
        *,
        app: str,
        migrate: bool | None = None,
        announce_jobs: bool = False,
        engine: bool = True,
        workers: Mapping[str, Callable[..., Any]] | None = None,
        quorum: bool = True,
        worker_settings: ConsumerSettings | None = None,
        engine_settings: ConsumerSettings | None = None,
        retry: RetryPolicy | None = None,
        reap_interval: float = 2.0,
        statement_timeout: float = 30.0,
        workflows: Mapping[str, Sequence[Callable[..., Any]]] | None = None,
        activities: Mapping[str, Sequence[Callable[..., Any]]] | None = None,
    ) -> AsyncIterator[Mesh]:
        """Run a node with an engine, ``workers`` (topic -> function), a quorum member and a
        reaper for the duration of the block; it drains and stops on exit. ``workflows`` and
        ``activities`` (task queue -> functions) run workflows written as code.
        ``statement_timeout`` (seconds) bounds every statement the node runs. The node is
        built by the same code as ``mesh run``'s (:mod:`mesh.launch`).

        ``dsn`` None: the embedded database (``./.mesh/pg`` or ``MESH_EMBEDDED_DIR``, started
        if need be). ``migrate``: create or upgrade the schema first (idempotent, safe from
        many processes); default True on the embedded database, else False (an out-of-date
        schema is refused, saying to run ``mesh migrate``). ``announce_jobs``: this node
        tells the quorum of the job events it commits (``quorum.announce_jobs``)."""
        if sniffio.current_async_library() != "trio":
            raise WrongEventLoop(
                "Mesh.open runs a mesh node, which needs trio, and this is "
                f"{sniffio.current_async_library()}: to start workflows and wait for them use "
                "`await mesh.Client.connect(dsn, app=...)`; to run workflows and activities in "
                "this process, `mesh.Worker(client, task_queue=..., ...)`"
            )
        from mesh.launch import build_actors, in_process_node, in_process_plan

        plan = in_process_plan(
            engine=engine_settings or ConsumerSettings() if engine else None,
            workers=workers or {},
            workflows=workflows or {},
            activities=activities or {},
            settings=worker_settings or ConsumerSettings(),
            retry=retry or RetryPolicy(),
            quorum=quorum,
            reap_interval=reap_interval,
        )
        if dsn is None:
            from mesh.pg.embedded import embedded_dsn

            dsn = await trio.to_thread.run_sync(embedded_dsn)
            migrate = True if migrate is None else migrate

        node = in_process_node(
            dsn, app, migrate=bool(migrate), announce_jobs=announce_jobs, timeout=statement_timeout
        )
        mesh = cls(node)
        actors = build_actors(node, plan)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: node.run(
                        actors, handle_signals=False, task_status=task_status
                    )
                )
                with trio.move_on_after(10):
                    await node.listener.wait_listening([job_channel(app)])
                try:
                    yield mesh
                finally:
                    node.request_stop()
        except BaseExceptionGroup as group:
            lone = lone_error(group)  # an error from the block comes out as itself
            if lone is not None and not isinstance(lone, trio.Cancelled):
                raise lone from None
            raise

    @property
    def bad_notifications(self) -> int:
        """Job-channel notifications dropped as malformed."""
        return self.job_events.bad_notifications

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """An :class:`Operations` method, run in the node's database thread."""
        return await self.node.db.run(fn, *args, **kwargs)

    # -- versions ----------------------------------------------------------------------------

    async def deploy(self, source: str | Path | Manifest) -> bool:
        """Validate and store a manifest (a path, inline YAML, or a Manifest); True if new.
        Nothing is stored when it is invalid (:class:`ManifestInvalid` lists every problem)."""
        from mesh.manifests import load_manifest

        manifest = source if isinstance(source, Manifest) else load_manifest(source)
        return await self._run(self.operations.deploy, manifest)

    async def activate(self, version: str, *, delay: Duration = 0) -> None:
        """Make a deployed version active for new jobs (in-flight jobs keep theirs). With
        ``delay`` (seconds, or a duration such as '30s'; at most an hour) the quorum is told
        first (``activate`` with ``delay``), and the version becomes active that much later
        (HotMesh's ``activate(version, delay)``); a version that is not deployed is refused
        at once."""
        secret, sender = self.node.quorum.secret, self.node.guid
        seconds = activation_delay(delay)
        if seconds:
            await self._run(
                self.operations.announce_activation, version, seconds, secret=secret, sender=sender
            )
            await trio.sleep(seconds)
        await self._run(self.operations.activate, version, secret=secret, sender=sender)

    # -- jobs --------------------------------------------------------------------------------

    async def pub(
        self,
        topic: str,
        data: Any = None,
        *,
        job_id: str = "",
        pending: Duration | None = None,
    ) -> str:
        """Start a job of the graph subscribed to ``topic``; returns its id once committed.
        With ``pending`` (seconds, or a duration such as '10 minutes') the job is reserved
        instead: its trigger's data is written, nothing runs, and it is pruned after that
        long (status ``pending``; interrupt or scrub it to release the id sooner).

        Starts from concurrent tasks are committed together (:class:`Publisher`)."""
        with telemetry.current().producing(self.app, topic) as producer:
            message = self.operations.start_message(
                topic, data, job_id=job_id, pending=pending, trace=producer.trace
            )
            job_id = started(await self._publisher.start(message))
            producer.started(job_id)
        self.job_events.remember(job_id)
        return job_id

    async def _start_workflow(
        self,
        workflow: Callable[..., Any] | str,
        args: tuple[Any, ...],
        task_queue: str,
        workflow_id: str,
    ) -> WorkflowHandle[Any]:
        name, sent = workflow_name(workflow), start_arguments(workflow, args)
        with telemetry.current().producing(self.app, name) as producer:
            begun = WorkflowStart.of(
                name, sent, task_queue=task_queue, workflow_id=workflow_id, trace=producer.trace
            )
            key = await self._workflow_starts.submit(begun)
            producer.started(key)
        self.job_events.remember(key)
        return WorkflowHandle(self, key, result_type(workflow))

    if TYPE_CHECKING:
        start_workflow: AsyncStart
        execute_workflow: AsyncExecute
    else:

        async def start_workflow(
            self, workflow, /, *args, task_queue: str = "default", workflow_id: str = ""
        ):
            """Start a workflow written as code (a function, or its name) with ``args`` on
            ``task_queue``; a handle to it once its start is committed (typed by the
            function: :mod:`mesh.model.signatures`). A taken ``workflow_id`` is
            refused (:class:`DuplicateJob`). Concurrent starts share commits."""
            return await self._start_workflow(workflow, args, task_queue, workflow_id)

        async def execute_workflow(
            self, workflow, /, *args, task_queue: str = "default", workflow_id: str = ""
        ):
            """Start a workflow and wait for its result."""
            handle = await self._start_workflow(workflow, args, task_queue, workflow_id)
            return await handle.result()

    @overload
    def get_handle(self, workflow_id: str) -> WorkflowHandle[Any]: ...

    @overload
    def get_handle(self, workflow_id: str, result_type: type[R]) -> WorkflowHandle[R]: ...

    def get_handle(self, workflow_id: str, result_type: Any = Any) -> WorkflowHandle[Any]:
        """A handle to the workflow ``workflow_id`` (started by anyone); its result arrives
        as ``result_type`` when given (a dataclass, ...), else as JSON values."""
        return WorkflowHandle(self, workflow_id, result_type)

    async def pubsub(
        self, topic: str, data: Any = None, *, timeout: float = 60.0, job_id: str = ""
    ) -> dict[str, Any]:
        """Start a job and wait for it: returns its data, raises :class:`JobFailed` or
        :class:`JobTimeout`."""
        return (await self.wait(await self.pub(topic, data, job_id=job_id), timeout=timeout)).data

    async def wait(self, job_id: str, *, timeout: float | None = 60.0) -> JobRecord:
        """Wait until the job finishes or persists; its record if ``done`` or persisted, else
        :class:`JobFailed`; :class:`JobTimeout` if it still runs after ``timeout`` seconds.

        The record decides, not the notice: a notice any database login could have sent
        that the job's row does not bear out is forgotten, and the wait goes on."""
        return await self._wait(job_id, timeout, self.get_job)

    async def wait_result(self, job_id: str, *, timeout: float | None = None) -> Any:
        """Like :meth:`wait`, but only the ``result`` data field of a job that is done (a code
        workflow's return value): concurrent waiters read theirs together, in one query."""
        record = await self._wait(job_id, timeout, self._result_reads.submit)
        return record.data.get("result")

    async def _wait(
        self, job_id: str, timeout: float | None, read: Callable[[str], Awaitable[JobRecord]]
    ) -> JobRecord:
        deadline = trio.current_time() + (math.inf if timeout is None else timeout)
        while True:
            await self.wait_status(job_id, timeout=max(0.0, deadline - trio.current_time()))
            record = await read(job_id)
            if record.answered:
                break
            self.job_events.finished.pop(job_id, None)
        if record.status != "done" and not record.persisted:
            raise (await self.get_job(job_id) if read != self.get_job else record).failure()
        return record

    async def wait_status(self, job_id: str, *, timeout: float | None = 60.0) -> str:
        """Wait until the job finishes or persists and return its status (done, failed,
        interrupted, or persisted), reading nothing when the notice arrives (it is sent in the
        job's commit).
        The job is re-read every ``recheck`` seconds without news, and at once for a job
        this Mesh did not start (it may have finished before we listened)."""
        events = self.job_events
        event = events.arm(job_id)
        check_now = job_id not in events.started
        try:
            with trio.move_on_after(math.inf if timeout is None else timeout):
                while True:
                    status = events.finished.get(job_id)
                    if status is not None:
                        return status
                    if check_now:
                        record = await self.get_job(job_id, details=False)
                        if record.answered:
                            return "persisted" if record.persisted else record.status
                    with trio.move_on_after(self.recheck) as nap:
                        await event.wait()
                    check_now = nap.cancelled_caught
                    event = events.rearm(job_id, event)
            raise JobTimeout(f"job {job_id!r} is still running after {timeout:g} s")
        finally:
            events.drop(job_id, event)

    async def get_job(self, job_id: str, *, details: bool = True) -> JobRecord:
        """The job's record (with ``details``: its data, activities and timeline)."""
        return await self._run(self.operations.get_job, job_id, details=details)

    async def get_state(self, job_id: str) -> dict[str, Any]:
        """``{"metadata": {...}, "data": {...}}`` of a job (HotMesh's job state shape)."""
        return await self._run(self.operations.get_state, job_id)

    async def get_status(self, job_id: str) -> WorkflowStatus:
        """running, pending, done, failed or interrupted."""
        return await self._run(self.operations.get_status, job_id)

    async def get_query_state(self, job_id: str, fields: list[str]) -> dict[str, Any]:
        """Chosen fields: job data names, or ``activity/part`` (``checkInventory/output``)."""
        return await self._run(self.operations.get_query_state, job_id, fields)

    async def get_raw(self, job_id: str) -> dict[str, Any]:
        """The job exactly as stored: ``{"job": its mesh.jobs row, "attributes": its
        mesh.jobs_attributes rows, "steps": its mesh.job_steps rows}``."""
        return await self._run(self.operations.get_raw, job_id)

    async def export(self, job_id: str) -> dict[str, Any]:
        """The job with its activity timeline (what ``mesh job ID --json`` prints)."""
        return await self._run(self.operations.export, job_id)

    async def describe(self, workflow_id: str) -> WorkflowDescription:
        """Where a workflow stands, the calls it waits for (attempts, next retry, last
        failure), the live nodes of its task queue and what looks wrong."""
        return await self._run(self.operations.describe_workflow, workflow_id)

    async def interrupt(
        self, job_id: str, *, reason: str = "interrupted", code: int = 410, descend: bool = False
    ) -> bool:
        """Interrupt a running job (and with ``descend`` its children); False if finished."""
        return await self._run(
            self.operations.interrupt, job_id, reason=reason, code=code, descend=descend
        )

    async def scrub(self, job_id: str) -> bool:
        """Delete a finished job and its data now (its id becomes free)."""
        return await self._run(self.operations.scrub, job_id)

    async def signal(self, topic: str, data: Any = None, *, code: int = 200) -> int:
        """Resume the hooks waiting on ``topic`` that match ``data``; returns how many. A
        signal whose hook has not registered yet is kept and delivered when it does (0)."""
        return await self._run(self.operations.signal, topic, data, code)

    # -- completions -------------------------------------------------------------------------

    def sub(self, topic: str, callback: Subscriber) -> None:
        """Call ``callback(JobEvent)`` when a job publishing to ``topic`` finishes or emits."""
        self.job_events.subscribers.append((topic, callback))

    def psub(self, pattern: str, callback: Subscriber) -> None:
        """Like :meth:`sub` for every topic matching ``pattern`` (``order.*``)."""
        self.job_events.subscribers.append((pattern, callback))

    def unsub(self, topic: str) -> None:
        """Remove every subscription made with ``topic`` (or pattern)."""
        self.job_events.subscribers = [(t, c) for t, c in self.job_events.subscribers if t != topic]

    punsub = unsub

    @asynccontextmanager
    async def events(
        self, pattern: str = "*"
    ) -> AsyncIterator[trio.MemoryReceiveChannel[JobEvent]]:
        """``async with mesh.events("order.*") as events: async for event in events: ...``"""
        send, receive = trio.open_memory_channel[JobEvent](math.inf)

        def deliver(event: JobEvent) -> None:
            send.send_nowait(event)

        self.job_events.subscribers.append((pattern, deliver))
        try:
            yield receive
        finally:
            self.job_events.subscribers = [
                (t, c) for t, c in self.job_events.subscribers if c is not deliver
            ]
            send.close()

    # -- quorum ------------------------------------------------------------------------------

    async def throttle(self, throttle_ms: int, *, topic: str = "", guid: str = "") -> None:
        await self.node.quorum.set_throttle(throttle_ms, topic=topic, guid=guid)

    async def roll_call(self, delay: float = 0.5) -> list[Profile]:
        return await self.node.quorum.roll_call(delay)

    async def pub_quorum(
        self, message: QuorumMessage | str, data: Any = None, *, guid: str = "", topic: str = ""
    ) -> None:
        """Send a quorum message of any type, signed when a secret is set (HotMesh's
        ``pubQuorum``): ``pub_quorum(Ping(...))``, or ``pub_quorum(topic, data)`` for a user
        message (see :meth:`mesh.runtime.quorum_client.QuorumClient.pub_quorum`)."""
        await self.node.quorum.pub_quorum(message, data, guid=guid, topic=topic)

    def sub_quorum(self, callback: Callable[[QuorumMessage], Any]) -> None:
        """Receive every quorum message the node's quorum member accepts."""
        from actors.quorum import QuorumActor

        for actor in self.node.actors:
            if isinstance(actor, QuorumActor):
                actor.sub_quorum(callback)
                return
        raise MeshError("this Mesh was opened with quorum=False; open it with quorum=True")
