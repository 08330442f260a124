"""The synchronous client, for applications without trio: start jobs, signal, read state.

::

    with MeshClient(dsn, app="orders") as client:
        job_id = client.pub("order.placed", {"orderId": "o-1", "sku": "sku-100", "qty": 1})
        record = client.wait(job_id, timeout=30)

It uses a psycopg_pool pool directly and needs no running node of its own: the mesh's
engines and workers do the work. Its waits share one listening connection, opened while
anyone waits (:mod:`mesh.pg.waiters`), and hold no pooled connection; each waited job is
re-read at least every ``recheck`` seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast, overload

import psycopg
import psycopg_pool

from mesh import telemetry
from mesh.errors import JobTimeout
from mesh.model.durations import Duration
from mesh.model.graph.manifest import Manifest
from mesh.model.jobs import JobRecord, WorkflowStatus
from mesh.model.payloads import from_json
from mesh.model.quorum import activation_delay
from mesh.model.schedules import spec_for
from mesh.model.signatures import A1, A2, A3, A4, A5, A6, R
from mesh.model.workflow.definition import result_type, start_arguments, workflow_name
from mesh.model.workflow.description import WorkflowDescription
from mesh.pg.database import connection_settings, translate
from mesh.pg.operations import Operations
from mesh.pg.schedules import ScheduleDescription
from mesh.pg.waiters import JobWaiters

T = TypeVar("T")


class MeshClient:
    """A synchronous client of one app: the operations of :class:`~mesh.api.Mesh` (the same
    implementation, :class:`~mesh.pg.operations.Operations`) on a pool of its own."""

    def __init__(self, dsn: str, *, app: str, pool_size: int = 4, recheck: float = 1.0) -> None:
        self.dsn = dsn
        self.app = app
        self.recheck = recheck
        self.pool_size = pool_size
        if telemetry.wanted():  # MESH_TELEMETRY: this client's starts begin their traces
            telemetry.enable()
        self.operations = Operations(app)
        self._pool = psycopg_pool.ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, **connection_settings(f"mesh-client:{app}", 30.0)},
            open=True,
        )
        self.waiters = JobWaiters(dsn, app, recheck=recheck)
        """The client's waits, on one listening connection opened while anyone waits."""

    def __enter__(self) -> MeshClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.waiters.close()
        self._pool.close()

    def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            with self._pool.connection() as conn:
                return fn(conn, *args, **kwargs)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            raise translate(error) from error

    # -- versions ----------------------------------------------------------------------------

    def deploy(self, source: str | Path | Manifest) -> bool:
        """Validate and store a manifest (a path, inline YAML, or a Manifest); True if new."""
        from mesh.manifests import load_manifest

        manifest = source if isinstance(source, Manifest) else load_manifest(source)
        return self._run(self.operations.deploy, manifest)

    def activate(self, version: str, *, secret: bytes | None = None, delay: Duration = 0) -> None:
        """Make a deployed version active for new jobs (in-flight jobs keep theirs); with
        ``delay``, announced to the quorum first and active that much later (see
        :meth:`mesh.api.Mesh.activate`)."""
        seconds = activation_delay(delay)
        if seconds:
            self._run(
                self.operations.announce_activation,
                version,
                seconds,
                secret=secret,
                sender="mesh-client",
            )
            time.sleep(seconds)
        self._run(self.operations.activate, version, secret=secret, sender="mesh-client")

    # -- jobs --------------------------------------------------------------------------------

    def pub(
        self,
        topic: str,
        data: Any = None,
        *,
        job_id: str = "",
        pending: Duration | None = None,
    ) -> str:
        """Start a job (or reserve it, with ``pending``); returns its id once committed."""
        return self._run(self.operations.pub, topic, data, job_id=job_id, pending=pending)

    def pubsub(
        self, topic: str, data: Any = None, *, timeout: float = 60.0, job_id: str = ""
    ) -> dict[str, Any]:
        """Start a job and wait for it: its data, or :class:`JobFailed`/:class:`JobTimeout`."""
        return self.wait(self.pub(topic, data, job_id=job_id), timeout=timeout).data

    def signal(self, topic: str, data: Any = None, *, code: int = 200) -> int:
        """Resume the hooks waiting on ``topic`` that match ``data``; returns how many."""
        return self._run(self.operations.signal, topic, data, code)

    def interrupt(
        self, job_id: str, *, reason: str = "interrupted", code: int = 410, descend: bool = False
    ) -> bool:
        """Interrupt a running job (and with ``descend`` its children); False if finished."""
        return self._run(
            self.operations.interrupt, job_id, reason=reason, code=code, descend=descend
        )

    def _start_workflow(
        self, workflow: Callable[..., Any] | str, args: tuple[Any, ...], task_queue: str, key: str
    ) -> ClientWorkflowHandle[Any]:
        name, sent = workflow_name(workflow), start_arguments(workflow, args)
        key = self._run(self.operations.start_workflow, name, sent, task_queue, key)
        return ClientWorkflowHandle(self, key, result_type(workflow))

    if TYPE_CHECKING:
        start_workflow: SyncStart
        execute_workflow: SyncExecute
    else:

        def start_workflow(
            self, workflow, /, *args, task_queue: str = "default", workflow_id: str = ""
        ):
            """Start a workflow written as code (a function, or its name) with ``args`` on
            ``task_queue``; a handle once its start is committed (:class:`DuplicateJob` if
            the id is taken). Typed by the function (:mod:`mesh.model.signatures`)."""
            return self._start_workflow(workflow, args, task_queue, workflow_id)

        def execute_workflow(
            self, workflow, /, *args, task_queue: str = "default", workflow_id: str = ""
        ):
            """Start a workflow and wait for its result."""
            return self._start_workflow(workflow, args, task_queue, workflow_id).result()

    # -- schedules ---------------------------------------------------------------------------

    def create_schedule(
        self,
        schedule_id: str,
        workflow: Callable[..., Any] | str,
        args: Any = None,
        *,
        replace: bool = False,
        **when: Any,
    ) -> bool:
        """Start ``workflow`` with ``args`` on a schedule: ``cron="*/5 * * * *"`` (with
        ``time_zone=``) or ``every="30 seconds"`` (with ``offset=``); ``task_queue=``,
        ``overlap=`` (skip, buffer_one, allow_all, cancel_other, terminate_other),
        ``catchup_window=``, ``jitter=``; ``graph=True`` for a YAML graph's topic, ``args``
        its job's data. True if new (an existing id is refused unless ``replace``)."""
        spec = spec_for(schedule_id, workflow, args, **when)
        return self._run(self.operations.create_schedule, spec, replace=replace)

    def describe_schedule(self, schedule_id: str) -> ScheduleDescription:
        """The schedule, its next five fire times, its last runs and its counts."""
        return self._run(self.operations.describe_schedule, schedule_id)

    def list_schedules(self, *, after: str = "", limit: int = 100) -> list[ScheduleDescription]:
        return self._run(self.operations.list_schedules, after=after, limit=limit)

    def pause_schedule(self, schedule_id: str) -> None:
        self._run(self.operations.pause_schedule, schedule_id)

    def resume_schedule(self, schedule_id: str) -> None:
        """Go on from now (the ticks that fell while it was paused are not run)."""
        self._run(self.operations.resume_schedule, schedule_id)

    def trigger_schedule(self, schedule_id: str) -> str:
        """Start a run now, outside its ticks; its workflow id."""
        return self._run(self.operations.trigger_schedule, schedule_id)

    def backfill_schedule(self, schedule_id: str, start: datetime, end: datetime) -> list[str]:
        """Start the runs of the schedule's ticks in [start, end] (aware datetimes) that
        have none, whatever its catch-up window says; their workflow ids."""
        return self._run(self.operations.backfill_schedule, schedule_id, start, end)

    def delete_schedule(self, schedule_id: str) -> None:
        self._run(self.operations.delete_schedule, schedule_id)

    @overload
    def get_handle(self, workflow_id: str) -> ClientWorkflowHandle[Any]: ...

    @overload
    def get_handle(self, workflow_id: str, result_type: type[R]) -> ClientWorkflowHandle[R]: ...

    def get_handle(self, workflow_id: str, result_type: Any = Any) -> ClientWorkflowHandle[Any]:
        """A handle to the workflow ``workflow_id`` (started by anyone); its result arrives
        as ``result_type`` when given (a dataclass, ...), else as JSON values."""
        return ClientWorkflowHandle(self, workflow_id, result_type)

    def scrub(self, job_id: str) -> bool:
        """Delete a finished job and its data now (its id becomes free)."""
        return self._run(self.operations.scrub, job_id)

    def get_job(self, job_id: str, *, details: bool = True) -> JobRecord:
        return self._run(self.operations.get_job, job_id, details=details)

    def get_status(self, job_id: str) -> WorkflowStatus:
        return self._run(self.operations.get_status, job_id)

    def get_state(self, job_id: str) -> dict[str, Any]:
        return self._run(self.operations.get_state, job_id)

    def get_query_state(self, job_id: str, fields: list[str]) -> dict[str, Any]:
        return self._run(self.operations.get_query_state, job_id, fields)

    def get_raw(self, job_id: str) -> dict[str, Any]:
        return self._run(self.operations.get_raw, job_id)

    def export(self, job_id: str) -> dict[str, Any]:
        return self._run(self.operations.export, job_id)

    def describe(self, workflow_id: str) -> WorkflowDescription:
        """Where a workflow stands, the calls it waits for (attempts, next retry, last
        failure), the live nodes of its task queue and what looks wrong."""
        return self._run(self.operations.describe_workflow, workflow_id)

    def wait_result(self, job_id: str, *, timeout: float | None = None) -> Any:
        """Like :meth:`wait`, but only the ``result`` of a job that is done (a workflow's
        return value), waiting as long as it takes unless given a timeout."""
        return self.wait(job_id, timeout=timeout).data.get("result")

    def wait(self, job_id: str, *, timeout: float | None = 60.0) -> JobRecord:
        """Block until the job finishes or persists: its record if done or persisted, else
        :class:`JobFailed`; :class:`JobTimeout` if it is still running after ``timeout``
        seconds (None: wait as long as it takes). No pooled connection is held while it
        waits: the client's waits share one listening connection."""
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        woken = threading.Event()
        waiter = self.waiters.add(job_id, woken.set)
        try:
            self.waiters.finish(self.get_job(job_id, details=False))  # it may have ended
            while not waiter.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JobTimeout(f"job {job_id!r} is still running after {timeout:g} s")
                if not woken.wait(min(left, self.recheck)) or not self.waiters.listening:
                    # no notice (or no listener): read it ourselves, and listen again
                    self.waiters.finish(self.get_job(job_id, details=False))
                    if not self.waiters.listening and not waiter.done:
                        self.waiters.remove(waiter)
                        waiter = self.waiters.add(job_id, woken.set)
                woken.clear()
        finally:
            self.waiters.remove(waiter)
        record = self.get_job(job_id)
        if record.status != "done" and not record.persisted:
            raise record.failure()
        return record


class ClientWorkflowHandle(Generic[R]):
    """A workflow written as code, seen from a :class:`MeshClient` (the synchronous twin of
    :class:`mesh.handle.WorkflowHandle`)."""

    def __init__(self, client: MeshClient, workflow_id: str, returns: Any = Any) -> None:
        self.client = client
        self.workflow_id = workflow_id
        self.returns = returns

    def result(self, *, timeout: float | None = None) -> R:
        """The workflow's return value once it ends (however long that takes, unless
        ``timeout`` seconds: then :class:`JobTimeout`), as its function's return type;
        :class:`JobFailed` when it failed or was cancelled."""
        record = self.client.wait(self.workflow_id, timeout=timeout)
        value = record.data.get("result")
        return cast(R, from_json(value, self.returns, f"the result of {self.workflow_id!r}"))

    def status(self) -> WorkflowStatus:
        return self.client.get_status(self.workflow_id)

    def signal(self, signal_id: str, data: Any = None) -> bool:
        """Send the signal ``signal_id``; False if the workflow is not running."""
        operations = self.client.operations
        return self.client._run(operations.signal_workflow, self.workflow_id, signal_id, data)

    def cancel(self) -> bool:
        """Ask the workflow to stop; False if it is not running."""
        return self.client._run(self.client.operations.cancel_workflow, self.workflow_id)

    def terminate(self, reason: str = "terminated") -> bool:
        """End the workflow at once, its code not told; False if it is not running."""
        operations = self.client.operations
        return self.client._run(operations.terminate_workflow, self.workflow_id, reason)

    def export(self, allow: Sequence[str] | None = None) -> dict[str, Any]:
        """``data``, ``state``, ``status`` and ``timeline``, or the parts ``allow`` names."""
        return self.client._run(self.client.operations.export_workflow, self.workflow_id, allow)

    def describe(self) -> WorkflowDescription:
        """See :meth:`mesh.handle.WorkflowHandle.describe`."""
        return self.client.describe(self.workflow_id)

    def state(self) -> dict[str, Any]:
        return self.client.get_state(self.workflow_id)


class SyncStart(Protocol):
    """``MeshClient.start_workflow`` as type checkers see it (:mod:`mesh.model.signatures`)."""

    @overload
    def __call__(
        self,
        workflow: Callable[[], Awaitable[R]],
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> ClientWorkflowHandle[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1], Awaitable[R]],
        a1: A1,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> ClientWorkflowHandle[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2], Awaitable[R]],
        a1: A1,
        a2: A2,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> ClientWorkflowHandle[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> ClientWorkflowHandle[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> ClientWorkflowHandle[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4, A5], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        a5: A5,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> ClientWorkflowHandle[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4, A5, A6], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        a5: A5,
        a6: A6,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> ClientWorkflowHandle[R]: ...

    @overload
    def __call__(
        self, workflow: str, /, *args: Any, task_queue: str = "default", workflow_id: str = ""
    ) -> ClientWorkflowHandle[Any]: ...


class SyncExecute(Protocol):
    """``MeshClient.execute_workflow`` as type checkers see it (:mod:`mesh.model.signatures`)."""

    @overload
    def __call__(
        self,
        workflow: Callable[[], Awaitable[R]],
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> R: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1], Awaitable[R]],
        a1: A1,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> R: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2], Awaitable[R]],
        a1: A1,
        a2: A2,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> R: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> R: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> R: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4, A5], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        a5: A5,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> R: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1, A2, A3, A4, A5, A6], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        a4: A4,
        a5: A5,
        a6: A6,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> R: ...

    @overload
    def __call__(
        self, workflow: str, /, *args: Any, task_queue: str = "default", workflow_id: str = ""
    ) -> Any: ...
