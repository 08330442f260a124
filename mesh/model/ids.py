"""Identifiers: app ids, topics and node guids.

App ids and topics are stored as column values and used to derive NOTIFY channel names; they
are never formatted into SQL. They are still validated strictly so that operators see the
mistake at the edge (CLI, config) rather than deep inside the mesh.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import re
import secrets

from mesh.errors import InvalidIdentifier

MAX_NAME_LENGTH = 100
ENGINE_STREAM = "engine"
"""The stream of an app that its engines consume (worker responses, transitions, timers)."""

_APP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_TOPIC = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def validate_app_id(app_id: str) -> str:
    """Return ``app_id`` unchanged, or raise :class:`InvalidIdentifier` saying what is allowed."""
    _check(
        app_id, "app id", _APP_ID, "letters, digits, '-' and '_', starting with a letter or digit"
    )
    return app_id


def validate_topic(topic: str) -> str:
    """Return ``topic`` unchanged, or raise :class:`InvalidIdentifier` saying what is allowed.

    The name ``engine`` is reserved for the app's engine stream.
    """
    _check(
        topic, "topic", _TOPIC, "letters, digits, '.', '-' and '_', starting with a letter or digit"
    )
    if topic == ENGINE_STREAM:
        raise InvalidIdentifier(
            f"topic {topic!r} is reserved for the app's engine stream; choose another topic name"
        )
    return topic


def validate_stream(stream: str) -> str:
    """A stream is either the engine stream or a worker topic."""
    return stream if stream == ENGINE_STREAM else validate_topic(stream)


def _check(value: str, kind: str, pattern: re.Pattern[str], allowed: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidIdentifier(f"{kind} must be a non-empty string of {allowed}")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidIdentifier(
            f"{kind} {value[:40]!r}... is {len(value)} characters long; "
            f"the limit is {MAX_NAME_LENGTH}"
        )
    if not pattern.fullmatch(value):
        raise InvalidIdentifier(f"{kind} {value!r} is not allowed: use only {allowed}")


@functools.lru_cache(maxsize=4096)
def stream_channel(app_id: str, stream: str) -> str:
    """The NOTIFY channel that wakes consumers of one stream.

    Must match ``mesh.stream_channel()`` in ``schema.sql``: ``mesh_s_`` and the first 24 hex
    digits of md5(app || '/' || stream). Hashing keeps it a valid identifier under 63 bytes.
    """
    digest = hashlib.md5(f"{app_id}/{stream}".encode(), usedforsecurity=False).hexdigest()
    return "mesh_s_" + digest[:24]


def wake_channel(app_id: str, stream: str) -> str:
    """The channel of wake-ups every consumer of the stream answers (the elected poller's,
    the reaper's, a drain's), apart from the enqueues' (see :mod:`mesh.runtime.consumer.wakeups`).
    Must match ``mesh.stream_channel(app, stream) || '_w'`` in the queries."""
    return stream_channel(app_id, stream) + "_w"


def _random_name(random_bytes: int) -> str:
    """Random lower-case letters and digits 2-7 (base32): safe in channel names, and never
    starting with '-', so a command line cannot take one for an option."""
    return base64.b32encode(secrets.token_bytes(random_bytes)).decode().lower().rstrip("=")


def new_guid() -> str:
    """A node id (also a job's generation id): 24 random base32 characters (120 bits)."""
    return _random_name(15)


_message_prefix = _random_name(10)
_message_counter = itertools.count(1)


def new_message_id() -> str:
    """A message id, unique across processes: this process's random prefix and a counter.

    Costs no system call, unlike a random id per message (messages are made by the thousand).
    """
    return f"{_message_prefix}{next(_message_counter):x}"


def quorum_channel(app_id: str, *, guid: str = "", topic: str = "") -> str:
    """The quorum NOTIFY channel: the app's general one, a member's (``guid``) or a topic's."""
    target = f"guid:{guid}" if guid else f"topic:{topic}" if topic else ""
    digest = hashlib.md5(f"{app_id}/{target}".encode(), usedforsecurity=False).hexdigest()
    return "mesh_q_" + digest[:24]


def observer_channel(app_id: str) -> str:
    """Where a copy of every addressed quorum message goes (a pong to its pinger, a throttle
    for one member or topic), so observers (``mesh listen``, ``sub_quorum``) see all of the
    traffic; members do not listen there."""
    digest = hashlib.md5(f"{app_id}/observe".encode(), usedforsecurity=False).hexdigest()
    return "mesh_q_" + digest[:24]


def schedule_channel(app_id: str) -> str:
    """Where a schedule's creation, change or resumption is told (no payload), so the
    leader looks at the schedules at once instead of at its next planned look."""
    digest = hashlib.md5(f"{app_id}/schedules".encode(), usedforsecurity=False).hexdigest()
    return "mesh_c_" + digest[:24]


def election_channel(app_id: str) -> str:
    """Where a node that gives up a seat of the app's election says so (no payload), so
    followers try for it at once instead of on their safety interval."""
    digest = hashlib.md5(f"{app_id}/election".encode(), usedforsecurity=False).hexdigest()
    return "mesh_e_" + digest[:24]


@functools.lru_cache(maxsize=256)
def job_channel(app_id: str) -> str:
    """The NOTIFY channel on which an app's job completions (and emits) are announced."""
    digest = hashlib.md5(f"{app_id}/jobs".encode(), usedforsecurity=False).hexdigest()
    return "mesh_j_" + digest[:24]


MAX_JOB_ID_LENGTH = 255


def validate_job_id(job_id: str) -> str:
    """A job id users chose: any text without control characters, up to 255 characters."""
    if not isinstance(job_id, str) or not job_id:
        raise InvalidIdentifier("a job id is a non-empty string")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise InvalidIdentifier(
            f"job id {job_id[:40]!r}... is {len(job_id)} characters; the limit is "
            f"{MAX_JOB_ID_LENGTH}"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in job_id):
        raise InvalidIdentifier(f"job id {job_id!r} contains control characters; remove them")
    if not job_id.isascii():
        try:
            job_id.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidIdentifier(
                f"job id {job_id!r} contains a lone surrogate, which is not valid Unicode"
            ) from None
    return job_id
