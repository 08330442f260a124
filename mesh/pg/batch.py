"""The one shape of a batch transaction, for graphs and workflows alike.

::

    BEGIN
      the engine's work: the fenced take of its claims (a lost lease means no effects),
      the locks of the jobs its messages name (in id order), then, in statements of their
      own, the reads of those jobs (what was committed before the locks were granted),
      the pure decisions, and the writes
      the next claim of the engine's stream
    COMMIT

The transaction is pipelined: statements travel together and COMMIT with the last of them,
so a batch costs two or three round trips. A deadlock, a serialization failure or a
:class:`Retry` raised by the work rolls it back and runs it again from BEGIN (at most
``attempts`` times); any other failure rolls it back and is raised. An engine plugs its
decisions in as the ``work`` function: :func:`mesh.pg.graphs.process`,
:func:`mesh.pg.workflows.process`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from psycopg.pq import TransactionStatus

from mesh.model.messages import EngineMessage
from mesh.pg.database import Connection
from mesh.pg.queries import query
from mesh.pg.streams import DEFAULT_ATTEMPTS, StreamClaim, claim_params

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message for an engine, with the claim that leased it (None: a client's message,
    handled directly)."""

    message: EngineMessage
    claim: StreamClaim | None = None


@dataclass(frozen=True, slots=True)
class NextClaim:
    """The claim a batch makes of its stream before it commits."""

    stream: str
    limit: int
    lease: float
    max_attempts: int = DEFAULT_ATTEMPTS
    """For messages that carry no retry policy (the consumer's policy)."""

    def params(self, app: str, owner: str) -> dict[str, object]:
        """The ``claim`` query's parameters for ``owner``."""
        return claim_params(
            app, self.stream, owner, self.limit, self.lease, max_attempts=self.max_attempts
        )


class Retry(Exception):
    """Raised by a batch's work to run the transaction again from BEGIN (a job key that a
    concurrent transaction took since the batch looked)."""


def transact(
    conn: Connection,
    app: str,
    owner: str,
    work: Callable[[Connection], T],
    *,
    next_claim: NextClaim | None = None,
    attempts: int = 5,
    on_failure: Callable[[], None] | None = None,
) -> tuple[T, list[StreamClaim]]:
    """Run ``work`` and the next claim in one pipelined transaction: what ``work`` returned,
    and the claims made. ``on_failure`` runs after every rollback (an engine forgets what
    it kept in memory of the attempt)."""
    for attempt in range(attempts):
        try:
            claiming = None
            with conn.pipeline():
                conn.execute("BEGIN")
                result = work(conn)
                if next_claim is not None:
                    claiming = conn.execute(query("claim"), next_claim.params(app, owner))
                conn.execute("COMMIT")
            claims = [StreamClaim(*row) for row in claiming.fetchall()] if claiming else []
            return result, claims
        except (Retry, psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            roll_back(conn)
            if on_failure is not None:
                on_failure()
            if attempt == attempts - 1:
                raise
        except BaseException:
            roll_back(conn)
            if on_failure is not None:
                on_failure()
            raise
    raise AssertionError("unreachable")


def roll_back(conn: Connection) -> None:
    """End a transaction that failed midway. A connection that died needs nothing, and its
    error must not hide the one that ended the transaction (the pool discards it)."""
    if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")
