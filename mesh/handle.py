"""A handle to a workflow written as code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar, overload

from mesh.model.jobs import WorkflowStatus
from mesh.model.payloads import from_json
from mesh.model.signatures import A1, A2, A3, A4, A5, A6, R
from mesh.model.workflow.description import WorkflowDescription
from mesh.pg.operations import Operations

T = TypeVar("T")


class HandleOwner(Protocol):
    """What a handle asks of the :class:`~mesh.api.Mesh` that made it."""

    @property
    def operations(self) -> Operations: ...

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    async def wait_result(self, job_id: str, *, timeout: float | None = None) -> Any: ...

    async def get_status(self, job_id: str) -> WorkflowStatus: ...

    async def get_state(self, job_id: str) -> dict[str, Any]: ...


class WorkflowHandle(Generic[R]):
    """A workflow written as code, seen from a :class:`Mesh`; ``R`` is its function's return
    type when it was started by function (``Any`` by name or id)."""

    def __init__(self, mesh: HandleOwner, workflow_id: str, returns: Any = Any) -> None:
        self.mesh = mesh
        self.workflow_id = workflow_id
        self.returns = returns
        """What the result arrives as: the workflow function's return annotation."""

    async def result(self, *, timeout: float | None = None) -> R:
        """The workflow's return value once it ends (however long that takes, unless
        ``timeout`` seconds: then :class:`JobTimeout`), as its function's return type (a
        dataclass, a datetime...) when it was started by function; :class:`JobFailed`
        (its error's type and message in ``error``) when it failed or was cancelled."""
        value = await self.mesh.wait_result(self.workflow_id, timeout=timeout)
        result: R = from_json(value, self.returns, f"the result of {self.workflow_id!r}")
        return result

    async def status(self) -> WorkflowStatus:
        """running, done, failed or interrupted."""
        return await self.mesh.get_status(self.workflow_id)

    async def state(self) -> dict[str, Any]:
        return await self.mesh.get_state(self.workflow_id)

    async def describe(self) -> WorkflowDescription:
        """Where the workflow stands: status, generation, result or error (with its
        traceback and cause), the calls it waits for (each activity's attempt, next retry
        and last failure), the live nodes of its task queue, and ``warnings`` (no node
        serves its task queue, an activity keeps failing)."""
        return await self.mesh._run(self.mesh.operations.describe_workflow, self.workflow_id)

    async def export(self, allow: Sequence[str] | None = None) -> dict[str, Any]:
        """HotMesh's ``export``: ``data``, ``state``, ``status`` and ``timeline`` (each
        recorded call as ``position:name``), or only the parts ``allow`` names."""
        return await self.mesh._run(self.mesh.operations.export_workflow, self.workflow_id, allow)

    async def terminate(self, reason: str = "terminated") -> bool:
        """End the workflow at once as interrupted (HotMesh's ``interrupt``): its code is not
        told (use :meth:`cancel` to let it clean up); False if it is not running."""
        return await self.mesh._run(
            self.mesh.operations.terminate_workflow, self.workflow_id, reason
        )

    async def signal(self, signal_id: str, data: Any = None) -> bool:
        """Send the signal ``signal_id`` (a ``workflow.condition`` waits for it; one sent
        before the condition is kept for it); False if the workflow is not running."""
        return await self.mesh._run(
            self.mesh.operations.signal_workflow, self.workflow_id, signal_id, data
        )

    async def cancel(self) -> bool:
        """Ask the workflow to stop: it sees ``WorkflowCancelled`` at its next durable call
        (it may catch it to clean up); False if it is not running."""
        return await self.mesh._run(self.mesh.operations.cancel_workflow, self.workflow_id)


class AsyncStart(Protocol):
    """``start_workflow`` of :class:`~mesh.Client` and :class:`~mesh.Mesh` as type checkers see it (:mod:`mesh.model.signatures`)."""

    @overload
    def __call__(
        self,
        workflow: Callable[[], Awaitable[R]],
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> Awaitable[WorkflowHandle[R]]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1], Awaitable[R]],
        a1: A1,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> Awaitable[WorkflowHandle[R]]: ...

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
    ) -> Awaitable[WorkflowHandle[R]]: ...

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
    ) -> Awaitable[WorkflowHandle[R]]: ...

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
    ) -> Awaitable[WorkflowHandle[R]]: ...

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
    ) -> Awaitable[WorkflowHandle[R]]: ...

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
    ) -> Awaitable[WorkflowHandle[R]]: ...

    @overload
    def __call__(
        self, workflow: str, /, *args: Any, task_queue: str = "default", workflow_id: str = ""
    ) -> Awaitable[WorkflowHandle[Any]]: ...


class AsyncExecute(Protocol):
    """``execute_workflow`` of :class:`~mesh.Client` and :class:`~mesh.Mesh` as type checkers see it (:mod:`mesh.model.signatures`)."""

    @overload
    def __call__(
        self,
        workflow: Callable[[], Awaitable[R]],
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> Awaitable[R]: ...

    @overload
    def __call__(
        self,
        workflow: Callable[[A1], Awaitable[R]],
        a1: A1,
        /,
        *,
        task_queue: str = "default",
        workflow_id: str = "",
    ) -> Awaitable[R]: ...

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
    ) -> Awaitable[R]: ...

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
    ) -> Awaitable[R]: ...

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
    ) -> Awaitable[R]: ...

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
    ) -> Awaitable[R]: ...

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
    ) -> Awaitable[R]: ...

    @overload
    def __call__(
        self, workflow: str, /, *args: Any, task_queue: str = "default", workflow_id: str = ""
    ) -> Awaitable[Any]: ...
