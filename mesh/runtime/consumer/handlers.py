"""What a consumer runs: a handler per message (workers) or a handler per batch (the
engine), and what each reports."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from mesh.model.outcomes import DeadLetter, Outcome, Retry
from mesh.runtime.streams import StreamClaim

Handler = Callable[[StreamClaim], Coroutine[Any, Any, Outcome]]
"""Decides one claimed message's outcome; the consumer settles it."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a batch handler did with a batch."""

    next_claims: list[StreamClaim]
    """The batch claimed in the same transaction (at most the ``claim_next`` asked for)."""
    acked: int = 0
    dead_lettered: int = 0
    lost: int = 0
    """Claims whose lease was gone when the batch ran (another consumer has them)."""


class BatchHandler(Protocol):
    """Handles a claimed batch in one transaction that acks it (fenced by each claim's
    attempt) and claims up to ``claim_next`` more. ``retry_of``: an earlier run of these
    claims failed with the connection, and their leases run from no earlier than this trio
    time (what it finds no longer held was handled by that run). Raises
    :class:`DatabaseUnavailable` when the batch should be run again."""

    async def __call__(
        self,
        claims: list[StreamClaim],
        *,
        claim_next: int,
        lease: float,
        retry_of: float | None,
    ) -> BatchResult: ...


def fallback_outcome(claim: StreamClaim, error: Exception) -> Outcome:
    """The outcome of a message whose handler crashed: retried while attempts remain."""
    message = f"{type(error).__name__}: {error}"
    if claim.attempt >= claim.max_attempts:
        return DeadLetter(error=message)
    return Retry(delay=1.0, error=message)
