"""The stream commands of ``mesh``: streams, streams send, streams dead, streams requeue."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from typing import Any

import msgspec

from mesh.cli.context import session
from mesh.errors import ConfigError, DatabaseError


def add_commands(commands: Any) -> None:
    streams = commands.add_parser(
        "streams", help="show each stream's depth, lag, leases and dead letters"
    )
    streams.add_argument("--json", action="store_true", help="print JSON")
    streams.add_argument(
        "--all-apps", action="store_true", help="every app, not only the configured one"
    )
    streams.set_defaults(handler=_streams)
    stream_commands = streams.add_subparsers(dest="streams_command", metavar="COMMAND")
    send = stream_commands.add_parser("send", help="enqueue one activity request on a worker topic")
    send.add_argument("topic")
    send.add_argument("payload", metavar="JSON", help="the request data: JSON, @file or - (stdin)")
    send.add_argument("--delay", type=float, default=0.0, help="seconds before it becomes visible")
    send.add_argument("--json", action="store_true", help="print JSON (as it does anyway)")
    send.set_defaults(handler=_streams_send)

    dead = stream_commands.add_parser("dead", help="list dead letters with their last error")
    dead.add_argument("--topic", help="only this stream")
    dead.add_argument("--limit", type=int, default=100)
    dead.add_argument("--json", action="store_true", help="print JSON")
    dead.set_defaults(handler=_streams_dead)
    requeue = stream_commands.add_parser(
        "requeue", help="put dead letters back on their streams with fresh attempts"
    )
    requeue.add_argument("--topic", help="only this stream")
    requeue.add_argument(
        "--id", type=int, action="append", help="only this dead letter (repeatable)"
    )
    requeue.add_argument("--json", action="store_true", help="print JSON")
    requeue.set_defaults(handler=_streams_requeue)


def _streams(args: argparse.Namespace) -> int:
    from mesh.pg.database import run_once
    from mesh.pg.migrations import check_schema
    from mesh.pg.streams import stream_stats

    config, dsn = session(args)

    def read(conn: Any) -> Any:
        check_schema(conn)
        return stream_stats(conn, None if args.all_apps else config.app)

    stats = run_once(dsn, read)
    rows = [
        {
            "app": s.app,
            "stream": s.stream,
            "depth": s.depth,
            "ready": s.ready,
            "delayed": s.delayed,
            "leased": s.leased,
            "lag_seconds": round(s.lag_seconds, 3),
            "dead_lettered": s.dead_lettered,
        }
        for s in stats
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(
            "no messages in any stream of any app"
            if args.all_apps
            else f"no messages in any stream of app {config.app!r}"
        )
        return 0
    headers = [
        "app",
        "stream",
        "depth",
        "ready",
        "delayed",
        "leased",
        "lag_seconds",
        "dead_lettered",
    ]
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in headers}
    print("  ".join(h.ljust(widths[h]) for h in headers))
    for row in rows:
        print("  ".join(str(row[h]).ljust(widths[h]) for h in headers))
    return 0


def _streams_send(args: argparse.Namespace) -> int:
    from mesh.cli.context import _config, _dsn
    from mesh.cli.payloads import json_argument
    from mesh.model.ids import new_message_id, validate_topic
    from mesh.model.messages import ActivityRequest, encode
    from mesh.model.outcomes import Outgoing
    from mesh.pg.database import run_once
    from mesh.pg.migrations import check_schema
    from mesh.pg.streams import enqueue

    config = _config(args)
    validate_topic(args.topic)  # refuse bad input before touching the database
    if not 0 <= args.delay <= 365 * 86400:  # False for nan too
        raise ConfigError(
            "<command line>", "--delay", f"{args.delay!r} is not from 0 to 31536000 seconds"
        )
    data = json_argument(args.payload, "the JSON argument")
    policy = config.retry_policy(next((w for w in config.workers if w.topic == args.topic), None))
    request = ActivityRequest(
        id=new_message_id(),
        app=config.app,
        topic=args.topic,
        data=data,
        retry=policy,
        sent_at=time.time(),
    )
    outgoing = Outgoing(
        app=config.app,
        stream=args.topic,
        payload=encode(request),
        max_attempts=policy.maximum_attempts,
        delay=args.delay,
    )

    def send(conn: Any) -> int:
        check_schema(conn)
        (message_id,) = enqueue(conn, [outgoing])
        return message_id

    dsn = _dsn(config)
    message_id = run_once(dsn, send)
    print(
        json.dumps(
            {
                "app": config.app,
                "topic": args.topic,
                "request_id": request.id,
                "message_id": message_id,
            }
        )
    )
    if not _served(config, dsn, args.topic):
        print(
            f"mesh: warning: no live member of app {config.app!r} serves topic "
            f"{args.topic!r}; the request waits until one does (see `mesh rollcall`)",
            file=sys.stderr,
        )
    return 0


def _served(config: Any, dsn: str, topic: str) -> bool:
    """Whether a live member serves ``topic`` (asked by roll call; a member that does not
    answer within half a second counts as absent)."""
    import trio

    from mesh.control_session import control_session

    async def ask() -> bool:
        async with control_session(config, dsn) as client:
            profiles = await client.roll_call(0.5)
            if not profiles and await client.signing_problem():
                return True  # members ignore this command's unsigned pings: unknown
            return any(topic in profile.topics for profile in profiles)

    try:
        return trio.run(ask)
    except DatabaseError:
        return True  # sent already; not knowing is no reason to warn


def _streams_dead(args: argparse.Namespace) -> int:
    from mesh.model.ids import validate_stream
    from mesh.pg.database import run_once
    from mesh.pg.stream_admin import list_dead_letters

    if args.topic is not None:
        validate_stream(args.topic)  # "" must not mean every stream
    if not 1 <= args.limit <= 10_000:
        raise ConfigError("<command line>", "--limit", f"{args.limit} is not from 1 to 10000")
    config, dsn = session(args)
    rows = run_once(dsn, list_dead_letters, config.app, args.topic, args.limit)
    if args.json:
        # The payload is the message itself (JSON), not a string holding it.
        print(msgspec.json.encode([_dead_letter(row) for row in rows]).decode())
    elif not rows:
        print(f"no dead letters in app {config.app!r}")
    for row in rows if not args.json else []:
        print(
            f"{row.id}  {row.stream}  attempts={row.attempts}/{row.max_attempts}  {row.dead_at:%Y-%m-%d %H:%M:%S}  {row.last_error}"
        )
    return 0


def _streams_requeue(args: argparse.Namespace) -> int:
    from mesh.model.ids import validate_stream
    from mesh.pg.database import run_once
    from mesh.pg.stream_admin import requeue_dead_letters

    if args.topic is not None:
        validate_stream(args.topic)  # "" must not mean every stream
    config, dsn = session(args)
    requeued = run_once(dsn, requeue_dead_letters, config.app, args.topic, args.id)
    missing = sorted(set(args.id or ()) - set(requeued))
    if args.json:
        print(json.dumps({"app": config.app, "requeued": requeued, "missing": missing}))
    else:
        print(f"requeued {len(requeued)} dead letter(s) of app {config.app!r}")
    if missing:
        print(
            f"mesh: no dead letter {', '.join(map(str, missing))} in app {config.app!r}"
            + (f" on stream {args.topic!r}" if args.topic else "")
            + ": see `mesh streams dead`",
            file=sys.stderr,
        )
        return 1
    return 0


def _dead_letter(row: Any) -> dict[str, Any]:
    fields = {name: getattr(row, name) for name in row.__slots__}
    with contextlib.suppress(msgspec.DecodeError):  # else shown as the text it is
        fields["payload"] = msgspec.json.decode(row.payload)
    return fields
