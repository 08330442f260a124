"""The quorum as trio code uses it: publish, subscribe, roll call, throttle.

Used by a node's quorum member and by one-shot tools (the CLI) alike; each needs a database
pool and a listener (a node has both; ``mesh rollcall`` starts its own).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import trio

from mesh.errors import InvalidPayload, SigningRequired
from mesh.model.ids import new_guid, quorum_channel, validate_stream, validate_topic
from mesh.model.limits import check_text, check_value
from mesh.model.quorum import (
    Ping,
    Pong,
    Profile,
    QuorumMessage,
    Ref,
    Throttle,
    ThrottleKey,
    User,
    decode_quorum,
    throttle_row_ok,
    unseal,
)
from mesh.pg import quorum
from mesh.pg.database import Database
from mesh.pg.listener import Listener
from mesh.pg.quorum import ThrottleRow

QUORUM_TYPES = frozenset(typing.get_args(QuorumMessage))


class QuorumClient:
    def __init__(
        self,
        db: Database,
        listener: Listener,
        *,
        app: str,
        guid: str | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.db = db
        self.listener = listener
        self.app = app
        self.guid = guid or new_guid()
        self.secret = secret
        self._pong_callbacks: list[Callable[[Pong], None]] = []

    def channels(self, topics: Sequence[str] = ()) -> list[str]:
        """The channels a member listens on: general, its own, and one per topic it serves."""
        return [
            quorum_channel(self.app),
            quorum_channel(self.app, guid=self.guid),
            *(quorum_channel(self.app, topic=t) for t in topics),
        ]

    def subscribe(
        self, callback: Callable[[str], None], *, general: bool = True, own: bool = True
    ) -> None:
        """Deliver raw payloads from the general and/or this client's own channel."""
        if general:
            self.listener.subscribe(quorum_channel(self.app), callback)
        if own:
            self.listener.subscribe(quorum_channel(self.app, guid=self.guid), callback)

    async def publish(self, message: QuorumMessage, *, guid: str = "", topic: str = "") -> None:
        """Send ``message`` (signed when a secret is set) to the general channel, or a
        member's (``guid``), or a topic's."""
        stamped = msgspec.structs.replace(message, sender=self.guid)
        await self.db.run(
            quorum.publish, self.app, stamped, guid=guid, topic=topic, secret=self.secret
        )

    async def pub_quorum(
        self, message: QuorumMessage | str, data: Any = None, *, guid: str = "", topic: str = ""
    ) -> None:
        """Send a quorum message of any type (HotMesh's ``pubQuorum``), signed when a secret
        is set: ``pub_quorum(Ping(originator=...))``, or ``pub_quorum("topic", data)`` for a
        user message to every member's ``sub_quorum`` subscribers. ``guid`` or ``topic``
        address one member's or one topic's channel instead of the general one.

        :class:`InvalidIdentifier` for a bad topic, :class:`InvalidPayload` for a message
        that cannot travel (nested too deep, NUL characters, lone surrogates, over 1 MiB),
        :class:`TypeError` for what is not a quorum message."""
        if isinstance(message, str):
            validate_topic(message)
            check_value(data, "the message")
            message = User(topic=message, message=data)
        elif type(message) not in QUORUM_TYPES or isinstance(message, Ref):
            raise TypeError(
                f"{type(message).__name__} is not a quorum message: send one of "
                f"{', '.join(sorted(t.__name__ for t in QUORUM_TYPES if t is not Ref))}, or "
                "pub_quorum(topic, data) for a user message"
            )
        else:
            check_value(msgspec.to_builtins(message), "the message")
        if topic:
            validate_topic(topic)
        await self.publish(message, guid=guid, topic=topic)

    async def prune_payloads(self) -> int:
        """Delete stored oversized messages older than an hour."""
        return await self.db.run(quorum.prune_payloads)

    def open(self, payload: str) -> QuorumMessage:
        """The message in a received notification: the seal checked on the raw bytes first
        (with a secret), then the body decoded within the size and depth limits. Raises
        :class:`~mesh.errors.BadSignature` or :class:`InvalidPayload`."""
        return decode_quorum(unseal(payload, self.secret))

    async def resolve(self, message: QuorumMessage) -> QuorumMessage | None:
        """The message a reference points to (None if it was pruned); others unchanged."""
        return await self.db.run(quorum.resolve, self.app, message)

    async def signing_problem(self) -> str | None:
        """Why members would ignore this client (it lacks the mesh's secret), or None."""
        try:
            await self.db.run(quorum.check_signing, self.app, self.secret)
        except SigningRequired as error:
            return str(error)
        return None

    async def register_key(self) -> None:
        """Record this member's secret fingerprint, so commands without it are refused."""
        if self.secret:
            await self.db.run(quorum.register_key, self.app, self.secret)

    async def set_throttle(self, throttle: int, *, topic: str = "", guid: str = "") -> None:
        """Persist and announce a throttle ('' targets nothing narrower: the whole mesh, or
        every topic of ``guid``). Raises :class:`~mesh.errors.SigningRequired` when the
        mesh's nodes would ignore it."""
        if topic:
            validate_stream(topic)
        if guid:
            check_text(guid, "the guid")
        notice = Throttle(
            sender=self.guid, throttle=throttle, topic=topic or None, guid=guid or None
        )
        await self.db.run(
            quorum.set_throttle,
            self.app,
            throttle,
            topic=topic,
            guid=guid,
            notice=notice,
            secret=self.secret,
        )

    async def load_throttles(self) -> tuple[dict[ThrottleKey, int], list[ThrottleRow]]:
        """The persisted throttles this member applies, and the rows it ignores because
        their signature is not the secret's (only when it has one)."""
        rows = await self.db.run(quorum.load_throttles, self.app)
        accepted: dict[ThrottleKey, int] = {}
        rejected: list[ThrottleRow] = []
        for row in rows:
            if throttle_row_ok(
                self.secret, self.app, row.topic, row.guid, row.throttle_ms, row.signature
            ):
                accepted[(row.topic, row.guid)] = row.throttle_ms
            else:
                rejected.append(row)
        return accepted, rejected

    async def clock_skew_ms(self) -> float:
        return await self.db.run(quorum.clock_skew_ms)

    def listen_for_pongs(self) -> None:
        """For a client that is not a member (the CLI): take pongs off its own channel."""

        def receive(payload: str) -> None:
            try:
                message = self.open(payload)
            except InvalidPayload:
                return
            if isinstance(message, Pong):
                self.deliver_pong(message)

        self.listener.subscribe(quorum_channel(self.app, guid=self.guid), receive)

    def on_pong(self, callback: Callable[[Pong], None]) -> None:
        self._pong_callbacks.append(callback)

    def deliver_pong(self, pong: Pong) -> None:
        for callback in self._pong_callbacks:
            callback(pong)

    async def roll_call(self, delay: float = 0.5) -> list[Profile]:
        """Ping every member and return the profiles that answer within ``delay`` seconds
        (one per member; the latest if one answers twice)."""
        profiles: dict[str, Profile] = {}

        def collect(pong: Pong) -> None:
            if pong.originator == self.guid and pong.profile is not None:
                profiles[pong.guid] = pong.profile

        self.on_pong(collect)
        try:
            await self.publish(Ping(originator=self.guid, details=True))
            await trio.sleep(delay)  # the answering window is the roll call's definition
        finally:
            self._pong_callbacks.remove(collect)
        return sorted(profiles.values(), key=lambda p: (p.started_at, p.guid))
