"""mesh: a durable, self-coordinating workflow mesh on one Postgres database.

::

    from mesh import Mesh

    async with Mesh.open(dsn, app="orders", workers={"inventory.check": check}) as mesh:
        await mesh.deploy("config/orders.yaml")
        await mesh.activate("1")
        data = await mesh.pubsub("order.placed", {"orderId": "o-1"})

The names below are the public API; the modules behind them may move. ``Mesh`` (trio) and
``MeshClient`` (synchronous) are loaded on first use, so ``import mesh`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mesh.errors import (
    ActivityFailed,
    BadSignature,
    ConfigError,
    ConnectionLost,
    DatabaseError,
    DatabaseUnavailable,
    DocumentInvalid,
    DuplicateJob,
    FunctionNotFound,
    InputInvalid,
    InvalidIdentifier,
    InvalidPayload,
    JobFailed,
    JobTimeout,
    ManifestInvalid,
    MeshError,
    NoActiveVersion,
    NondeterminismError,
    NonRetryableError,
    PayloadTooLarge,
    PipeError,
    RestrictedCall,
    SchemaOutOfDate,
    SigningRequired,
    SupervisorGaveUp,
    UnknownHook,
    UnknownJob,
    UnknownSchedule,
    UnknownTopic,
    UnknownVersion,
    VersionConflict,
    WorkflowCancelled,
    WorkflowError,
    WrongEventLoop,
)
from mesh.version import __version__

if TYPE_CHECKING:
    from mesh.api import Mesh
    from mesh.client import Client
    from mesh.handle import WorkflowHandle
    from mesh.model.jobs import JobEvent, JobRecord, StepRecord, WorkflowStatus
    from mesh.model.messages import Pending
    from mesh.model.quorum import Profile, QuorumMessage
    from mesh.model.retry import RetryPolicy
    from mesh.pg.client import MeshClient
    from mesh.runtime.consumer import ConsumerSettings
    from mesh.worker import Worker

_LAZY = {
    "Mesh": "mesh.api",
    "Client": "mesh.client",
    "Worker": "mesh.worker",
    "MeshClient": "mesh.pg.client",
    "ConsumerSettings": "mesh.runtime.consumer.stream_consumer",
    "JobEvent": "mesh.model.jobs",
    "JobRecord": "mesh.model.jobs",
    "StepRecord": "mesh.model.jobs",
    "WorkflowStatus": "mesh.model.jobs",
    "Pending": "mesh.model.messages",
    "Profile": "mesh.model.quorum",
    "QuorumMessage": "mesh.model.quorum",
    "RetryPolicy": "mesh.model.retry",
    "WorkflowHandle": "mesh.handle",
}


def __getattr__(name: str) -> Any:
    if name == "workflow":  # the in-workflow API, a module
        return importlib.import_module("mesh.workflow")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mesh' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ActivityFailed",
    "BadSignature",
    "Client",
    "ConfigError",
    "ConnectionLost",
    "ConsumerSettings",
    "DatabaseError",
    "DatabaseUnavailable",
    "DocumentInvalid",
    "DuplicateJob",
    "FunctionNotFound",
    "InputInvalid",
    "InvalidIdentifier",
    "InvalidPayload",
    "JobEvent",
    "JobFailed",
    "JobRecord",
    "JobTimeout",
    "ManifestInvalid",
    "Mesh",
    "MeshClient",
    "MeshError",
    "NoActiveVersion",
    "NonRetryableError",
    "NondeterminismError",
    "PayloadTooLarge",
    "Pending",
    "PipeError",
    "Profile",
    "QuorumMessage",
    "RestrictedCall",
    "RetryPolicy",
    "SchemaOutOfDate",
    "SigningRequired",
    "StepRecord",
    "SupervisorGaveUp",
    "UnknownHook",
    "UnknownJob",
    "UnknownSchedule",
    "UnknownTopic",
    "UnknownVersion",
    "VersionConflict",
    "Worker",
    "WorkflowCancelled",
    "WorkflowError",
    "WorkflowHandle",
    "WorkflowStatus",
    "WrongEventLoop",
    "__version__",
    "workflow",
]
