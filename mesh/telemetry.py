"""OpenTelemetry spans for jobs, activity legs and workers (``pip install mesh[otel]``).

Off unless ``MESH_TELEMETRY=true`` (or ``telemetry.enabled`` in the config, or
:func:`enable` from code); while off nothing of OpenTelemetry is imported and every hook is
a no-op. On, a process emits:

- ``mesh.pub <topic>`` (producer): a client starting a job or a workflow, a child of the
  caller's current span; its context travels in the start message and is stored with the
  job (``jobs.trace``), so every span of the job, in any process, joins that trace;
- ``mesh.activity <activity>`` per activity leg an engine commits (leg 1: entered, leg 2:
  completed with its code);
- ``mesh.worker <topic>`` (consumer) per request a worker runs, with its outcome; the
  request carries the job's context;
- ``mesh.job <topic>`` when a job ends, from its start to its end, with its status; a child
  job's span links to its parent's context.

Attributes: ``mesh.app``, ``mesh.topic``, ``mesh.job_id``, ``mesh.activity``, ``mesh.leg``,
``mesh.code``, ``mesh.outcome``. Spans go to the application's tracer provider when it set
one; else to ``MESH_TELEMETRY_EXPORTER``: ``console``, ``otlp`` (needs
``opentelemetry-exporter-otlp``) or ``file:PATH`` (one JSON object per line).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mesh.model.graph.state import Announce

log = logging.getLogger(__name__)

FINAL = frozenset({"done", "failed", "interrupted"})

TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


class Telemetry:
    """The hooks the runtime calls. This base class is the switched-off one: each does
    nothing and costs one attribute lookup."""

    enabled = False

    @contextmanager
    def producing(self, app: str, topic: str) -> Iterator[Producer]:
        yield Producer("")

    def new_trace(self, app: str, topic: str) -> str:
        """A trace for a job started without one (by a process without telemetry)."""
        return ""

    def legs(self, app: str, jobs: Sequence[Any]) -> None:
        """Spans for the activity legs and job ends the engine committed (``jobs``: the
        batch's job states, with their new steps)."""

    def job_ended(
        self,
        app: str,
        topic: str,
        job_id: str,
        status: str,
        trace: str,
        started_at: float,
        parent_trace: str = "",
    ) -> None:
        """A span for a job (or workflow) from its start to now."""

    @contextmanager
    def working(self, app: str, topic: str, request: Any) -> Iterator[Outcome]:
        yield Outcome()


class Producer:
    """What :meth:`Telemetry.producing` gives: the trace context to send along."""

    def __init__(self, trace: str, span: Any = None) -> None:
        self.trace = trace
        self._span = span

    def started(self, job_id: str) -> None:
        if self._span is not None:
            self._span.set_attribute("mesh.job_id", job_id)


class Outcome:
    """A worker span's outcome, set by the caller before the block ends."""

    def __init__(self) -> None:
        self.value = "success"
        self.code = 200


_current: Telemetry = Telemetry()


def current() -> Telemetry:
    return _current


def wanted(config_enabled: bool = False) -> bool:
    """Whether telemetry is asked for: ``MESH_TELEMETRY`` (true/1/yes, or false to override
    the config), else the config's ``telemetry.enabled``."""
    value = os.environ.get("MESH_TELEMETRY", "").strip().lower()
    if value:
        return value in ("1", "true", "yes", "on")
    return config_enabled


def enable(tracer_provider: Any = None) -> Telemetry:
    """Switch telemetry on in this process (idempotent): spans go to ``tracer_provider``, or
    the application's global one when it set one, or the exporter ``MESH_TELEMETRY_EXPORTER``
    names. :class:`ImportError` with the fix when the extra is not installed."""
    global _current
    if isinstance(_current, _Spans) and tracer_provider is None:
        return _current
    try:
        from opentelemetry import trace
    except ImportError as error:
        raise ImportError(
            "telemetry needs OpenTelemetry: pip install 'mesh[otel]' (or set MESH_TELEMETRY=false)"
        ) from error
    provider = tracer_provider or _provider(trace)
    _current = _Spans(provider.get_tracer("mesh"))
    return _current


def disable() -> None:
    global _current
    _current = Telemetry()


def _provider(trace: Any) -> Any:
    existing = trace.get_tracer_provider()
    if type(existing).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return existing  # the application configured OpenTelemetry itself
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "mesh")})
    )
    target = os.environ.get("MESH_TELEMETRY_EXPORTER", "console")
    if target.startswith("file:"):
        provider.add_span_processor(SimpleSpanProcessor(_file_exporter(target[5:])))
    elif target == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif target == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif target != "none":
        raise ValueError(
            f"MESH_TELEMETRY_EXPORTER={target!r} is not known: use console, otlp, none or file:PATH"
        )
    trace.set_tracer_provider(provider)
    return provider


def _file_exporter(path: str) -> Any:
    """An exporter of spans as JSON lines appended to ``path`` (for tests and simple
    setups). Defined here: OpenTelemetry is imported only once telemetry is on."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class FileExporter(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            with open(path, "a", encoding="utf-8") as out:
                for span in spans:
                    out.write(span.to_json(indent=None) + "\n")
            return SpanExportResult.SUCCESS

    return FileExporter()


class _Spans(Telemetry):
    enabled = True

    def __init__(self, tracer: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = tracer
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()

    def _context(self, traceparent: str) -> Any:
        """The context a traceparent names; None (a new trace) for one that is not valid:
        it comes from a message, which anyone with database access could have written."""
        if not traceparent or not TRACEPARENT.fullmatch(traceparent):
            return None
        return self._propagator.extract({"traceparent": traceparent})

    def _traceparent(self, span: Any) -> str:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._trace.set_span_in_context(span))
        return carrier.get("traceparent", "")

    @contextmanager
    def producing(self, app: str, topic: str) -> Iterator[Producer]:
        kind = self._trace.SpanKind.PRODUCER
        with self._tracer.start_as_current_span(f"mesh.pub {topic}", kind=kind) as span:
            span.set_attribute("mesh.app", app)
            span.set_attribute("mesh.topic", topic)
            yield Producer(self._traceparent(span), span)

    def new_trace(self, app: str, topic: str) -> str:
        kind = self._trace.SpanKind.PRODUCER
        with self._tracer.start_as_current_span(
            f"mesh.pub {topic}",
            kind=kind,
            context=self._trace.set_span_in_context(self._trace.INVALID_SPAN),
        ) as span:
            span.set_attribute("mesh.app", app)
            span.set_attribute("mesh.topic", topic)
            return self._traceparent(span)

    def legs(self, app: str, jobs: Sequence[Any]) -> None:
        now = time.time_ns()
        for job in jobs:
            context = self._context(getattr(job, "trace", ""))
            for step in job.new_steps:
                span = self._tracer.start_span(
                    f"mesh.activity {step.activity}",
                    context=context,
                    start_time=now,
                    attributes={
                        "mesh.app": app,
                        "mesh.topic": job.topic,
                        "mesh.job_id": job.key,
                        "mesh.activity": step.activity,
                        "mesh.dimension": step.dimension,
                        "mesh.leg": step.leg,
                        "mesh.code": step.code,
                        "mesh.outcome": "entered" if step.leg == 1 else _outcome(step.code),
                    },
                )
                span.end(end_time=now)
            if any(_ends(command) for command in job.commands):  # it ended in this batch
                self.job_ended(
                    app,
                    job.topic,
                    job.key,
                    job.status,
                    job.trace,
                    job.created_at,
                    parent_trace=job.trace if job.parent is not None else "",
                )

    def job_ended(
        self,
        app: str,
        topic: str,
        job_id: str,
        status: str,
        trace: str,
        started_at: float,
        parent_trace: str = "",
    ) -> None:
        links = []
        linked = self._context(parent_trace)
        if linked is not None:
            span_context = self._trace.get_current_span(linked).get_span_context()
            links.append(self._trace.Link(span_context, {"mesh.relation": "parent job"}))
        span = self._tracer.start_span(
            f"mesh.job {topic}",
            context=self._context(trace),
            start_time=int(started_at * 1e9) if started_at else None,
            links=links,
            attributes={
                "mesh.app": app,
                "mesh.topic": topic,
                "mesh.job_id": job_id,
                "mesh.outcome": status,
            },
        )
        if status != "done":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, status))
        span.end()

    @contextmanager
    def working(self, app: str, topic: str, request: Any) -> Iterator[Outcome]:
        outcome = Outcome()
        span = self._tracer.start_span(
            f"mesh.worker {topic}",
            context=self._context(getattr(request, "trace", "")),
            kind=self._trace.SpanKind.CONSUMER,
            attributes={
                "mesh.app": app,
                "mesh.topic": topic,
                "mesh.job_id": getattr(request, "job_id", ""),
                "mesh.activity": getattr(request, "activity_id", ""),
            },
        )
        try:
            yield outcome
        finally:
            span.set_attribute("mesh.outcome", outcome.value)
            span.set_attribute("mesh.code", outcome.code)
            if outcome.value not in ("success", "pending"):
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, outcome.value))
            span.end()


def _ends(command: Any) -> bool:
    """An engine command that announces the end of its job."""
    return isinstance(command, Announce) and command.status in FINAL


def _outcome(code: int) -> str:
    return "success" if code < 300 else "error"
