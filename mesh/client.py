"""A client of the mesh for asyncio and trio applications alike: it starts no node.

::

    client = await mesh.Client.connect(dsn, app="shop")
    handle = await client.start_workflow(order_workflow, "sku-1", 2, task_queue="orders")
    print(await handle.result())
    await client.close()

The client holds a small pool (``pool_size``) and, only while something waits, one listening
connection shared by every wait; it never runs an actor or takes a leader seat. Its
operations are the synchronous :class:`~mesh.pg.client.MeshClient`'s, run in worker threads
(anyio), so the three faces of mesh (the trio :class:`~mesh.api.Mesh`, this, and
``MeshClient``) answer the same calls with the same values and errors.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import anyio
import anyio.to_thread
import sniffio

from mesh.errors import JobTimeout
from mesh.handle import AsyncExecute, AsyncStart, WorkflowHandle
from mesh.model.durations import Duration
from mesh.model.graph.manifest import Manifest
from mesh.model.jobs import JobRecord, WorkflowStatus
from mesh.model.quorum import activation_delay
from mesh.model.workflow.definition import result_type, start_arguments, workflow_name
from mesh.model.workflow.description import WorkflowDescription
from mesh.pg.client import MeshClient
from mesh.pg.operations import Operations
from mesh.pg.waiters import Waiter
from mesh.schedule_calls import AsyncSchedules

T = TypeVar("T")
R = TypeVar("R")


class Client(AsyncSchedules):
    """A client of one app (see the module): make one with :meth:`connect`, close it with
    :meth:`close` or ``async with``."""

    def __init__(self, core: MeshClient) -> None:
        self._core = core
        self._limiter = anyio.CapacityLimiter(max(4, core.pool_size * 2))

    @classmethod
    async def connect(
        cls,
        dsn: str | None = None,
        *,
        app: str,
        pool_size: int = 4,
        recheck: float = 1.0,
        migrate: bool | None = None,
    ) -> Client:
        """Connect to the mesh of ``app`` on ``dsn`` (None: ``MESH_DATABASE_URL``, else the
        embedded database of this directory, started if need be). Opens the pool; listens
        to nothing yet. ``migrate``: create or upgrade the schema first (idempotent, under a
        lock); default True on the embedded database, else False."""
        dsn = dsn or os.environ.get("MESH_DATABASE_URL") or None
        if dsn is None:
            from mesh.pg.embedded import embedded_dsn

            dsn = await anyio.to_thread.run_sync(embedded_dsn)
            migrate = True if migrate is None else migrate
        if migrate:
            from mesh.pg.database import run_once
            from mesh.pg.migrations import migrate as migrate_schema

            await anyio.to_thread.run_sync(run_once, dsn, migrate_schema)
        core = await anyio.to_thread.run_sync(
            functools.partial(MeshClient, dsn, app=app, pool_size=pool_size, recheck=recheck)
        )
        return cls(core)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the pool and the listening connection."""
        await anyio.to_thread.run_sync(self._core.close)

    @property
    def app(self) -> str:
        return self._core.app

    @property
    def operations(self) -> Operations:
        return self._core.operations

    @property
    def listening(self) -> bool:
        """Whether the client's listening connection is open (only while something waits)."""
        return self._core.waiters.listening

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """An :class:`Operations` method on a pooled connection, in a worker thread."""
        call = functools.partial(self._core._run, fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    # -- versions ----------------------------------------------------------------------------

    async def deploy(self, source: str | Path | Manifest) -> bool:
        """Validate and store a manifest (a path, inline YAML, or a Manifest); True if new."""
        call = functools.partial(self._core.deploy, source)
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def activate(
        self, version: str, *, secret: bytes | None = None, delay: Duration = 0
    ) -> None:
        """Make a deployed version active for new jobs; with ``delay``, announced to the
        quorum first and active that much later."""
        seconds = activation_delay(delay)
        if seconds:
            await self._run(
                self.operations.announce_activation,
                version,
                seconds,
                secret=secret,
                sender="mesh-client",
            )
            await anyio.sleep(seconds)
        await self._run(self.operations.activate, version, secret=secret, sender="mesh-client")

    # -- graphs ------------------------------------------------------------------------------

    async def pub(
        self, topic: str, data: Any = None, *, job_id: str = "", pending: Duration | None = None
    ) -> str:
        """Start a job of the graph subscribed to ``topic``; its id once committed."""
        return await self._run(self.operations.pub, topic, data, job_id=job_id, pending=pending)

    async def pubsub(
        self, topic: str, data: Any = None, *, timeout: float | None = 60.0, job_id: str = ""
    ) -> dict[str, Any]:
        """Start a job and wait for it: its data, or :class:`JobFailed`/:class:`JobTimeout`."""
        return (await self.wait(await self.pub(topic, data, job_id=job_id), timeout=timeout)).data

    async def signal(self, topic: str, data: Any = None, *, code: int = 200) -> int:
        """Resume the hooks waiting on ``topic`` that match ``data``; returns how many."""
        return await self._run(self.operations.signal, topic, data, code)

    async def interrupt(
        self, job_id: str, *, reason: str = "interrupted", code: int = 410, descend: bool = False
    ) -> bool:
        """Interrupt a running job (and with ``descend`` its children); False if finished."""
        return await self._run(
            self.operations.interrupt, job_id, reason=reason, code=code, descend=descend
        )

    # -- workflows ---------------------------------------------------------------------------

    async def _start_workflow(
        self, workflow: Callable[..., Any] | str, args: tuple[Any, ...], task_queue: str, key: str
    ) -> WorkflowHandle[Any]:
        name, sent = workflow_name(workflow), start_arguments(workflow, args)
        key = await self._run(self.operations.start_workflow, name, sent, task_queue, key)
        return WorkflowHandle(self, key, result_type(workflow))

    if TYPE_CHECKING:
        start_workflow: AsyncStart
        execute_workflow: AsyncExecute
    else:

        async def start_workflow(
            self, workflow, /, *args, task_queue: str = "default", workflow_id: str = ""
        ):
            """Start a workflow written as code (a function, or its name) with ``args`` on
            ``task_queue``; a handle once its start is committed (:class:`DuplicateJob` if
            the id is taken). Typed by the function (:mod:`mesh.model.signatures`)."""
            return await self._start_workflow(workflow, args, task_queue, workflow_id)

        async def execute_workflow(
            self, workflow, /, *args, task_queue: str = "default", workflow_id: str = ""
        ):
            """Start a workflow and wait for its result (:meth:`start_workflow`, then
            :meth:`WorkflowHandle.result`)."""
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

    # -- reading jobs ------------------------------------------------------------------------

    async def get_job(self, job_id: str, *, details: bool = True) -> JobRecord:
        return await self._run(self.operations.get_job, job_id, details=details)

    async def get_status(self, job_id: str) -> WorkflowStatus:
        return await self._run(self.operations.get_status, job_id)

    async def get_state(self, job_id: str) -> dict[str, Any]:
        return await self._run(self.operations.get_state, job_id)

    async def get_query_state(self, job_id: str, fields: list[str]) -> dict[str, Any]:
        return await self._run(self.operations.get_query_state, job_id, fields)

    async def get_raw(self, job_id: str) -> dict[str, Any]:
        return await self._run(self.operations.get_raw, job_id)

    async def export(self, job_id: str) -> dict[str, Any]:
        return await self._run(self.operations.export, job_id)

    async def scrub(self, job_id: str) -> bool:
        """Delete a finished job and its data now (its id becomes free)."""
        return await self._run(self.operations.scrub, job_id)

    async def wait(self, job_id: str, *, timeout: float | None = 60.0) -> JobRecord:
        """Wait until the job finishes or persists: its record if done or persisted, else
        :class:`JobFailed`; :class:`JobTimeout` if it still runs after ``timeout`` seconds
        (None: as long as it takes). Holds no pooled connection while it waits."""
        await self._wait(job_id, timeout)
        record = await self.get_job(job_id)
        if record.status != "done" and not record.persisted:
            raise record.failure()
        return record

    async def wait_result(self, job_id: str, *, timeout: float | None = None) -> Any:
        """Like :meth:`wait`, but only the ``result`` of a job that is done (a workflow's
        return value)."""
        record = await self._wait(job_id, timeout)
        if record.status != "done" and not record.persisted:
            raise (await self.get_job(job_id)).failure()
        return record.data.get("result")

    async def _wait(self, job_id: str, timeout: float | None) -> JobRecord:
        """The job's record (its result only) once it answered; the waits of this client
        share its listening connection."""
        waiters = self._core.waiters
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        woken = anyio.Event()
        wake = _waker(woken)
        waiter: Waiter = await anyio.to_thread.run_sync(waiters.add, job_id, wake)
        try:
            waiters.finish(await self._read_result(job_id))  # it may have ended already
            while not waiter.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JobTimeout(f"job {job_id!r} is still running after {timeout:g} s")
                with anyio.move_on_after(min(left, self._core.recheck)) as nap:
                    await woken.wait()
                if waiter.done:
                    break
                if nap.cancelled_caught or not waiters.listening:
                    # no notice (or no listener): read it ourselves, and listen again
                    waiters.finish(await self._read_result(job_id))
                    if not waiters.listening and not waiter.done:
                        waiters.remove(waiter)
                        waiter = await anyio.to_thread.run_sync(waiters.add, job_id, wake)
                woken = anyio.Event()
                wake = _waker(woken)
                waiter.wake = wake
        finally:
            waiters.remove(waiter)
        assert waiter.record is not None
        return waiter.record

    async def _read_result(self, job_id: str) -> JobRecord:
        (record,) = await self._run(self.operations.get_results, [job_id])
        if isinstance(record, Exception):
            raise record
        return record

    async def describe(self, workflow_id: str) -> WorkflowDescription:
        """Where a workflow stands, the calls it waits for (attempts, next retry, last
        failure), the live nodes of its task queue and what looks wrong."""
        return await self._run(self.operations.describe_workflow, workflow_id)


def _waker(event: anyio.Event) -> Callable[[], None]:
    """A function any thread may call to set ``event`` in the current event loop."""
    library = sniffio.current_async_library()
    if library == "trio":
        import trio

        token = trio.lowlevel.current_trio_token()

        def wake_trio() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(event.set)

        return wake_trio
    import asyncio

    loop = asyncio.get_running_loop()

    def wake_asyncio() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
            loop.call_soon_threadsafe(event.set)

    return wake_asyncio


__all__ = ["Client"]
