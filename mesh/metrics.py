"""Prometheus metrics of one node, served on its own port (config, or ``PORT``).

A custom collector reads the node at scrape time: the snapshot is taken *in the trio thread*
(``trio.from_thread.run``), so counters are read consistently, and stream depths come from one
query. Names start with ``mesh_``; units are seconds and bytes; labels are app, stream, role.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import trio
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from actors.maintenance import LeaderStatistics
from actors.quorum import QuorumStatistics
from mesh.errors import ConfigError, DatabaseError
from mesh.model.ids import ENGINE_STREAM
from mesh.runtime.node import Node, NodeStatistics
from mesh.version import __version__

log = logging.getLogger(__name__)


@dataclass
class _Snapshot:
    node: NodeStatistics
    consumers: list[Any]
    streams: list[Any]
    throttles: dict[str, int]
    oldest_transaction: float | None
    streams_read: bool
    """The stream statistics were read (else the stream gauges have no samples: unknown is
    not 0)."""


class NodeCollector(Collector):
    def __init__(self, node: Node, token: trio.lowlevel.TrioToken) -> None:
        self.node = node
        self.token = token

    async def _snapshot(self) -> _Snapshot:
        streams: list[Any] = []
        oldest: float | None = None
        read = False
        try:
            with trio.fail_after(5):
                streams = await self.node.streams.stats(self.node.app)
                read = True
                oldest = await self.node.streams.oldest_transaction_age()
        except (DatabaseError, trio.TooSlowError) as error:
            log.warning("event=metrics_stream_stats_failed error=%r", str(error))
        consumers = [actor.consumer for actor in self.node.actors if hasattr(actor, "consumer")]
        names = {c.stream for c in consumers}
        return _Snapshot(
            node=self.node.statistics(),
            consumers=[(c.stream, c.statistics(), c.counters) for c in consumers],
            streams=streams,
            throttles={name: self.node.throttle.effective(name) for name in sorted(names)},
            oldest_transaction=oldest,
            streams_read=read,
        )

    def collect(self) -> Iterator[Metric]:
        try:
            snap = trio.from_thread.run(self._snapshot, trio_token=self.token)
        except trio.RunFinishedError:
            return
        app = self.node.app
        yield from _node_metrics(app, snap)
        yield from _stream_metrics(app, snap)
        yield from _consumer_metrics(app, snap)
        yield from _quorum_metrics(app, snap)


def _role(stream: str) -> str:
    return "engine" if stream == ENGINE_STREAM else "worker"


def _node_metrics(app: str, snap: _Snapshot) -> Iterator[Metric]:
    node = snap.node
    info = GaugeMetricFamily(
        "mesh_node_info",
        "This node: always 1, with identity labels.",
        labels=["app", "guid", "version"],
    )
    info.add_metric([app, node.guid, __version__], 1)
    yield info
    listener = node.listener
    healthy = GaugeMetricFamily(
        "mesh_listener_healthy",
        "1 while the LISTEN connection is up (it heard itself at connect; its checks answer).",
        labels=["app"],
    )
    healthy.add_metric([app], 1 if listener.healthy else 0)
    yield healthy
    connects = CounterMetricFamily(
        "mesh_listener_connects", "LISTEN connections made (reconnects = this - 1).", labels=["app"]
    )
    connects.add_metric([app], listener.connects)
    yield connects
    notifications = CounterMetricFamily(
        "mesh_listener_notifications", "Notifications received and dispatched.", labels=["app"]
    )
    notifications.add_metric([app], listener.received)
    yield notifications
    database = node.database
    pool = GaugeMetricFamily(
        "mesh_pool_connections", "Connections in the pool by state.", labels=["app", "state"]
    )
    pool.add_metric([app, "open"], database.pool_size)
    pool.add_metric([app, "idle"], database.pool_available)
    pool.add_metric([app, "in_use"], max(0, database.pool_size - database.pool_available))
    yield pool
    waiting = GaugeMetricFamily(
        "mesh_pool_waiting", "Requests waiting for a pooled connection.", labels=["app"]
    )
    waiting.add_metric([app], database.requests_waiting)
    yield waiting
    restarts = CounterMetricFamily(
        "mesh_actor_restarts", "Times the supervisor restarted an actor.", labels=["app", "actor"]
    )
    for actor in node.actors:
        restarts.add_metric([app, actor.name], actor.restarts)
    yield restarts
    yield from _leader_metrics(app, node)


def _leader_metrics(app: str, node: NodeStatistics) -> Iterator[Metric]:
    reaped = CounterMetricFamily(
        "mesh_reaper_released",
        "Expired leases the reaper returned to their streams.",
        labels=["app"],
    )
    poisoned = CounterMetricFamily(
        "mesh_reaper_dead_lettered",
        "Messages the reaper dead-lettered (claimed too often).",
        labels=["app"],
    )
    seat = GaugeMetricFamily(
        "mesh_leader",
        "1 for this node's seat in the app's election (leader: polls and reaps for the app).",
        labels=["app", "role"],
    )
    woken = CounterMetricFamily(
        "mesh_leader_wakeups", "Stream wake-ups the elected poller sent.", labels=["app"]
    )
    ticks = CounterMetricFamily(
        "mesh_schedule_ticks",
        "Schedule ticks this node's leader handled: fired (a run started), skipped (the "
        "previous run went on, or a newer tick was due) or missed (out of the catch-up "
        "window, counted, not run).",
        labels=["app", "outcome"],
    )
    for actor in node.actors:
        if isinstance(actor, LeaderStatistics):
            ticks.add_metric([app, "fired"], actor.schedules_fired)
            ticks.add_metric([app, "skipped"], actor.schedules_skipped)
            ticks.add_metric([app, "missed"], actor.schedules_missed)
            reaped.add_metric([app], actor.released)
            poisoned.add_metric([app], actor.dead_lettered)
            for role in ("leader", "standby", "follower"):
                seat.add_metric([app, role], 1 if actor.role == role else 0)
            woken.add_metric([app], actor.woken)
    yield reaped
    yield poisoned
    yield seat
    yield woken
    yield ticks


def _stream_metrics(app: str, snap: _Snapshot) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "mesh_stream_depth",
        "Messages not yet done: ready, delayed and leased.",
        labels=["app", "stream", "role"],
    )
    ready = GaugeMetricFamily(
        "mesh_stream_ready", "Messages visible and unclaimed.", labels=["app", "stream", "role"]
    )
    leased = GaugeMetricFamily(
        "mesh_stream_leased", "Messages leased to a consumer.", labels=["app", "stream", "role"]
    )
    lag = GaugeMetricFamily(
        "mesh_stream_lag_seconds",
        "Age of the oldest ready message since it became visible.",
        labels=["app", "stream", "role"],
    )
    dead = GaugeMetricFamily(
        "mesh_stream_dead_letters",
        "Dead letters kept for the stream.",
        labels=["app", "stream", "role"],
    )
    for s in snap.streams:
        labels = [app, s.stream, _role(s.stream)]
        depth.add_metric(labels, s.depth)
        ready.add_metric(labels, s.ready)
        leased.add_metric(labels, s.leased)
        lag.add_metric(labels, s.lag_seconds)
        dead.add_metric(labels, s.dead_lettered)
    if snap.streams_read:
        # A stream this node consumes that holds nothing has no row: it reads 0, not a gap.
        held = {s.stream for s in snap.streams}
        for stream in sorted({c[0] for c in snap.consumers} - held):
            labels = [app, stream, _role(stream)]
            for family in (depth, ready, leased, lag, dead):
                family.add_metric(labels, 0)
    yield from (depth, ready, leased, lag, dead)
    if snap.oldest_transaction is not None:
        oldest = GaugeMetricFamily(
            "mesh_database_oldest_transaction_seconds",
            "Age of the oldest open transaction: it holds back vacuum, so queue tables bloat.",
            labels=["app"],
        )
        oldest.add_metric([app], snap.oldest_transaction)
        yield oldest


_COUNTERS = (
    ("claimed", "mesh_messages_claimed", "Messages this node claimed."),
    ("acked", "mesh_messages_acked", "Messages this node completed (acked with their follow-ups)."),
    ("retried", "mesh_messages_retried", "Messages released for a later attempt after a failure."),
    ("dead_lettered", "mesh_messages_dead_lettered", "Messages this node dead-lettered."),
    ("lost", "mesh_leases_lost", "Leases lost before settling (their work was not recorded)."),
)


def _consumer_metrics(app: str, snap: _Snapshot) -> Iterator[Metric]:
    labels_of = {stream: [app, stream, _role(stream)] for stream, _, _ in snap.consumers}
    for key, name, documentation in _COUNTERS:
        family = CounterMetricFamily(name, documentation, labels=["app", "stream", "role"])
        for stream, stats, _ in snap.consumers:
            family.add_metric(labels_of[stream], getattr(stats, key))
        yield family
    in_flight = GaugeMetricFamily(
        "mesh_messages_in_flight",
        "Messages claimed and not yet settled.",
        labels=["app", "stream", "role"],
    )
    for stream, stats, _ in snap.consumers:
        in_flight.add_metric(labels_of[stream], stats.in_flight)
    yield in_flight
    duration = HistogramMetricFamily(
        "mesh_handler_duration_seconds",
        "Time handlers took per message.",
        labels=["app", "stream", "role"],
    )
    for stream, _, counters in snap.consumers:
        histogram = counters.handler_seconds
        duration.add_metric(labels_of[stream], histogram.cumulative(), histogram.sum)
    yield duration
    throttle = GaugeMetricFamily(
        "mesh_throttle_milliseconds",
        "Throttle in force per stream (-1 paused, 0 none).",
        labels=["app", "stream", "role"],
    )
    for stream, value in snap.throttles.items():
        throttle.add_metric([app, stream, _role(stream)], value)
    yield throttle


def _quorum_metrics(app: str, snap: _Snapshot) -> Iterator[Metric]:
    received = CounterMetricFamily(
        "mesh_quorum_messages", "Quorum messages accepted, by type.", labels=["app", "type"]
    )
    rejected = CounterMetricFamily(
        "mesh_quorum_rejected", "Quorum messages dropped, by reason.", labels=["app", "reason"]
    )
    for actor in snap.node.actors:
        if isinstance(actor, QuorumStatistics):
            for kind, n in actor.received.items():
                received.add_metric([app, kind], n)
            for reason, n in actor.rejected.items():
                rejected.add_metric([app, reason], n)
    yield received
    yield rejected


def serve_metrics(node: Node, port: int, source: str = "<config>") -> Any:
    """Serve ``node``'s metrics on ``port`` from a daemon thread; returns the server
    (call ``shutdown()`` on it). Must be called from the node's trio thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node, trio.lowlevel.current_trio_token()))
    try:
        server, _thread = start_http_server(port, registry=registry)
    except OSError as error:
        raise ConfigError(
            source,
            "metrics.port",
            f"cannot serve metrics on port {port}: {error.strerror}",
            "pick a free port (metrics.port or PORT), one per node on a host",
        ) from error
    log.info("event=metrics_serving port=%d", port)
    return server
