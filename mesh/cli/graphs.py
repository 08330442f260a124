"""The workflow commands of ``mesh``: deploy, activate, pub, signal, job, jobs, export,
interrupt, scrub. Each takes ``--json``; JSON input may also come from ``@file`` or ``-``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mesh.cli.context import app_of, session


def add_commands(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy", help="validate and store a manifest version (not yet active)"
    )
    deploy.add_argument("path", help="the manifest YAML (its $refs are resolved)")
    deploy.set_defaults(handler=_deploy)
    activate = commands.add_parser("activate", help="make a deployed version the active one")
    activate.add_argument("version")
    activate.add_argument("--app", help="the app id (default: the config's)")
    activate.add_argument(
        "--delay",
        default="0",
        metavar="SECONDS",
        help="announce it to the quorum now, activate it this much later (at most an hour)",
    )
    activate.set_defaults(handler=_activate)
    pub = commands.add_parser("pub", help="start a job: publish JSON data to a graph's topic")
    pub.add_argument("topic", help="the topic a graph subscribes to")
    pub.add_argument(
        "data", nargs="?", default="{}", help="the job's input: JSON, @file or - (stdin)"
    )
    pub.add_argument("--job-id", default="", help="the job id (default: the trigger's, or new)")
    pub.add_argument(
        "--pending",
        metavar="SECONDS",
        help="only reserve the job (its data written, nothing run) for SECONDS or a duration",
    )
    pub.add_argument("--wait", action="store_true", help="wait for the job and print its data")
    pub.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits")
    pub.add_argument("--app", help="the app id (default: the config's)")
    pub.set_defaults(handler=_pub)
    job = commands.add_parser("job", help="one job: state, status and activity timeline")
    job.add_argument("job_id")
    job.add_argument("--json", action="store_true", help="print JSON")
    job.add_argument("--app", help="the app id (default: the config's)")
    job.set_defaults(handler=_job)
    jobs = commands.add_parser("jobs", help="recent jobs of the app")
    jobs.add_argument(
        "--status",
        choices=["running", "pending", "done", "failed", "interrupted"],
        help="only jobs in this state",
    )
    jobs.add_argument(
        "--limit", type=int, default=50, help="at most this many, newest first (1 to 10000)"
    )
    jobs.add_argument("--app", help="the app id (default: the config's)")
    jobs.set_defaults(handler=_jobs)
    for command in (deploy, activate, pub, jobs, *_add_job_operations(commands)):
        command.add_argument("--json", action="store_true", help="print JSON")


def _add_job_operations(commands: Any) -> list[Any]:
    """signal, interrupt, scrub and export: what an operator does to running jobs."""
    signal = commands.add_parser(
        "signal", help="resume the jobs whose hook waits on TOPIC with matching data"
    )
    signal.add_argument("topic", help="the hook's topic")
    signal.add_argument(
        "data", nargs="?", default="{}", help="the signal data: JSON, @file or - (stdin)"
    )
    signal.add_argument(
        "--code", type=int, default=200, help="the status code the hook sees (default 200)"
    )
    signal.set_defaults(handler=_signal)
    interrupt = commands.add_parser(
        "interrupt", help="end a running job now, with its queued activities withdrawn"
    )
    interrupt.add_argument("job_id")
    interrupt.add_argument("--reason", default="interrupted", help="recorded as its error")
    interrupt.add_argument("--code", type=int, default=410, help="its error code (default 410)")
    interrupt.add_argument("--descend", action="store_true", help="its child jobs too")
    interrupt.set_defaults(handler=_interrupt)
    scrub = commands.add_parser(
        "scrub", help="delete a finished job and its data now (its id becomes free)"
    )
    scrub.add_argument("job_id")
    scrub.set_defaults(handler=_scrub)
    export = commands.add_parser("export", help="one job as JSON, with its activity timeline")
    export.add_argument("job_id")
    export.set_defaults(handler=_export)
    operations = [signal, interrupt, scrub, export]
    for command in operations:
        command.add_argument("--app", help="the app id (default: the config's)")
    return operations


def _deploy(args: argparse.Namespace) -> int:
    from mesh.manifests import load_manifest
    from mesh.pg.apps import deploy
    from mesh.pg.database import run_once
    from mesh.pg.migrations import check_schema

    _config, dsn = session(args)
    manifest = load_manifest(args.path)  # every problem is reported before anything is stored

    def store(conn: Any) -> bool:
        check_schema(conn)
        return deploy(conn, manifest)

    new = run_once(dsn, store)
    app, version = manifest.app.id, manifest.app.version
    if args.json:
        print(json.dumps({"app": app, "version": version, "deployed": new}))
        return 0
    state = "deployed" if new else "already deployed (identical)"
    print(
        f"app {app!r} version {version!r}: {state}; activate it with `mesh activate {version} --app {app}`"
    )
    return 0


def _activate(args: argparse.Namespace) -> int:
    import time

    from mesh.model.quorum import activation_delay
    from mesh.pg.apps import activate, announce_activation
    from mesh.pg.database import run_once

    delay = activation_delay(args.delay)  # refused before anything is sent
    config, dsn = session(args)
    app = app_of(args, config)
    secret = config.quorum.secret.encode() or None
    if delay:
        run_once(dsn, announce_activation, app, args.version, delay, secret=secret, sender="cli")
        if not args.json:
            print(f"app {app!r}: version {args.version!r} announced, active in {delay:g} s")
        time.sleep(delay)
    run_once(dsn, activate, app, args.version, secret=secret, sender="cli")
    if args.json:
        print(json.dumps({"app": app, "version": args.version, "active": True}))
    else:
        print(f"app {app!r}: version {args.version!r} is active")
    return 0


def _pub(args: argparse.Namespace) -> int:
    from mesh.cli.payloads import json_argument
    from mesh.errors import ConfigError, JobFailed
    from mesh.pg.client import MeshClient

    if args.wait and not 0 < args.timeout <= 86400 * 365:  # False for nan too
        # Refused before anything is written: a job must not start for a wait that cannot be.
        raise ConfigError(
            "<command line>",
            "--timeout",
            f"{args.timeout!r} is not a number of seconds to wait",
            "give a positive number, e.g. --timeout 30",
        )
    config, dsn = session(args, quiet=True)
    data = json_argument(args.data, "the job data")
    with MeshClient(dsn, app=app_of(args, config)) as client:
        job_id = client.pub(args.topic, data, job_id=args.job_id, pending=args.pending)
        if not args.wait:
            print(json.dumps({"job_id": job_id}) if args.json else job_id)
            return 0
        try:
            record = client.wait(job_id, timeout=args.timeout)
        except JobFailed as failure:
            print(json.dumps({"job_id": job_id, "status": failure.status, "error": failure.error}))
            return 1
    status = "persisted" if record.persisted else record.status
    print(json.dumps({"job_id": job_id, "status": status, "data": record.data}))
    return 0


def _job(args: argparse.Namespace) -> int:
    from mesh.errors import UnknownJob
    from mesh.pg.database import run_once
    from mesh.pg.job_queries import get_job

    config, dsn = session(args, quiet=True)
    app = app_of(args, config)
    record = run_once(dsn, get_job, app, args.job_id)
    if record is None:
        raise UnknownJob(f"no job {args.job_id!r} in app {app!r} (never started, or pruned)")
    if args.json:
        print(json.dumps(record.as_dict(), indent=2, default=str))
        return 0
    print(f"job {record.key}  ({record.topic}, app {app} version {record.version})")
    print(f"  status   {record.status}" + (f": {record.error['message']}" if record.error else ""))
    print(f"  created  {record.created_at:%Y-%m-%d %H:%M:%S.%f}"[:-3])
    if record.persisted_at:
        took = (record.persisted_at - record.created_at).total_seconds() * 1000
        print(f"  answered {record.persisted_at:%Y-%m-%d %H:%M:%S} ({took:.0f} ms; still open)")
    if record.status == "pending" and record.expires_at:
        print(f"  reserved until {record.expires_at:%Y-%m-%d %H:%M:%S} (pending: nothing runs)")
    if record.completed_at:
        took = (record.completed_at - record.created_at).total_seconds() * 1000
        print(f"  finished {record.completed_at:%Y-%m-%d %H:%M:%S} ({took:.0f} ms)")
    print("  data")
    for name, value in sorted(record.data.items()):
        print(f"    {name} = {json.dumps(value)}")
    print("  timeline")
    for step in record.timeline:
        offset = (step.at - record.created_at).total_seconds() * 1000
        what = "entered" if step.leg == 1 else f"completed {step.code}"
        where = f" [{step.dimension}]" if step.dimension else ""
        print(f"    +{offset:7.1f} ms  {step.activity}{where} {what}")
    return 0


def _jobs(args: argparse.Namespace) -> int:
    from mesh.errors import ConfigError
    from mesh.pg.database import run_once
    from mesh.pg.job_queries import list_jobs

    if not 1 <= args.limit <= 10_000:
        raise ConfigError("<command line>", "--limit", f"{args.limit} is not from 1 to 10000")
    config, dsn = session(args, quiet=True)
    listing = run_once(dsn, list_jobs, app_of(args, config), status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps([_summary(job) for job in listing], indent=2))
        return 0
    for job in listing:
        print(f"{job.created_at:%Y-%m-%d %H:%M:%S}  {job.status:<11} {job.topic:<24} {job.key}")
    if not listing:
        print("no jobs" + (f" with status {args.status}" if args.status else ""))
    return 0


def _summary(job: Any) -> dict[str, Any]:
    return {
        "job_id": job.key,
        "status": job.status,
        "topic": job.topic,
        "version": job.version,
        "created_at": job.created_at.isoformat(),
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
    }


def _code(value: int, option: str) -> int:
    from mesh.errors import ConfigError

    if not 1 <= value <= 999:
        raise ConfigError("<command line>", option, f"{value} is not a status code from 1 to 999")
    return value


def _client(args: argparse.Namespace) -> Any:
    from mesh.pg.client import MeshClient

    config, dsn = session(args, quiet=True)
    return MeshClient(dsn, app=app_of(args, config))


def _signal(args: argparse.Namespace) -> int:
    from mesh.cli.payloads import json_argument
    from mesh.model.ids import validate_topic

    validate_topic(args.topic)
    code = _code(args.code, "--code")
    data = json_argument(args.data, "the signal data")  # refused before anything is sent
    with _client(args) as client:
        resumed = client.signal(args.topic, data, code=code)
    if args.json:
        print(json.dumps({"topic": args.topic, "resumed": resumed}))
    elif resumed:
        print(f"resumed {resumed} job(s) waiting on {args.topic!r}")
    else:
        print(f"no job waits on {args.topic!r} with this data yet: kept for the hook that does")
    return 0


def _interrupt(args: argparse.Namespace) -> int:
    from mesh.model.limits import check_text

    check_text(args.reason, "--reason")
    code = _code(args.code, "--code")
    with _client(args) as client:
        ended = client.interrupt(args.job_id, reason=args.reason, code=code, descend=args.descend)
        status = "" if ended else client.get_status(args.job_id)
    if args.json:
        print(json.dumps({"job_id": args.job_id, "interrupted": ended, "status": status or None}))
    elif ended:
        print(f"job {args.job_id}: interrupted" + (" with its children" if args.descend else ""))
    else:
        print(f"job {args.job_id} had already finished ({status}): nothing to interrupt")
    return 0 if ended else 1


def _scrub(args: argparse.Namespace) -> int:
    with _client(args) as client:
        scrubbed = client.scrub(args.job_id)
    if args.json:
        print(json.dumps({"job_id": args.job_id, "scrubbed": scrubbed}))
    elif scrubbed:
        print(f"job {args.job_id}: deleted with its data; the id is free")
    else:
        print(
            f"job {args.job_id} is running or unknown: nothing deleted (interrupt it first, "
            "or check the id with `mesh jobs`)"
        )
    return 0 if scrubbed else 1


def _export(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(json.dumps(client.export(args.job_id), indent=2, default=str))
    return 0
