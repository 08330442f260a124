"""The one error tree of mesh.

Every error a user can see derives from :class:`MeshError`, and its message says what to do
next. Driver errors are translated into these at one boundary (``mesh.pg.database``).
"""

from __future__ import annotations


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
    """Raise from an activity function to fail at once, skipping the remaining attempts."""

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.code = code


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
