"""The quorum member: every node's seat in the control plane.

It listens (through the node's one listener) on the app's general channel, its own guid's
channel and one channel per worker topic the node serves. It answers pings with the node's
profile, repeats pongs on a ``rollcall``, applies throttles (re-reading ``mesh.throttles``, the
source of truth, on every throttle message and every ``refresh_interval``), and hands every
message to ``sub_quorum`` subscribers.

Anyone who can log in to the database can NOTIFY these channels, with any payload. So with a
quorum secret, the seal is checked on the raw bytes before anything is decoded; a body is
decoded only within the size and nesting limits; a throttle row whose signature is not the
secret's is ignored. Bad input (unsigned, malformed, too deep, unknown types, impossible
throttles) is counted by reason and logged at most once per reason every 10 s; it never stops
the member, and neither does a subscriber callback that raises.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import typing
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from actors.worker import WorkerStatistics
from mesh.errors import BadSignature, DatabaseError, InvalidPayload
from mesh.model.ids import observer_channel
from mesh.model.log_limit import LogLimit
from mesh.model.quorum import (
    Counts,
    Ping,
    Pong,
    Profile,
    QuorumMessage,
    Ref,
    RollCall,
    StreamProfile,
    SystemHealth,
    Throttle,
    addressed_to,
    validate_throttle,
)
from mesh.runtime.actor import Actor, ActorStatistics
from mesh.runtime.consumer.actor import StreamActorStatistics
from mesh.runtime.node import Node
from mesh.runtime.quorum_client import QuorumClient
from mesh.version import __version__

log = logging.getLogger(__name__)

Subscriber = Callable[[QuorumMessage], None]
PRUNE_INTERVAL = 300.0
"""Seconds between deletions of stored oversized messages older than an hour."""
MESSAGE_KINDS = tuple(
    sorted(kind.__name__.lower() for kind in typing.get_args(QuorumMessage) if kind is not Ref)
)
"""What ``mesh_quorum_messages`` counts, by type (a stored oversized message, a ref, is
counted as the message it refers to)."""
REJECT_REASONS = (
    "bad_signature",
    "bad_throttle",
    "bad_throttle_signature",
    "mailbox_full",
    "malformed",
    "subscriber_full",
    "unresolvable",
)
"""Why a quorum message is dropped (``mesh_quorum_rejected``)."""


class QuorumActor(Actor[tuple[str, bool]]):
    name = "quorum"

    def __init__(
        self,
        node: Node,
        *,
        roles: list[str],
        topics: list[str],
        system_health: Callable[[], SystemHealth],
        refresh_interval: float = 60.0,
    ) -> None:
        super().__init__(mailbox_size=1000)
        self.node = node
        self.client: QuorumClient = node.quorum
        self.roles = roles
        self.topics = topics
        self.system_health = system_health
        self.refresh_interval = refresh_interval
        self.started_at = time.time()
        # Every kind and reason starts at 0, so dashboards and alerts see a sample at once.
        self.received: Counter[str] = Counter(dict.fromkeys(MESSAGE_KINDS, 0))
        self.rejected: Counter[str] = Counter(dict.fromkeys(REJECT_REASONS, 0))
        self._subscribers: list[Subscriber] = []
        self._nursery: trio.Nursery | None = None
        self._log_limit = LogLimit()
        self._ignored_rows: set[tuple[str, str, int, str]] = set()
        self._repeating: trio.CancelScope | None = None

    def sub_quorum(self, callback: Subscriber) -> None:
        """Call ``callback(message)`` for every quorum message of the app, in the order
        received (so in order per sender): those this member accepts, and copies of those
        addressed to other members or topics (pongs, targeted throttles) from the observer
        channel, which the member listens to while it has subscribers."""
        self._subscribers.append(callback)
        if len(self._subscribers) == 1:
            self.node.listener.subscribe(observer_channel(self.node.app), self._enqueue_observed)

    def unsub_quorum(self, callback: Subscriber) -> None:
        self._subscribers.remove(callback)
        if not self._subscribers:
            self.node.listener.unsubscribe(observer_channel(self.node.app), self._enqueue_observed)

    @asynccontextmanager
    async def messages(
        self, buffer: int = 1000
    ) -> AsyncIterator[trio.MemoryReceiveChannel[QuorumMessage]]:
        """``async with member.messages() as inbox: async for message in inbox: ...``

        A subscriber that falls ``buffer`` messages behind loses the oldest surplus (counted
        as ``rejected.subscriber_full``) rather than stalling the member.
        """
        send, receive = trio.open_memory_channel[QuorumMessage](buffer)

        def deliver(message: QuorumMessage) -> None:
            try:
                send.send_nowait(message)
            except trio.WouldBlock:
                self.rejected["subscriber_full"] += 1

        self.sub_quorum(deliver)
        try:
            async with receive:
                yield receive
        finally:
            self.unsub_quorum(deliver)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        channels = self.client.channels(self.topics)
        # The subscription lives as long as this run: a restarted member subscribes afresh,
        # and its earlier run's callback is gone (else every message would be handled twice).
        with self.node.listener.subscription(channels, self._enqueue):
            with trio.move_on_after(10):  # the listener may be down: polling duties still start
                await self.node.listener.wait_listening(channels)
            try:
                await self.client.register_key()
            except DatabaseError as error:
                log.warning("event=quorum_key_not_registered error=%r", str(error))
            await self._refresh_throttles()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._refresh_loop)
                task_status.started()
                async for payload, observed in self.mailbox:
                    await (self._observe(payload) if observed else self._handle(payload))

    def _enqueue(self, payload: str) -> None:
        if not self.try_send((payload, False)):
            self._reject("mailbox_full", "more notifications than the member can handle")

    def _enqueue_observed(self, payload: str) -> None:
        if not self.try_send((payload, True)):
            self._reject("mailbox_full", "more notifications than the member can handle")

    async def _refresh_loop(self) -> None:
        pruned_at = trio.current_time()
        while True:
            # Jittered: members started together do not re-read together.
            await trio.sleep(self.refresh_interval * random.uniform(0.5, 1.0))
            await self._refresh_throttles()
            if trio.current_time() - pruned_at > PRUNE_INTERVAL:
                pruned_at = trio.current_time()
                try:
                    await self.client.prune_payloads()
                except DatabaseError as error:
                    log.warning("event=quorum_prune_failed error=%r", str(error))

    async def _refresh_throttles(self) -> None:
        try:
            accepted, ignored = await self.client.load_throttles()
        except DatabaseError as error:
            log.warning("event=throttle_refresh_failed error=%r", str(error))
            return
        self.node.throttle.replace(accepted)
        for row in ignored:
            key = (row.topic, row.guid, row.throttle_ms, row.signature)
            if key not in self._ignored_rows:  # counted and logged once per row, not per read
                if len(self._ignored_rows) > 10_000:
                    self._ignored_rows.clear()
                self._ignored_rows.add(key)
                self._reject(
                    "bad_throttle_signature",
                    f"ignoring the throttle row topic={row.topic!r} guid={row.guid!r} "
                    f"throttle={row.throttle_ms}: not signed with the quorum secret",
                )

    # -- handling ---------------------------------------------------------------------------

    async def _handle(self, payload: str) -> None:
        try:
            decoded = self.client.open(payload)
        except BadSignature as error:
            return self._reject("bad_signature", f"{error}; payload={payload[:120]!r}")
        except InvalidPayload as error:
            return self._reject("malformed", f"{error}; payload={payload[:120]!r}")
        try:
            message = await self.client.resolve(decoded)
        except (DatabaseError, InvalidPayload) as error:
            return self._reject("unresolvable", str(error))
        if message is None:
            return self._reject("unresolvable", "referenced payload no longer stored")
        kind = type(message).__name__.lower()
        try:
            await self._dispatch(message)
        except InvalidPayload as error:
            return self._reject(f"bad_{kind}", str(error))
        except DatabaseError as error:
            log.warning("event=quorum_handling_failed type=%s error=%r", kind, str(error))
        self.received[kind] += 1  # counted once valid: a refused throttle is not "received"
        self._deliver(message)

    async def _observe(self, payload: str) -> None:
        """A copy of a message addressed elsewhere: checked like any other (seal, limits),
        then only shown to subscribers; this member does not act on it. One addressed to this
        member arrived on its own channel already and is skipped."""
        try:
            message = await self.client.resolve(self.client.open(payload))
        except BadSignature as error:
            return self._reject("bad_signature", f"{error}; payload={payload[:120]!r}")
        except InvalidPayload as error:
            return self._reject("malformed", f"{error}; payload={payload[:120]!r}")
        except DatabaseError as error:
            return self._reject("unresolvable", str(error))
        if message is None or addressed_to(message) == self.node.guid:
            return
        self._deliver(message)

    def _deliver(self, message: QuorumMessage) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(message)
            except Exception:
                log.exception("event=quorum_subscriber_failed type=%s", type(message).__name__)

    def _reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        held = self._log_limit.allow(reason, trio.current_time())
        if held is not None:
            log.warning(
                "event=quorum_rejected reason=%s detail=%s held_back=%d", reason, detail, held
            )

    async def _dispatch(self, message: QuorumMessage) -> None:
        match message:
            case Ping(originator=originator, details=details):
                profile = await self.profile() if details else None
                pong = Pong(originator=originator, guid=self.node.guid, profile=profile)
                await self.client.publish(pong, guid=originator)
            case Pong():
                self.client.deliver_pong(message)
            case Throttle(throttle=value, guid=guid):
                validate_throttle(value)
                if guid and guid != self.node.guid:
                    return  # addressed to another member
                # The notice is only a hint: the signed rows decide (a forged notice changes
                # nothing but a re-read).
                await self._refresh_throttles()
            case RollCall(interval=interval, max=cycles, guid=guid, topic=topic):
                if (guid and guid != self.node.guid) or (topic and topic not in self.topics):
                    return
                assert self._nursery is not None
                if self._repeating is not None:
                    self._repeating.cancel()  # one repeating roll call at a time
                self._repeating = trio.CancelScope()
                self._nursery.start_soon(
                    self._repeat_pongs,
                    self._repeating,
                    min(max(0.1, interval), 3600.0),
                    max(0, min(cycles, 1000)),
                )
            case _:
                pass  # activate, job, user: for subscribers (the engine reads versions)

    async def _repeat_pongs(self, scope: trio.CancelScope, interval: float, cycles: int) -> None:
        with scope:
            for _ in range(cycles):
                try:
                    await self.client.publish(
                        Pong(originator=None, guid=self.node.guid, profile=await self.profile())
                    )
                except DatabaseError as error:
                    log.warning("event=rollcall_pong_failed error=%r", str(error))
                await trio.sleep(interval)

    async def profile(self) -> Profile:
        """This member's profile, from real readings."""
        stats = await self.node.streams.stats(self.node.app)
        consumed = set(self.topics) | ({"engine"} if "engine" in self.roles else set())
        by_stream = {s.stream: s for s in stats}
        streams = [
            StreamProfile(name, by_stream[name].depth, round(by_stream[name].lag_seconds, 3))
            if name in by_stream
            else StreamProfile(name, 0, 0.0)
            for name in sorted(consumed)
        ]
        consumers = [
            s for a in self.node.actors if isinstance(s := a.statistics(), StreamActorStatistics)
        ]
        counts = Counts(
            processed=sum(s.consumer.acked for s in consumers),
            failed=sum(s.failures for s in consumers if isinstance(s, WorkerStatistics)),
            retried=sum(s.consumer.retried for s in consumers),
            dead_lettered=sum(s.consumer.dead_lettered for s in consumers),
        )
        return Profile(
            guid=self.node.guid,
            app=self.node.app,
            roles=self.roles,
            topics=self.topics,
            streams=streams,
            throttles={stream: self.node.throttle.effective(stream) for stream in sorted(consumed)},
            counts=counts,
            in_flight=sum(a.in_flight() for a in self.node.actors),
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=self.started_at,
            version=__version__,
            system=self.system_health(),
            clock_skew_ms=round(await self.client.clock_skew_ms(), 3),
            quorum={
                **{f"received.{kind}": n for kind, n in sorted(self.received.items())},
                **{f"rejected.{reason}": n for reason, n in sorted(self.rejected.items())},
            },
        )

    def statistics(self) -> QuorumStatistics:
        return QuorumStatistics(
            **self._base_statistics(),
            received=dict(self.received),
            rejected=dict(self.rejected),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class QuorumStatistics(ActorStatistics):
    received: dict[str, int]
    """Quorum messages accepted, by type."""
    rejected: dict[str, int]
    """Quorum messages dropped, by reason."""
