"""Configuration: ``config/mesh.yaml`` decoded into msgspec Structs, unknown keys refused.

``${VAR}`` and ``${VAR:-default}`` are substituted from the environment before decoding.
Environment overrides win over the file: ``MESH_DATABASE_URL``, ``MESH_APP``,
``MESH_LOG_LEVEL``. Every error names the file, the key path and the fix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import msgspec

from mesh.errors import (
    ConfigError,
    DocumentInvalid,
    FunctionNotFound,
    InvalidIdentifier,
    InvalidPayload,
)
from mesh.model.durations import parse_duration
from mesh.model.ids import validate_app_id, validate_topic
from mesh.model.retry import RetryPolicy
from mesh.model.schedules import ScheduleSpec, make_spec
from mesh.safe_yaml import parse_yaml, read_document, substitute

Role = Literal["engine", "quorum", "worker"]
LogLevel = Literal["debug", "info", "warn", "warning", "error", "silent"]
ActivityLoop = Literal["asyncio", "trio", "thread"]
Duration = str | int | float


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


class DatabaseConfig(_Strict, forbid_unknown_fields=True, frozen=True):
    url: str = ""
    """Postgres URL or conninfo; empty: the embedded server in `.mesh/pg`"""
    listen_url: str = ""
    """a direct connection for LISTEN when `url` goes through a transaction-mode pooler such
    as pgbouncer (which cannot carry LISTEN); empty: `url`; `MESH_LISTEN_URL` overrides"""
    pool_size: int = 8
    """pooled connections per node at most (plus one for LISTEN)"""
    pool_max_idle: Duration = "60 seconds"
    """a pooled connection unused this long is closed (one per period), down to none: an
    idle node holds its listener and at most one pooled connection"""
    statement_timeout: Duration = "30 seconds"
    """per statement; idle-in-transaction timeout is twice this (0, "no timeout", is refused:
    trio cannot cancel a statement)"""


class RetryConfig(_Strict, forbid_unknown_fields=True, frozen=True):
    maximum_attempts: int = 3
    """the default retry policy: attempts in all ..."""
    backoff_coefficient: float = 10.0
    """... the delay after attempt n: coefficient ^ n seconds ..."""
    maximum_interval: Duration = "120 seconds"
    """... capped here"""


class StreamsConfig(_Strict, forbid_unknown_fields=True, frozen=True):
    lease: Duration = "30 seconds"
    """lease per claim; heartbeats every lease / 3"""
    poll_interval: Duration = "60 seconds"
    """the safety poll: a dry consumer claims on its own after this long (jittered down to
    half; 2 s at most while its listener is down), and a follower tries for the election's
    standby seat as often"""
    leader_interval: Duration = "1 second"
    """how often the elected poller looks for delayed messages come due and streams whose
    NOTIFY was missed (it also wakes at each delayed message's due time)"""
    reap_interval: Duration = "2 seconds"
    """how often the elected reaper looks for expired leases"""
    batch_size: int = 50
    """messages per claim"""


class WorkerConfig(_Strict, forbid_unknown_fields=True, frozen=True):
    topic: str
    """the topic this worker serves"""
    function: str
    """`package.module:function` (a module that fails to import, a syntax error included, is
    a configuration error naming it)"""
    concurrency: int = 10
    """messages in flight at once"""
    batch_size: int | None = None
    """messages per claim; none: `streams.batch_size`"""
    retry: RetryConfig | None = None
    """the worker's retry policy (the keys of `retry`); none: `retry`"""
    loop: ActivityLoop | None = None
    """where the function runs: `asyncio`, `trio` or `thread`; none: as it is defined (an
    `async def` on the node's asyncio loop, a `def` in a worker thread,
    `@activity.defn(loop=...)`)"""


class TaskQueueConfig(_Strict, forbid_unknown_fields=True, frozen=True):
    """Workflows written as code, and their activities, run for one task queue."""

    name: str
    """the task queue: its workflows run from the stream of that name, its activities from
    `<name>-activity`"""
    workflows: list[str] = msgspec.field(default_factory=list)
    """workflow functions by dotted path (`package.module:function`) this node runs"""
    activities: list[str] = msgspec.field(default_factory=list)
    """activity functions by dotted path this node runs"""
    concurrency: int = 10
    """activities in flight at once"""
    retry: RetryConfig | None = None
    """the activities' default retry policy (the keys of `retry`); none: `retry`"""
    loop: ActivityLoop | None = None
    """where the activities run (`asyncio`, `trio` or `thread`); none: as each is defined"""


class ScheduleConfig(_Strict, forbid_unknown_fields=True, frozen=True):
    """A schedule `mesh run` creates, or updates when its entry changed (an entry removed
    from the config leaves its schedule: `mesh schedule delete` removes it)."""

    id: str
    """the schedule's id (its runs are `ID@TICK`)"""
    workflow: str
    """the name of the workflow written as code it starts"""
    args: list[Any] = msgspec.field(default_factory=list)
    """the workflow's arguments"""
    cron: str | None = None
    """five fields, or six with seconds first (`'0 3 * * *'`); or `every`"""
    every: Duration | None = None
    """an interval (`'30 seconds'`); or `cron`"""
    offset: Duration = 0
    """with `every`: ticks fall at offset + k * every"""
    time_zone: str = "UTC"
    """with `cron`: an IANA time zone"""
    task_queue: str = "default"
    """the task queue the runs start on"""
    overlap: Literal["skip", "buffer_one", "allow_all", "cancel_other", "terminate_other"] = "skip"
    """what a tick does while the previous run still goes on"""
    catchup_window: Duration = "60 seconds"
    """ticks older than this after a downtime are counted as missed, not run"""
    jitter: Duration = 0
    """each run starts up to this much after its tick"""


class NodeConfig(_Strict, forbid_unknown_fields=True, frozen=True):
    roles: list[Role] = msgspec.field(default_factory=lambda: ["engine", "quorum", "worker"])
    """roles this node runs (`mesh run --role` overrides); every node runs a quorum member"""
    drain_timeout: Duration = "30 seconds"
    """how long SIGTERM waits for in-flight work (`mesh run --drain-timeout` overrides)"""
    listener_check_interval: Duration = "60 seconds"
    """the listener's round-trip check when nothing else used its connection (jittered
    ±20%)"""


class QuorumConfig(_Strict, forbid_unknown_fields=True, frozen=True):
    secret: str = ""
    """shared secret for signing control messages (`MESH_QUORUM_SECRET` overrides)"""
    refresh_interval: Duration = "60 seconds"
    """how often a member re-reads the persisted throttles besides on every throttle message
    (jittered down to half)"""
    announce_jobs: bool = False
    """also tell the quorum of every job event (a signed `job` message each, for
    `sub_quorum` dashboards and `mesh listen`; each is a NOTIFY every member decodes)"""


class MetricsConfig(_Strict, forbid_unknown_fields=True, frozen=True):
    port: int = 0
    """Prometheus endpoint; 0 uses `PORT` if set, else no server"""


class TelemetryConfig(_Strict, forbid_unknown_fields=True, frozen=True):
    enabled: bool = False
    """OpenTelemetry spans (`pip install mesh[otel]`; `MESH_TELEMETRY` overrides)"""


class Config(_Strict, forbid_unknown_fields=True, frozen=True):
    app: str = "mesh"
    """app id: the namespace of its streams"""
    database: DatabaseConfig = DatabaseConfig()
    node: NodeConfig = NodeConfig()
    streams: StreamsConfig = StreamsConfig()
    retry: RetryConfig = RetryConfig()
    workers: list[WorkerConfig] = msgspec.field(default_factory=list)
    task_queues: list[TaskQueueConfig] = msgspec.field(default_factory=list)
    schedules: list[ScheduleConfig] = msgspec.field(default_factory=list)
    quorum: QuorumConfig = QuorumConfig()
    metrics: MetricsConfig = MetricsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    log_level: LogLevel = "info"
    """how much the node logs"""
    source: str = "<defaults>"
    """Where this config came from (set by the loader, not by the file)."""

    def seconds(self, value: Duration) -> float:
        return parse_duration(value)

    def retry_policy(self, worker: WorkerConfig | TaskQueueConfig | None = None) -> RetryPolicy:
        settings = worker.retry if worker and worker.retry else self.retry
        return RetryPolicy.from_settings(
            settings.maximum_attempts, settings.backoff_coefficient, settings.maximum_interval
        )


MAX_POLL_INTERVAL = 3600.0
"""Seconds: the longest safety poll (the elected poller wakes missed streams sooner)."""
MAX_CONFIG_BYTES = 1 << 20
"""A config is tens of lines: a larger file is a mistake (or an attack), refused at once."""

DAY = 86400.0
# Seconds each duration may take. Below the minimum a node would spin against Postgres (a
# reaper or refresh every 0 s), never hold a lease, or run statements without a timeout
# (which trio cannot cancel); above the maximum nothing would ever happen.
DURATION_BOUNDS = {
    "database.statement_timeout": (0.1, DAY),
    "streams.lease": (1.0, DAY),
    "database.pool_max_idle": (1.0, DAY),
    "streams.poll_interval": (0.01, MAX_POLL_INTERVAL),
    "streams.leader_interval": (0.01, 60.0),
    "streams.reap_interval": (0.1, 3600.0),
    "node.drain_timeout": (0.0, DAY),
    "node.listener_check_interval": (0.1, 3600.0),
    "quorum.refresh_interval": (0.1, 3600.0),
}
COUNT_BOUNDS = {
    "database.pool_size": (1, 1000),
    "streams.batch_size": (1, 10_000),
    "metrics.port": (0, 65_535),
}

_MSGSPEC_PATH = re.compile(r" - at `\$(.*)`$")


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read, substitute, decode and validate a config file, then apply env overrides.

    ``path`` None: ``MESH_CONFIG``, else ``config/mesh.yaml`` if it exists, else defaults.
    """
    env = dict(os.environ if environ is None else environ)
    if path is None:
        path = env.get("MESH_CONFIG") or (
            "config/mesh.yaml" if Path("config/mesh.yaml").exists() else None
        )
    if path is None:
        config = Config()
    else:
        source = str(path)
        try:
            text = read_document(path)
        except OSError as error:
            raise ConfigError(
                source,
                "",
                f"cannot read the file: {error.strerror or error}",
                "pass --config PATH to an existing file",
            ) from None
        except DocumentInvalid as error:
            raise ConfigError(source, error.where, error.problem, error.fix) from None
        config = parse_config(text, source, env)
    return _apply_overrides(config, env)


def parse_config(text: str, source: str, environ: dict[str, str] | None = None) -> Config:
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(
            source,
            "",
            f"the config is larger than {MAX_CONFIG_BYTES >> 20} MiB",
            "a config is a few dozen lines: is this the right file?",
        )
    try:
        raw = parse_yaml(text, source)
    except DocumentInvalid as error:
        raise ConfigError(source, error.where, error.problem, error.fix) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            source,
            "",
            f"the top level must be a mapping, not {type(raw).__name__}",
            "start with 'app: my-app'",
        )
    raw.pop("source", None)
    raw = substitute(raw, source, environ)
    try:
        # strict=False: a substituted "${PORT:-0}" is the string "0" and must become an int.
        config = msgspec.convert(raw, Config, str_keys=True, strict=False)
    except msgspec.ValidationError as error:
        raise _config_error(source, str(error)) from error
    config = msgspec.structs.replace(config, source=source)
    validate(config)
    return config


def with_drain_timeout(config: Config, value: str) -> Config:
    """``config`` with ``node.drain_timeout`` from the command line, checked like the file's."""
    changed = msgspec.structs.replace(
        config,
        node=msgspec.structs.replace(config.node, drain_timeout=value),
        source="<command line>",
    )
    try:
        validate(changed)
    except ConfigError as error:
        raise ConfigError("<command line>", "--drain-timeout", error.problem, error.fix) from None
    return msgspec.structs.replace(changed, source=config.source)


def _config_error(source: str, message: str) -> ConfigError:
    match = _MSGSPEC_PATH.search(message)
    path = match.group(1).lstrip(".") if match else ""
    problem = _MSGSPEC_PATH.sub("", message)
    unknown = re.match(r"Object contains unknown field `([^`]+)`", problem)
    if unknown:
        key = unknown.group(1)
        full = f"{path}.{key}" if path else key
        return ConfigError(
            source,
            full,
            f"unknown key {key!r}",
            "remove it or check its spelling against the README's configuration section",
        )
    missing = re.match(r"Object missing required field `([^`]+)`", problem)
    if missing:
        key = missing.group(1)
        full = f"{path}.{key}" if path else key
        return ConfigError(source, full, "required key is missing", f"add '{key}: ...'")
    return ConfigError(
        source, path or "(top level)", problem, "see the README's configuration section"
    )


def validate(config: Config) -> None:
    """Check values msgspec cannot: identifiers, durations, ranges, duplicate topics."""
    source = config.source
    _check(source, "app", lambda: validate_app_id(config.app))
    durations = {
        "database.statement_timeout": config.database.statement_timeout,
        "streams.lease": config.streams.lease,
        "database.pool_max_idle": config.database.pool_max_idle,
        "streams.poll_interval": config.streams.poll_interval,
        "streams.leader_interval": config.streams.leader_interval,
        "streams.reap_interval": config.streams.reap_interval,
        "node.drain_timeout": config.node.drain_timeout,
        "node.listener_check_interval": config.node.listener_check_interval,
        "quorum.refresh_interval": config.quorum.refresh_interval,
    }
    for key, value in durations.items():
        _check(source, key, lambda value=value: parse_duration(value))
        low, high = DURATION_BOUNDS[key]
        seconds = parse_duration(value)
        if not low <= seconds <= high:
            fix = f"use a value from {low:g} to {high:g} seconds"
            raise ConfigError(source, key, f"{seconds:g} s is outside {low:g} s to {high:g} s", fix)
    counts = {
        "database.pool_size": config.database.pool_size,
        "streams.batch_size": config.streams.batch_size,
        "metrics.port": config.metrics.port,
    }
    for key, count in counts.items():
        _within(source, key, count, *COUNT_BOUNDS[key])
    _check(source, "retry", lambda: config.retry_policy())
    taken: set[str] = set()  # worker topics and task queue names: streams, so unique
    for index, worker in enumerate(config.workers):
        prefix = f"workers[{index}]"
        _entry(config, prefix, "topic", worker.topic, worker, taken)
        _function_path(config.source, f"{prefix}.function", worker.function)
        if worker.batch_size is not None:
            _within(config.source, f"{prefix}.batch_size", worker.batch_size, 1, 10_000)
    for index, queue in enumerate(config.task_queues):
        prefix = f"task_queues[{index}]"
        _entry(config, prefix, "name", queue.name, queue, taken)
        for kind in ("workflows", "activities"):
            for number, path in enumerate(getattr(queue, kind)):
                _function_path(config.source, f"{prefix}.{kind}[{number}]", path)
    ids: set[str] = set()
    for index, schedule in enumerate(config.schedules):
        key = f"schedules[{index}]"
        _check(config.source, key, lambda s=schedule: schedule_spec(s))
        if schedule.id in ids:
            raise ConfigError(config.source, f"{key}.id", f"schedule {schedule.id!r} is twice")
        ids.add(schedule.id)


def schedule_spec(entry: ScheduleConfig) -> ScheduleSpec:
    """The schedule an entry describes (:class:`InvalidPayload` says what is wrong)."""
    return make_spec(
        entry.id,
        entry.workflow,
        entry.args,
        task_queue=entry.task_queue,
        cron=entry.cron,
        every=entry.every,
        offset=entry.offset,
        time_zone=entry.time_zone,
        overlap=entry.overlap,
        catchup_window=entry.catchup_window,
        jitter=entry.jitter,
    )


def _entry(
    config: Config,
    prefix: str,
    key: str,
    name: str,
    entry: WorkerConfig | TaskQueueConfig,
    taken: set[str],
) -> None:
    """What worker and task-queue entries share: a valid stream name used once, a
    concurrency in range, a valid retry policy."""
    source = config.source
    _check(source, f"{prefix}.{key}", lambda: validate_topic(name))
    if name in taken:
        fix = "merge the two entries or raise concurrency"
        raise ConfigError(source, f"{prefix}.{key}", f"{name!r} is configured twice", fix)
    taken.add(name)
    _within(source, f"{prefix}.concurrency", entry.concurrency, 1, 100_000)
    _check(source, f"{prefix}.retry", lambda: config.retry_policy(entry))


def _function_path(source: str, key: str, path: str) -> None:
    if ":" not in path:
        raise ConfigError(
            source, key, f"{path!r} is not a function path", "write 'package.module:function'"
        )


def _check(source: str, key: str, check: Any) -> None:
    try:
        check()
    except (InvalidIdentifier, InvalidPayload, FunctionNotFound) as error:
        raise ConfigError(source, key, str(error)) from error


def _within(source: str, key: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(source, key, f"must be from {low} to {high}, not {value}")


def _apply_overrides(config: Config, env: dict[str, str]) -> Config:
    changes: dict[str, Any] = {}
    database = config.database
    if env.get("MESH_DATABASE_URL"):
        database = msgspec.structs.replace(database, url=env["MESH_DATABASE_URL"])
    if env.get("MESH_LISTEN_URL"):
        database = msgspec.structs.replace(database, listen_url=env["MESH_LISTEN_URL"])
    if database is not config.database:
        changes["database"] = database
    if env.get("MESH_APP"):
        try:
            validate_app_id(env["MESH_APP"])
        except InvalidIdentifier as error:
            raise ConfigError("<env>", "MESH_APP", str(error)) from error
        changes["app"] = env["MESH_APP"]
    if env.get("MESH_QUORUM_SECRET"):
        changes["quorum"] = msgspec.structs.replace(config.quorum, secret=env["MESH_QUORUM_SECRET"])
    if env.get("MESH_LOG_LEVEL"):
        level = env["MESH_LOG_LEVEL"].lower()
        if level not in ("debug", "info", "warn", "warning", "error", "silent"):
            raise ConfigError(
                "<env>",
                "MESH_LOG_LEVEL",
                f"unknown level {level!r}",
                "use debug, info, warn, error or silent",
            )
        changes["log_level"] = level
    return msgspec.structs.replace(config, **changes) if changes else config
