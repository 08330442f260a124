"""Quorum messages: the control plane's tagged union, profiles, signing and throttle rules.

Every node's quorum member listens on three kinds of channel of its app: the general one,
its own guid's, and one per worker topic it serves (see :func:`quorum_channel`). Messages are
JSON, at most one NOTIFY payload in size; larger ones travel by reference (:class:`Ref`).

Signing: with a shared secret configured, every quorum notification is *sealed*: its JSON
body is prefixed with ``sig1:<HMAC-SHA256 of the body, hex>:``. A receiver with the secret
checks the HMAC on the raw bytes before it decodes anything, so an unsigned payload (however
malformed, huge or deeply nested) costs one HMAC and is dropped. Persisted control state (the
rows of ``mesh.throttles``) carries a signature of its own (:func:`throttle_signature`).
Schema evolution: new fields last, with defaults.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import msgspec

from mesh.errors import BadSignature, InvalidPayload
from mesh.model.durations import Duration, parse_duration
from mesh.model.limits import MAX_QUORUM_BODY_BYTES, check_json_text
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
    delay: float = 0.0
    """Seconds until the version becomes active (an announcement ahead of the switch, which
    a second ``activate`` with no delay confirms); 0: it is active now."""


class Job(_Message, tag="job", frozen=True, kw_only=True):
    topic: str
    job_id: str
    data: Any = None


class User(_Message, tag="user", frozen=True, kw_only=True):
    topic: str
    message: Any = None


class RollCall(_Message, tag="rollcall", frozen=True, kw_only=True):
    """Members repeat their pong every ``interval`` seconds, ``max`` times (dashboards)."""

    interval: float = 5.0
    max: int = 12
    topic: str | None = None
    guid: str | None = None


class Ref(_Message, tag="ref", frozen=True, kw_only=True):
    """An oversized message, stored in ``mesh.quorum_payloads`` under ``id``; ``digest`` is
    the SHA-256 of the stored body, so a sealed reference vouches for what it points to."""

    id: int
    digest: str = ""


QuorumMessage = Ping | Pong | Throttle | Activate | Job | User | RollCall | Ref
"""HotMesh's ``work`` and ``cron`` are not here: its engine drains signal work items and
time hooks on them, where mesh's signals and timers are stream messages (nothing to drain).
"""


class JobNotices(msgspec.Struct, frozen=True):
    """Job events told to the quorum as ``job`` messages, sealed with the mesh's secret: an
    app asks for them with ``quorum.announce_jobs`` (each costs a NOTIFY that every member
    decodes, so they are off by default; waiters hear the job channel either way)."""

    sender: str
    secret: bytes | None = None

    def payloads(self, events: Sequence[tuple[str, str, str]]) -> list[str]:
        """One sealed ``job`` message per (topic, job id, status)."""
        return [
            seal(
                encode_quorum(
                    Job(sender=self.sender, topic=topic, job_id=key, data={"status": status})
                ),
                self.secret,
            ).decode()
            for topic, key, status in events
        ]


MAX_ACTIVATION_DELAY = 3600.0


def activation_delay(value: Duration) -> float:
    """Seconds an activation waits after its announcement: a number or a duration ('30s'),
    from 0 to an hour. :class:`InvalidPayload` otherwise."""
    seconds = parse_duration(value)
    if not 0 <= seconds <= MAX_ACTIVATION_DELAY:  # False for nan too
        raise InvalidPayload(
            f"an activation delay of {value!r} is not from 0 to {MAX_ACTIVATION_DELAY:g} "
            "seconds; give e.g. 5 or '30 seconds'"
        )
    return seconds


def addressed_to(message: QuorumMessage) -> str:
    """The member a message was sent to ('' for one sent to everyone or to a topic): the
    pinger for a pong, the named member for a throttle or a roll call."""
    if isinstance(message, Pong):
        return message.originator or ""
    if isinstance(message, Throttle | RollCall):
        return message.guid or ""
    return ""


_codec: Codec[QuorumMessage] = Codec(QuorumMessage, "quorum message")
encode_quorum = _codec.encode

SEAL_PREFIX = b"sig1:"
_SEAL_LENGTH = len(SEAL_PREFIX) + 64 + 1  # prefix, 64 hex digits, ':'


def decode_quorum(body: bytes | str) -> QuorumMessage:
    """The message in ``body`` (unsealed JSON); :class:`InvalidPayload` if it is too large,
    nested too deep, malformed, or not a quorum message. Bounded before anything is parsed."""
    size = len(body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body)
    if size > MAX_QUORUM_BODY_BYTES:
        raise InvalidPayload(
            f"quorum message of {size} bytes is over the {MAX_QUORUM_BODY_BYTES}-byte limit"
        )
    check_json_text(body, "quorum message")
    return _codec.decode(body)


def _hmac(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def seal(body: bytes, secret: bytes | None) -> bytes:
    """``body`` as sent: prefixed with its signature when there is a secret."""
    if not secret:
        return body
    return SEAL_PREFIX + _hmac(secret, body).encode() + b":" + body


def unseal(payload: bytes | str, secret: bytes | None) -> bytes:
    """The JSON body of a received ``payload``, checked before it is decoded.

    With a secret, a payload that is not sealed with it raises :class:`BadSignature`. Without
    one, a seal is removed unchecked (this member does not sign; it cannot tell).
    """
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    sealed = raw.startswith(SEAL_PREFIX) and raw[_SEAL_LENGTH - 1 : _SEAL_LENGTH] == b":"
    if not secret:
        return raw[_SEAL_LENGTH:] if sealed else raw
    if not sealed:
        raise BadSignature("unsigned (this member requires the quorum secret's signature)")
    body = raw[_SEAL_LENGTH:]
    signature = raw[len(SEAL_PREFIX) : _SEAL_LENGTH - 1]
    if not hmac.compare_digest(signature, _hmac(secret, body).encode()):
        raise BadSignature("signed with another secret, or altered")
    return body


def body_digest(body: bytes | str) -> str:
    """The SHA-256 (hex) a :class:`Ref` carries for the body it points to."""
    raw = body.encode() if isinstance(body, str) else body
    return hashlib.sha256(raw).hexdigest()


def throttle_signature(
    secret: bytes | None, app: str, topic: str, guid: str, throttle_ms: int
) -> str:
    """The signature of one persisted throttle row ('' without a secret)."""
    if not secret:
        return ""
    fields = "\x00".join(("throttle", app, topic, guid, str(throttle_ms)))
    return _hmac(secret, fields.encode())


def throttle_row_ok(
    secret: bytes | None, app: str, topic: str, guid: str, throttle_ms: int, signature: str
) -> bool:
    """True unless a secret is set and the row's signature is not that secret's."""
    if not secret:
        return True
    expected = throttle_signature(secret, app, topic, guid, throttle_ms)
    return hmac.compare_digest(signature.encode(), expected.encode())


def key_id(secret: bytes) -> str:
    """A fingerprint of the quorum secret (safe to store): nodes record it, so a command
    without the secret, or with another one, can refuse before it writes control state."""
    return _hmac(secret, b"mesh quorum key id")[:16]


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
