"""The one error tree of mesh.

Every error a user can see derives from :class:`MeshError`, and its message says what to do
next. Driver errors are translated into these at one boundary (``mesh.pg.database``).

    MeshError
    ├── ConfigError, DocumentInvalid, ManifestInvalid, PipeError     bad input files and rules
    ├── InvalidIdentifier, InvalidPayload (PayloadTooLarge, BadSignature)
    ├── SigningRequired, FunctionNotFound, SupervisorGaveUp
    ├── DatabaseError
    │   ├── DatabaseUnavailable (ConnectionLost)                   retrying may succeed
    │   └── SchemaOutOfDate
    ├── VersionConflict, UnknownVersion, NoActiveVersion           deploying and activating
    ├── UnknownTopic, InputInvalid, DuplicateJob, UnknownHook, UnknownJob,
    │   UnknownSchedule                                            refused requests
    ├── WorkflowError                                              a job that cannot go on
    ├── JobFailed, JobTimeout                                      waiting for a job
    ├── ActivityFailed, NondeterminismError, RestrictedCall,
    │   WorkflowCancelled                                           in workflow code
    └── NonRetryableError                                          raised by activity code
"""

from __future__ import annotations

from typing import Any


class MeshError(Exception):
    """Base class of every error raised by mesh."""


class ConfigError(MeshError):
    """A configuration file or value is invalid.

    ``source`` names the file (or ``<env>``), ``key_path`` the offending key
    (``workers[0].topic``) and ``fix`` what to change.
    """

    def __init__(self, source: str, key_path: str, problem: str, fix: str = "") -> None:
        self.source = source
        self.key_path = key_path
        self.problem = problem
        self.fix = fix
        where = f"{source}: {key_path}: " if key_path else f"{source}: "
        super().__init__(where + problem + (f" (fix: {fix})" if fix else ""))


class InvalidIdentifier(MeshError):
    """An app id, topic or stream name that mesh refuses to store or route."""


class InvalidPayload(MeshError):
    """A message payload that cannot be encoded, decoded or sent."""


class PayloadTooLarge(InvalidPayload):
    """A NOTIFY payload over Postgres' 8000-byte limit, measured in encoded bytes."""


class BadSignature(InvalidPayload):
    """A quorum message or persisted control state without a valid signature of the quorum
    secret (the receiver has one and requires it)."""


class SigningRequired(MeshError):
    """A command that would write control state it cannot sign for a mesh that checks
    signatures (or with a secret other than the mesh's)."""


class FunctionNotFound(MeshError):
    """A dotted path (``package.module:function``) that does not name a callable."""


class DatabaseError(MeshError):
    """A database operation failed for a reason other than the database being unreachable."""


class DatabaseUnavailable(DatabaseError):
    """The database could not be reached or dropped the connection; retrying may succeed."""


class ConnectionLost(DatabaseUnavailable):
    """The connection failed with no answer from the server: a statement in flight may have
    committed (only its reply was lost). Retry fenced work; do not assume it was undone."""


class SchemaOutOfDate(DatabaseError):
    """The database schema is older (or newer) than this version of mesh expects."""


class SupervisorGaveUp(MeshError):
    """A supervised actor failed more often than its restart intensity allows."""


class NonRetryableError(MeshError):
    """Raise from an activity function to fail at once, skipping the remaining attempts;
    ``details`` (JSON) reach the workflow with the failure (``ActivityFailed.details``)."""

    def __init__(self, message: str, code: int = 500, *, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class DocumentInvalid(MeshError):
    """A YAML document (a manifest or a config file) that cannot be read safely: too large,
    not UTF-8, nested too deep, an alias bomb, a duplicate key. Says where and what to do."""

    def __init__(self, source: str, where: str, problem: str, fix: str) -> None:
        self.source, self.where, self.problem, self.fix = source, where, problem, fix
        super().__init__(f"{source}: {where + ': ' if where else ''}{problem} (fix: {fix})")


class ManifestInvalid(MeshError):
    """A manifest that cannot be deployed; ``problems`` lists every reason with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"the manifest has {len(problems)} problem(s); nothing was deployed:\n{listing}"
        )


class PipeError(MeshError):
    """A mapping that cannot be evaluated: unknown function, malformed pipe, or a function
    that failed on its arguments (the message says which)."""


class VersionConflict(MeshError):
    """A version that is already deployed with a different manifest."""


class UnknownVersion(MeshError):
    """Activation of a version that was never deployed."""


class NoActiveVersion(MeshError):
    """An app with nothing activated yet."""


class UnknownTopic(MeshError):
    """``pub`` to a topic no graph of the active version subscribes to."""


class InputInvalid(MeshError):
    """Job input that fails the graph's input schema; ``problems`` lists each reason."""

    def __init__(self, topic: str, problems: list[str]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"input for {topic!r} does not match the graph's input schema; no job was "
            f"started:\n{listing}"
        )


class DuplicateJob(MeshError):
    """A job id that is already taken (until that job expires and is pruned)."""


class UnknownHook(MeshError):
    """A signal on a topic no hook of the active version listens to."""


class UnknownSchedule(MeshError):
    """No schedule by that id in this app (``mesh schedule list`` shows them)."""


class UnknownJob(MeshError):
    """A job id with no job (never started, or expired and pruned)."""


class WorkflowError(MeshError):
    """A job cannot go on: a mapping failed, a result had the wrong shape, a cycle ran away.
    The job ends ``failed`` with this message; ``code`` is what its parent hears."""

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.code = code


class JobFailed(MeshError):
    """A job that ended ``failed`` or ``interrupted``: ``job_id``, ``status`` and ``error``
    (its ``type``, ``message`` and ``code``) say how; ``job`` is the job's whole record (a
    :class:`mesh.JobRecord`: data, timeline) when the reader had it."""

    def __init__(
        self, job_id: str, status: str, error: dict[str, Any] | None, *, job: Any = None
    ) -> None:
        self.job_id = job_id
        self.status = status
        self.error = error
        self.job = job
        told = (error or {}).get("message", "no error recorded")
        super().__init__(f"job {job_id!r} ended {status}: {told}")


class WrongEventLoop(MeshError):
    """A trio-only call made under asyncio (or the other way round); the message names what
    to use there instead."""


class JobTimeout(MeshError):
    """A job still running when a wait's time ran out (it goes on; wait again or interrupt)."""


class ActivityFailed(MeshError):
    """Raised in workflow code where an activity (or a child workflow) failed for good,
    after its retry policy was spent: ``type_name`` and ``message`` are the original error's,
    ``code`` its status, ``details``, ``non_retryable`` and ``traceback`` what it carried. A
    child's failure chains (``__cause__``) to the failure inside the child that caused it.
    Catch it with ``try/except`` like any error."""

    def __init__(
        self,
        type_name: str,
        message: str,
        code: int = 500,
        *,
        details: Any = None,
        non_retryable: bool = False,
        traceback: str = "",
        activity: str = "",
    ) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.code = code
        self.details = details
        """What the original error carried (``NonRetryableError(..., details=...)``)."""
        self.non_retryable = non_retryable
        """The activity said not to retry it (a :class:`NonRetryableError`)."""
        self.traceback = traceback
        """The original error's traceback, as text (where the activity raised it)."""
        self.activity = activity
        """The name of the activity or child workflow that failed."""


class NondeterminismError(MeshError):
    """A replayed workflow made another durable call than the one recorded at the same
    position: it is stopped there (nothing is recorded past it)."""


class RestrictedCall(MeshError):
    """Raised in workflow code at a call that would make a replay differ from the first run
    (the wall clock, the process's random generator, a real sleep) or that skips
    durability (an activity called directly); the message names the durable call to use."""


class WorkflowCancelled(MeshError):
    """Raised at a cancelled workflow's durable calls (``handle.cancel()``); a workflow
    may catch it to clean up, but every later durable call raises it again."""


def lone_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The only leaf of a (nested) exception group, or None if there are several.

    Trio nurseries wrap errors in groups; a command that failed for one reason should still
    report that reason plainly.
    """
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        error = pending.pop()
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        else:
            leaves.append(error)
    return leaves[0] if len(leaves) == 1 else None
