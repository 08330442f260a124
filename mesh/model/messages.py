"""Stream messages: frozen msgspec Structs in one tagged union, with one cached codec.

Schema evolution rule: new fields go last and carry defaults, so a node running the previous
version still decodes what a newer node wrote.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

import msgspec

from mesh.errors import InvalidPayload, PayloadTooLarge
from mesh.model.ids import ENGINE_STREAM
from mesh.model.limits import MAX_DEPTH, check_json_text, check_text, check_value
from mesh.model.retry import RetryPolicy

Status = Literal["success", "error", "pending"]
M = TypeVar("M")

# Priorities from HotMesh's STREAM_PRIORITY_MAP: higher is claimed first.
PRIORITY_REQUEST = 1
PRIORITY_RESPONSE = 2


class ErrorInfo(msgspec.Struct, frozen=True):
    """What went wrong in a handler, as reported to the engine and kept on dead letters."""

    message: str
    type: str = "Error"
    code: int = 500
    retryable: bool = True
    traceback: str = ""
    """Where it was raised (an activity's traceback, as text)."""
    details: Any = None
    """What the error carried for its caller (JSON: ``NonRetryableError(details=...)``)."""


class ActivityRequest(msgspec.Struct, frozen=True, tag="request", tag_field="type"):
    """Work for a worker topic. ``data`` is the activity's input."""

    id: str
    app: str
    topic: str
    data: Any = None
    job_id: str = ""
    activity_id: str = ""
    reply_to: str = ENGINE_STREAM
    retry: RetryPolicy | None = None
    sent_at: float = 0.0
    """Wall-clock seconds when the sender enqueued it (latency accounting only)."""
    job_gid: str = ""
    """The generation of the job that asked (the engine refuses answers for an older run)."""
    dimension: str = ""
    """Where in the job's cycles the asking activity runs ('' before any re-entry)."""
    trace: str = ""
    """The job's trace context (a W3C traceparent; '' without telemetry)."""
    heartbeat: Any = None
    """What the previous attempt last reported with ``activity.heartbeat()`` (None: none)."""


class ActivityResponse(msgspec.Struct, frozen=True, tag="response", tag_field="type"):
    """A worker's answer to one :class:`ActivityRequest`, written to the request's ``reply_to``.

    ``status`` is ``success`` (code 200), ``pending`` (code 202: the activity stays open and
    more responses may follow) or ``error`` (the handler failed for good; ``error`` says why).
    """

    request_id: str
    app: str
    topic: str
    status: Status
    code: int
    data: Any = None
    error: ErrorInfo | None = None
    job_id: str = ""
    activity_id: str = ""
    attempts: int = 1
    request_sent_at: float = 0.0
    job_gid: str = ""
    dimension: str = ""


class ParentRef(msgspec.Struct, frozen=True):
    """The await activity a child job reports its result to."""

    job_id: str
    gid: str
    activity_id: str
    dimension: str


class StartJob(msgspec.Struct, frozen=True, tag="start", tag_field="type"):
    """Start a job of the graph subscribed to ``topic`` (an await activity's child)."""

    id: str
    app: str
    topic: str
    data: Any = None
    job_id: str = ""
    parent: ParentRef | None = None
    sent_at: float = 0.0
    pending: float | None = None
    """Reserve the job for this many seconds instead of running it (see ``pub``)."""
    trace: str = ""
    """The trace context the job joins (a W3C traceparent; '' without telemetry)."""


ResumeKind = str
"""wake, signal, child, reenter: each read by the activity type it resumes."""


class Resume(msgspec.Struct, frozen=True, tag="resume", tag_field="type"):
    """Continue one activity of a running job.

    ``wake``: a hook's sleep ended; ``signal``: a hook received ``data``; ``child``: an awaited
    child job finished with ``code`` and ``data``; ``reenter``: a cycle re-enters the ancestor
    ``activity_id`` in the new ``dimension`` with ``data`` as its input.
    """

    id: str
    app: str
    kind: ResumeKind
    job_id: str
    gid: str
    activity_id: str
    dimension: str
    code: int = 200
    data: Any = None
    sent_at: float = 0.0


class InterruptJob(msgspec.Struct, frozen=True, tag="interrupt", tag_field="type"):
    """Stop a running job: it ends ``interrupted`` (and its parent hears ``code``)."""

    id: str
    app: str
    job_id: str
    reason: str = "interrupted"
    code: int = 410
    descend: bool = False
    """Interrupt the job's running children (and theirs) too."""
    sent_at: float = 0.0


StreamMessage = ActivityRequest | ActivityResponse | StartJob | Resume | InterruptJob
EngineMessage = ActivityResponse | StartJob | Resume | InterruptJob


class Codec(Generic[M]):
    """JSON for one tagged union: one cached encoder and decoder, errors as InvalidPayload."""

    def __init__(self, union: Any, what: str) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder: msgspec.json.Decoder[M] = msgspec.json.Decoder(union)
        self._what = what

    def encode(self, message: M) -> bytes:
        """JSON bytes of ``message``; :class:`InvalidPayload` if its data is not JSON-able."""
        try:
            return self._encoder.encode(message)
        except (TypeError, ValueError, OverflowError) as error:
            raise InvalidPayload(f"{self._what} data cannot be encoded as JSON: {error}") from error
        except RecursionError:
            raise InvalidPayload(
                f"{self._what} data nests too deep to encode; mesh accepts at most {MAX_DEPTH} "
                "levels"
            ) from None

    def decode(self, payload: bytes | str) -> M:
        """The message in ``payload``; :class:`InvalidPayload` for malformed JSON, a type
        outside the union, or nesting too deep for the decoder (whatever its source, a bad
        payload is an error to report, never a crash)."""
        try:
            return self._decoder.decode(payload)
        except msgspec.DecodeError as error:
            raise InvalidPayload(f"not a {self._what}: {error}") from error
        except RecursionError:
            raise InvalidPayload(f"not a {self._what}: nested too deep to decode") from None


_codec: Codec[StreamMessage] = Codec(StreamMessage, "mesh stream message")
encode = _codec.encode
decode = _codec.decode


def compact_json(payload: bytes) -> bytes:
    """``payload`` re-encoded without insignificant whitespace (so without newlines)."""
    try:
        return msgspec.json.encode(msgspec.json.decode(payload))
    except msgspec.DecodeError as error:
        raise InvalidPayload(f"payload is not JSON: {error}") from error
    except RecursionError:
        raise InvalidPayload("payload nests too deep to decode") from None


def parse_json(text: str, what: str = "payload") -> Any:
    """Decode user-supplied JSON text, with an error that says how to fix it. Refused too:
    nesting past :data:`~mesh.model.limits.MAX_DEPTH` (checked before parsing), NUL
    characters and lone surrogates (Postgres cannot store them)."""
    check_text(text, what)
    check_json_text(text, what)
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as error:
        raise InvalidPayload(
            f"{what} is not valid JSON ({error}); quote it for the shell, e.g. '{{\"qty\": 2}}'"
        ) from error
    check_value(value, what)
    return value


def success_response(request: ActivityRequest, data: Any, attempts: int) -> ActivityResponse:
    return _respond(request, "success", 200, data, None, attempts)


def pending_response(request: ActivityRequest, data: Any, attempts: int) -> ActivityResponse:
    return _respond(request, "pending", 202, data, None, attempts)


def error_response(request: ActivityRequest, error: ErrorInfo, attempts: int) -> ActivityResponse:
    return _respond(request, "error", error.code, None, error, attempts)


def _respond(
    request: ActivityRequest,
    status: Status,
    code: int,
    data: Any,
    error: ErrorInfo | None,
    attempts: int,
) -> ActivityResponse:
    return ActivityResponse(
        request_id=request.id,
        app=request.app,
        topic=request.topic,
        status=status,
        code=code,
        data=data,
        error=error,
        job_id=request.job_id,
        activity_id=request.activity_id,
        attempts=attempts,
        request_sent_at=request.sent_at,
        job_gid=request.job_gid,
        dimension=request.dimension,
    )


# NOTIFY payloads must stay under 8000 bytes (Postgres' limit, in the server encoding).
NOTIFY_PAYLOAD_LIMIT = 7999


def check_notify_payload(payload: str) -> bytes:
    """The UTF-8 bytes of ``payload`` if they fit a NOTIFY, else :class:`PayloadTooLarge`.

    The size is measured in encoded bytes, not characters: 'é' counts two.
    """
    encoded = payload.encode()
    if len(encoded) > NOTIFY_PAYLOAD_LIMIT:
        raise PayloadTooLarge(
            f"notification payload is {len(encoded)} bytes; Postgres allows at most "
            f"{NOTIFY_PAYLOAD_LIMIT}. Store large data in a table and send its key instead."
        )
    return encoded


class Pending:
    """Return ``Pending(data)`` from an activity function to keep the activity open.

    The engine receives a 202 response with ``data``; the activity completes only with a
    later response (HotMesh's pending semantics).
    """

    __slots__ = ("data",)

    def __init__(self, data: Any = None) -> None:
        self.data = data
