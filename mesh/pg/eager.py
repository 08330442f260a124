"""Eager dispatch in the database (:mod:`mesh.runtime.consumer.eager_dispatch`): which of a transaction's
messages are enqueued already leased to its node, and the claims that makes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mesh.model.outcomes import Outgoing
from mesh.pg.streams import StreamClaim, enqueue_params, lines


@dataclass(frozen=True, slots=True)
class EagerOffer:
    """Slots a consumer of this node lends to a transaction that enqueues to its stream
    (eager dispatch, :mod:`mesh.runtime.consumer.eager_dispatch`): up to ``limit`` of the messages are leased
    to the node as they are enqueued, as a claim with these settings would lease them."""

    limit: int
    lease: float
    max_attempts: int


Eager = Mapping[tuple[str, str], EagerOffer]
"""Offers by (app, stream)."""


def split_eager(
    messages: Sequence[Outgoing], offers: Eager
) -> tuple[list[Outgoing], list[tuple[Outgoing, EagerOffer]]]:
    """The messages to enqueue for any consumer, and those to lease at once: visible now,
    for a stream with an offer, within its limit."""
    if not offers:
        return list(messages), []
    normal: list[Outgoing] = []
    leased: list[tuple[Outgoing, EagerOffer]] = []
    taken: dict[tuple[str, str], int] = {}
    for message in messages:
        target = (message.app, message.stream)
        offer = offers.get(target)
        if offer is None or message.delay > 0 or taken.get(target, 0) >= offer.limit:
            normal.append(message)
        else:
            taken[target] = taken.get(target, 0) + 1
            leased.append((message, offer))
    return normal, leased


def enqueue_leased_params(
    leased: Sequence[tuple[Outgoing, EagerOffer]], owner: str
) -> dict[str, str]:
    """The ``enqueue_leased`` query's parameters."""
    params = enqueue_params([message for message, _ in leased])
    del params["delays"]  # visible now
    return {
        **params,
        "owner": owner,
        "default_attempts": lines(offer.max_attempts for _, offer in leased),
        "leases": lines(offer.lease for _, offer in leased),
    }


def leased_claims(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, str], list[StreamClaim]]:
    """The ``enqueue_leased`` query's rows as claims, by (app, stream)."""
    claims: dict[tuple[str, str], list[StreamClaim]] = {}
    for app, stream, *claim in rows:
        claims.setdefault((app, stream), []).append(StreamClaim(*claim))
    return claims
