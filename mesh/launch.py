"""The composition root of a node: config in, running actors out."""

from __future__ import annotations

import os
from typing import Any

from mesh.config import Config
from mesh.errors import ConfigError, FunctionNotFound
from mesh.health import system_health
from mesh.pg.embedded import embedded_dsn
from mesh.runtime.actor import Actor
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.functions import resolve_function
from mesh.runtime.node import Node


def database_url(config: Config) -> str:
    """The configured URL, or the embedded server's (started if needed)."""
    return config.database.url or embedded_dsn()


def metrics_port(config: Config) -> int:
    """``metrics.port``, else ``PORT`` (as a Procfile runner or the systemd units set it),
    else 0: no metrics server."""
    if config.metrics.port:
        return config.metrics.port
    value = os.environ.get("PORT", "")
    if not value:
        return 0
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(
            "<env>", "PORT", f"{value!r} is not a TCP port", "set PORT to a number from 1 to 65535"
        )
    return int(value)


def build_node(config: Config, dsn: str) -> Node:
    return Node(
        dsn,
        app=config.app,
        pool_size=config.database.pool_size,
        drain_seconds=config.seconds(config.node.drain_timeout),
        listener_check_interval=config.seconds(config.node.listener_check_interval),
        statement_timeout=config.seconds(config.database.statement_timeout),
        quorum_secret=config.quorum.secret.encode() or None,
        listen_dsn=config.database.listen_url or None,
    )


def build_actors(
    config: Config, node: Node, *, roles: list[str] | None = None, topics: list[str] | None = None
) -> list[Actor[Any]]:
    """The actors a node runs for ``roles`` (default: the config's) and ``topics`` (default: all).

    Unknown dotted paths and topics are refused here, before the node starts.
    """
    from actors.engine import EngineActor
    from actors.maintenance import ReaperActor
    from actors.quorum import QuorumActor
    from actors.worker import WorkerActor

    roles = roles or list(config.node.roles)
    streams = config.streams
    workers: list[Actor[Any]] = []
    if "worker" in roles:
        workers = _worker_actors(config, node, topics, WorkerActor)
    served = [actor.topic for actor in workers if isinstance(actor, WorkerActor)]
    quorum = QuorumActor(
        node,
        roles=roles,
        topics=served,
        system_health=system_health,
        refresh_interval=config.seconds(config.quorum.refresh_interval),
    )
    reaper = ReaperActor(node.streams, interval=config.seconds(streams.reap_interval))
    engines: list[Actor[Any]] = []
    if "engine" in roles:
        settings = ConsumerSettings(
            batch_size=streams.batch_size,
            lease=config.seconds(streams.lease),
            poll_interval=config.seconds(streams.poll_interval),
        )
        engines.append(EngineActor(node, settings=settings))
    return [quorum, reaper, *engines, *workers]


def _worker_actors(
    config: Config, node: Node, topics: list[str] | None, worker_class: Any
) -> list[Actor[Any]]:
    streams = config.streams
    actors: list[Actor[Any]] = []
    known = {w.topic for w in config.workers}
    for topic in topics or []:
        if topic not in known:
            raise ConfigError(
                config.source,
                "workers",
                f"no worker is configured for topic {topic!r}",
                f"configured topics: {', '.join(sorted(known)) or 'none'}",
            )
    for index, worker in enumerate(config.workers):
        if topics and worker.topic not in topics:
            continue
        try:
            function = resolve_function(worker.function)
        except FunctionNotFound as error:
            raise ConfigError(config.source, f"workers[{index}].function", str(error)) from error
        settings = ConsumerSettings(
            batch_size=worker.batch_size or streams.batch_size,
            concurrency=worker.concurrency,
            lease=config.seconds(streams.lease),
            poll_interval=config.seconds(streams.poll_interval),
        )
        actors.append(
            worker_class(
                node,
                topic=worker.topic,
                function=function,
                settings=settings,
                retry=config.retry_policy(worker),
            )
        )
    return actors
