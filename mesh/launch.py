"""The composition root of a node: a config (``mesh run``) or the arguments of
:meth:`mesh.api.Mesh.open` in, a node and its actors out, by the same code."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesh import telemetry
from mesh.config import Config, DatabaseConfig, QuorumConfig, schedule_spec
from mesh.errors import ConfigError, FunctionNotFound
from mesh.health import system_health
from mesh.model.activity import Loop
from mesh.model.ids import ENGINE_STREAM
from mesh.model.retry import RetryPolicy
from mesh.model.schedules import ScheduleSpec
from mesh.model.workflow.plan import activity_stream, workflow_stream
from mesh.pg.embedded import embedded_dsn
from mesh.runtime.activities import by_name, one_function
from mesh.runtime.actor import Actor
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.function_paths import resolve_function
from mesh.runtime.node import Node
from mesh.runtime.workflows import workflow_functions


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


def switch_on_telemetry(config: Config) -> None:
    """Spans on when ``MESH_TELEMETRY`` or ``telemetry.enabled`` asks; a missing extra is a
    configuration error that says what to install."""
    if not telemetry.wanted(config.telemetry.enabled):
        return
    try:
        telemetry.enable()
    except (ImportError, ValueError) as error:
        raise ConfigError(config.source, "telemetry.enabled", str(error)) from None


def in_process_node(
    dsn: str,
    app: str,
    *,
    migrate: bool,
    announce_jobs: bool,
    timeout: float,
    asyncio_loop: asyncio.AbstractEventLoop | None = None,
) -> Node:
    """The node of ``Mesh.open`` and ``mesh.Worker``: as ``mesh run`` builds one, from these
    settings (``asyncio_loop``: the application's, for its asyncio activities)."""
    config = Config(
        app=app,
        database=DatabaseConfig(url=dsn, statement_timeout=timeout),
        quorum=QuorumConfig(announce_jobs=announce_jobs),
    )
    switch_on_telemetry(config)
    return build_node(config, dsn, migrate=migrate, asyncio_loop=asyncio_loop)


def build_node(
    config: Config,
    dsn: str,
    *,
    migrate: bool = False,
    asyncio_loop: asyncio.AbstractEventLoop | None = None,
) -> Node:
    return Node(
        dsn,
        app=config.app,
        pool_size=config.database.pool_size,
        pool_max_idle=config.seconds(config.database.pool_max_idle),
        drain_seconds=config.seconds(config.node.drain_timeout),
        listener_check_interval=config.seconds(config.node.listener_check_interval),
        statement_timeout=config.seconds(config.database.statement_timeout),
        quorum_secret=config.quorum.secret.encode() or None,
        listen_dsn=config.database.listen_url or None,
        migrate=migrate,
        announce_jobs=config.quorum.announce_jobs,
        asyncio_loop=asyncio_loop,
    )


@dataclass(frozen=True)
class WorkerPlan:
    """A worker actor to run: ``function`` for every request on ``topic``."""

    topic: str
    function: Callable[..., Any]
    settings: ConsumerSettings
    retry: RetryPolicy
    loop: Loop | None = None
    """Where the function runs, when the config says (else by its definition)."""


@dataclass(frozen=True)
class TaskQueuePlan:
    """Workflows written as code, and their activities, run for ``task_queue``."""

    task_queue: str
    workflows: tuple[Callable[..., Any], ...] = ()
    activities: tuple[Callable[..., Any], ...] = ()
    settings: ConsumerSettings = field(default_factory=ConsumerSettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    loop: Loop | None = None
    """Where its activities run, when the config says (else by their definitions)."""


@dataclass(frozen=True)
class NodePlan:
    """What a node runs. ``mesh run`` makes one from a config (:func:`node_plan`);
    :meth:`mesh.api.Mesh.open` from its arguments; both start it with :func:`build_actors`."""

    roles: tuple[str, ...]
    """What the node says it does in roll calls (engine, worker, quorum)."""
    engine: ConsumerSettings | None = None
    """The engine's settings; None: no engine."""
    workers: tuple[WorkerPlan, ...] = ()
    task_queues: tuple[TaskQueuePlan, ...] = ()
    quorum: bool = True
    """A quorum member (throttles, roll calls, version activation)."""
    reap_interval: float = 2.0
    leader_interval: float = 1.0
    """How often the elected poller looks for due and missed messages."""
    safety_interval: float = 60.0
    """How often a follower tries for the standby's seat (jittered down to half)."""
    quorum_refresh: float = 60.0
    schedules: tuple[ScheduleSpec, ...] = ()
    """Schedules the config names: created or updated when the node starts."""


def check_task_queue(
    workflows: Sequence[Callable[..., Any]],
    activities: Sequence[Callable[..., Any]],
    loop: Loop | None = None,
) -> None:
    """Refuse (:class:`ConfigError`) functions a task queue cannot register: lambdas,
    functions defined inside others (unless named by ``defn``), two under one name, an
    activity that cannot run on its loop. Called before anything starts."""
    workflow_functions(workflows)
    by_name(activities, loop=loop)


def in_process_plan(
    *,
    engine: ConsumerSettings | None,
    workers: Mapping[str, Callable[..., Any]],
    workflows: Mapping[str, Sequence[Callable[..., Any]]],
    activities: Mapping[str, Sequence[Callable[..., Any]]],
    settings: ConsumerSettings,
    retry: RetryPolicy,
    quorum: bool,
    reap_interval: float,
) -> NodePlan:
    """The plan of :meth:`mesh.api.Mesh.open`'s node: functions given in code."""
    queues = sorted(set(workflows) | set(activities))
    for queue in queues:
        check_task_queue(workflows.get(queue, ()), activities.get(queue, ()))
    return NodePlan(
        roles=(("engine",) if engine else ()) + (("worker",) if workers or queues else ()),
        engine=engine,
        workers=tuple(WorkerPlan(t, f, settings, retry) for t, f in workers.items()),
        task_queues=tuple(
            TaskQueuePlan(
                q, tuple(workflows.get(q, ())), tuple(activities.get(q, ())), settings, retry
            )
            for q in queues
        ),
        quorum=quorum,
        reap_interval=reap_interval,
    )


def node_plan(
    config: Config, *, roles: list[str] | None = None, topics: list[str] | None = None
) -> NodePlan:
    """The plan of a node for ``roles`` (default: the config's) and ``topics`` (default:
    all). Unknown dotted paths and topics are refused here, before the node starts."""
    # Every node runs a quorum member: one that did not hear throttles, activations and roll
    # calls could not be steered. Naming the role is allowed and changes nothing.
    roles = list(dict.fromkeys([*(roles or config.node.roles), "quorum"]))
    streams = config.streams
    engine = None
    if "engine" in roles:
        engine = ConsumerSettings(
            batch_size=streams.batch_size,
            lease=config.seconds(streams.lease),
            poll_interval=config.seconds(streams.poll_interval),
        )
    workers = _worker_plans(config, topics) if "worker" in roles else ()
    queues = _task_queue_plans(config) if "worker" in roles and not topics else ()
    return NodePlan(
        roles=tuple(roles),
        engine=engine,
        workers=workers,
        task_queues=queues,
        reap_interval=config.seconds(streams.reap_interval),
        leader_interval=config.seconds(streams.leader_interval),
        safety_interval=config.seconds(streams.poll_interval),
        quorum_refresh=config.seconds(config.quorum.refresh_interval),
        schedules=tuple(schedule_spec(entry) for entry in config.schedules),
    )


def build_actors(node: Node, plan: NodePlan) -> list[Actor[Any]]:
    """The actors of ``plan``: the quorum member, the leader seat, the engine and the
    workers."""
    from actors.graphs import EngineActor
    from actors.maintenance import LeaderActor
    from actors.presence import PresenceActor
    from actors.quorum import QuorumActor
    from actors.worker import WorkerActor
    from actors.workflows import WorkflowWorkerActor, activity_worker

    workers: list[Actor[Any]] = [
        WorkerActor(
            node,
            topic=w.topic,
            dispatch=one_function(w.function, loop=w.loop),
            settings=w.settings,
            retry=w.retry,
        )
        for w in plan.workers
    ]
    actors: list[Actor[Any]] = []
    if plan.quorum:
        actors.append(
            QuorumActor(
                node,
                roles=list(plan.roles),
                topics=[w.topic for w in plan.workers],
                system_health=system_health,
                refresh_interval=plan.quorum_refresh,
            )
        )
    actors.append(
        LeaderActor(
            node,
            poll_interval=plan.leader_interval,
            reap_interval=plan.reap_interval,
            follow_interval=plan.safety_interval,
            schedules=plan.schedules,
        )
    )
    if plan.engine is not None:
        actors.append(EngineActor(node, settings=plan.engine))
    runners = [
        WorkflowWorkerActor(
            node, task_queue=queue.task_queue, workflows=queue.workflows, settings=queue.settings
        )
        for queue in plan.task_queues
        if queue.workflows
    ]
    actors.extend(runners)
    for queue in plan.task_queues:
        if queue.activities:
            workers.append(
                activity_worker(
                    node,
                    task_queue=queue.task_queue,
                    activities=queue.activities,
                    settings=queue.settings,
                    retry=queue.retry,
                    workflows=runners,
                    loop=queue.loop,
                )
            )
    streams = consumed_streams(plan)
    if streams:
        actors.append(PresenceActor(node, streams))
    return actors + workers


def consumed_streams(plan: NodePlan) -> list[str]:
    """The streams a node of ``plan`` consumes (what its presence says)."""
    streams = [w.topic for w in plan.workers]
    for queue in plan.task_queues:
        streams += [workflow_stream(queue.task_queue)] if queue.workflows else []
        streams += [activity_stream(queue.task_queue)] if queue.activities else []
    if plan.engine is not None:
        streams.append(ENGINE_STREAM)
    return streams


def _worker_plans(config: Config, topics: list[str] | None) -> tuple[WorkerPlan, ...]:
    streams = config.streams
    known = {w.topic for w in config.workers}
    for topic in topics or []:
        if topic not in known:
            raise ConfigError(
                config.source,
                "workers",
                f"no worker is configured for topic {topic!r}",
                f"configured topics: {', '.join(sorted(known)) or 'none'}",
            )
    plans: list[WorkerPlan] = []
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
        plans.append(
            WorkerPlan(worker.topic, function, settings, config.retry_policy(worker), worker.loop)
        )
    return tuple(plans)


def _task_queue_plans(config: Config) -> tuple[TaskQueuePlan, ...]:
    """The task queues of code workflows the config names, their functions resolved."""
    plans: list[TaskQueuePlan] = []
    for index, queue in enumerate(config.task_queues):
        found: dict[str, list[Callable[..., Any]]] = {"workflows": [], "activities": []}
        for kind, functions in found.items():
            for number, path in enumerate(getattr(queue, kind)):
                try:
                    functions.append(resolve_function(path))
                except FunctionNotFound as error:
                    key = f"task_queues[{index}].{kind}[{number}]"
                    raise ConfigError(config.source, key, str(error)) from error
        try:
            check_task_queue(found["workflows"], found["activities"], queue.loop)
        except ConfigError as error:
            raise ConfigError(
                config.source, f"task_queues[{index}]", error.problem, error.fix
            ) from None
        settings = ConsumerSettings(
            batch_size=config.streams.batch_size,
            concurrency=queue.concurrency,
            lease=config.seconds(config.streams.lease),
            poll_interval=config.seconds(config.streams.poll_interval),
        )
        plans.append(
            TaskQueuePlan(
                queue.name,
                tuple(found["workflows"]),
                tuple(found["activities"]),
                settings,
                config.retry_policy(queue),
                queue.loop,
            )
        )
    return tuple(plans)
