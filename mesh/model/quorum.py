"""Quorum messages: the control plane's tagged union, profiles, signing and throttle rules.

Every node's quorum member listens on three kinds of channel of its app: the general one,
its own guid's, and one per worker topic it serves (see :func:`quorum_channel`). Messages are
JSON, at most one NOTIFY payload in size; larger ones travel by reference (:class:`Ref`).

With a shared secret configured, control messages (throttle, activate, rollcall, user) carry
an HMAC-SHA256 over their encoding without the signature; receivers drop unsigned or badly
signed ones. Schema evolution: new fields last, with defaults.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import msgspec

from mesh.errors import InvalidPayload
from mesh.model.messages import Codec

MAX_THROTTLE_MS = 2_147_483_647
PAUSE = -1


class StreamProfile(msgspec.Struct, frozen=True):
    stream: str
    depth: int
    lag_seconds: float


class SystemHealth(msgspec.Struct, frozen=True):
    cpu_percent: float
    memory_used_bytes: int
    memory_free_bytes: int
    memory_total_bytes: int
    network_sent_bytes: int
    network_received_bytes: int


class Counts(msgspec.Struct, frozen=True):
    processed: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0


class Profile(msgspec.Struct, frozen=True):
    """What a member reports about itself in a pong."""

    guid: str
    app: str
    roles: list[str]
    topics: list[str]
    streams: list[StreamProfile]
    throttles: dict[str, int]
    """Effective throttle per stream this member consumes (ms; -1 paused)."""
    counts: Counts
    in_flight: int
    pid: int
    host: str
    started_at: float
    version: str
    system: SystemHealth
    clock_skew_ms: float
    """The database clock minus this host's clock."""
    quorum: dict[str, int] = msgspec.field(default_factory=dict)
    """Quorum messages this member accepted (``received.<type>``) and dropped
    (``rejected.<reason>``)."""


class _Message(msgspec.Struct, frozen=True, tag_field="type", kw_only=True):
    sender: str = ""
    """Guid of the member (or CLI) that sent it."""
    sig: str = ""


class Ping(_Message, tag="ping", frozen=True, kw_only=True):
    originator: str
    """Pongs go to this guid's channel."""
    details: bool = True


class Pong(_Message, tag="pong", frozen=True, kw_only=True):
    originator: str | None
    guid: str
    profile: Profile | None = None


class Throttle(_Message, tag="throttle", frozen=True, kw_only=True):
    throttle: int
    """Milliseconds between messages; 0 resumes, -1 pauses."""
    topic: str | None = None
    guid: str | None = None


class Activate(_Message, tag="activate", frozen=True, kw_only=True):
    version: str


class Job(_Message, tag="job", frozen=True, kw_only=True):
    topic: str
    job_id: str
    data: Any = None


class User(_Message, tag="user", frozen=True, kw_only=True):
    topic: str
    message: Any = None


class Work(_Message, tag="work", frozen=True, kw_only=True):
    originator: str = ""


class Cron(_Message, tag="cron", frozen=True, kw_only=True):
    originator: str = ""


class RollCall(_Message, tag="rollcall", frozen=True, kw_only=True):
    """Members repeat their pong every ``interval`` seconds, ``max`` times (dashboards)."""

    interval: float = 5.0
    max: int = 12
    topic: str | None = None
    guid: str | None = None


class Ref(_Message, tag="ref", frozen=True, kw_only=True):
    """An oversized message, stored in ``mesh.quorum_payloads`` under ``id``."""

    id: int


QuorumMessage = Ping | Pong | Throttle | Activate | Job | User | Work | Cron | RollCall | Ref
CONTROL_TYPES = (Throttle, Activate, RollCall, User)

_codec: Codec[QuorumMessage] = Codec(QuorumMessage, "quorum message")
encode_quorum = _codec.encode
decode_quorum = _codec.decode


def _digest(message: QuorumMessage, secret: bytes) -> str:
    unsigned = msgspec.structs.replace(message, sig="")
    return hmac.new(secret, encode_quorum(unsigned), hashlib.sha256).hexdigest()


def sign(message: QuorumMessage, secret: bytes | None) -> QuorumMessage:
    """``message`` with its signature (unchanged when there is no secret)."""
    if not secret:
        return message
    return msgspec.structs.replace(message, sig=_digest(message, secret))


def signature_ok(message: QuorumMessage, secret: bytes | None) -> bool:
    """True unless a secret is set and ``message`` is a control message without a valid sig."""
    if not secret or not isinstance(message, CONTROL_TYPES):
        return True
    return bool(message.sig) and hmac.compare_digest(message.sig, _digest(message, secret))


def validate_throttle(value: object) -> int:
    """``value`` as a throttle in ms, or :class:`InvalidPayload` saying what is allowed."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(f"throttle must be an integer number of milliseconds, not {value!r}")
    if value < PAUSE or value > MAX_THROTTLE_MS:
        raise InvalidPayload(
            f"throttle {value} is out of range: use -1 to pause, 0 to resume, or 1 to "
            f"{MAX_THROTTLE_MS} milliseconds between messages"
        )
    return value


ThrottleKey = tuple[str, str]
"""(topic, guid), each "" when not targeted."""


def effective_throttle(throttles: dict[ThrottleKey, int], topic: str, guid: str) -> int:
    """The throttle that applies to ``topic`` on node ``guid``: the most specific setting wins
    (topic on that guid, then the guid, then the topic, then the whole mesh); 0 if none."""
    for key in ((topic, guid), ("", guid), (topic, ""), ("", "")):
        if key in throttles:
            return throttles[key]
    return 0
