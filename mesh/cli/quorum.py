"""The control-plane commands of ``mesh``: rollcall, throttle, broadcast, listen."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

import msgspec
import trio

from mesh.cli.context import session
from mesh.cli.payloads import json_argument
from mesh.errors import ConfigError, DatabaseError, InvalidIdentifier, InvalidPayload
from mesh.model.ids import validate_stream, validate_topic
from mesh.model.quorum import Profile, User, validate_throttle


def add_commands(commands: Any) -> None:
    rollcall = commands.add_parser(
        "rollcall", help="list the live members of the mesh with their health"
    )
    rollcall.add_argument("--json", action="store_true", help="print JSON")
    rollcall.add_argument(
        "--delay",
        type=int,
        default=500,
        metavar="MS",
        help="how long to wait for answers (default 500)",
    )
    rollcall.set_defaults(handler=_rollcall)

    throttle = commands.add_parser("throttle", help="slow, pause (-1) or resume (0) consumption")
    throttle.add_argument(
        "ms", type=int, metavar="MS", help="-1 pauses, 0 resumes, N waits N ms between messages"
    )
    throttle.add_argument("--topic", help="only this worker topic (or 'engine')")
    throttle.add_argument("--guid", help="only this member (see `mesh rollcall`)")
    throttle.add_argument("--json", action="store_true", help="print JSON")
    throttle.set_defaults(handler=_throttle)

    broadcast = commands.add_parser("broadcast", help="send a user message to every member")
    broadcast.add_argument("topic")
    broadcast.add_argument("payload", metavar="JSON", help="the message: JSON, @file or - (stdin)")
    broadcast.set_defaults(handler=_broadcast)

    listen = commands.add_parser(
        "listen", help="print quorum traffic as it arrives, until interrupted"
    )
    listen.add_argument(
        "--json", action="store_true", help="one JSON object per line (the default anyway)"
    )
    listen.set_defaults(handler=_listen)


def _rollcall(args: argparse.Namespace) -> int:
    from mesh.control_session import control_session

    config, dsn = session(args, quiet=True)

    if not 1 <= args.delay <= 60_000:
        raise ConfigError("<command line>", "--delay", f"{args.delay} ms is not from 1 to 60000")

    async def main() -> tuple[list[Profile], str | None]:
        async with control_session(config, dsn) as client:
            profiles = await client.roll_call(args.delay / 1000)
            return profiles, None if profiles else await client.signing_problem()

    profiles, problem = trio.run(main)
    if args.json:
        print(msgspec.json.encode(profiles).decode())
    else:
        print(_table(profiles) if profiles else f"no member of app {config.app!r} answered")
    if problem:
        print(f"mesh: members ignore unsigned pings: {problem}", file=sys.stderr)
    return 0


def _table(profiles: list[Profile]) -> str:
    rows = [
        {
            "guid": p.guid,
            "roles": ",".join(p.roles),
            "topics": ",".join(p.topics) or "-",
            "depth": str(sum(s.depth for s in p.streams)),
            "throttle": ",".join(f"{k}={v}" for k, v in p.throttles.items() if v) or "0",
            "cpu%": f"{p.system.cpu_percent:.0f}",
            "memory": f"{p.system.memory_used_bytes / 2**30:.1f}/{p.system.memory_total_bytes / 2**30:.1f}G",
            "processed": str(p.counts.processed),
            "pid": str(p.pid),
        }
        for p in profiles
    ]
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    lines = ["  ".join(h.ljust(widths[h]) for h in headers)]
    lines += ["  ".join(r[h].ljust(widths[h]) for h in headers) for r in rows]
    return "\n".join(lines)


def _throttle(args: argparse.Namespace) -> int:
    from mesh.control_session import control_session

    try:
        validate_throttle(args.ms)
    except InvalidPayload as error:
        raise ConfigError("<command line>", "MS", str(error)) from error
    # An empty --topic or --guid must not quietly become "the whole mesh".
    if args.topic is not None:
        try:
            validate_stream(args.topic)
        except InvalidIdentifier as error:
            raise ConfigError("<command line>", "--topic", str(error), _WHOLE_MESH) from None
    if args.guid is not None and not args.guid.strip():
        raise ConfigError("<command line>", "--guid", "a member's guid is required", _WHOLE_MESH)
    config, dsn = session(args, quiet=True)

    async def main() -> None:
        async with control_session(config, dsn) as client:
            if args.guid:
                members = {p.guid for p in await client.roll_call(0.5)}
                if args.guid not in members:
                    raise ConfigError(
                        "<command line>",
                        "--guid",
                        f"no live member of app {config.app!r} has guid {args.guid!r}",
                        f"members now: {', '.join(sorted(members)) or 'none'} (see `mesh rollcall`)",
                    )
            await client.set_throttle(args.ms, topic=args.topic or "", guid=args.guid or "")

    trio.run(main)
    scope = (
        " ".join(
            filter(
                None,
                [
                    f"topic {args.topic}" if args.topic else "",
                    f"member {args.guid}" if args.guid else "",
                ],
            )
        )
        or "the whole mesh"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "app": config.app,
                    "throttle_ms": args.ms,
                    "topic": args.topic,
                    "guid": args.guid,
                }
            )
        )
        return 0
    effect = {-1: "paused", 0: "resumed"}.get(
        args.ms, f"throttled to one message per {args.ms} ms per consumer"
    )
    print(f"{scope}: {effect}")
    return 0


_WHOLE_MESH = "leave the option out to throttle the whole mesh"


def _broadcast(args: argparse.Namespace) -> int:
    from mesh.control_session import control_session

    try:
        validate_topic(args.topic)
    except InvalidIdentifier as error:
        raise ConfigError("<command line>", "TOPIC", str(error)) from None
    message = json_argument(args.payload, "the JSON argument")
    config, dsn = session(args, quiet=True)

    async def main() -> None:
        async with control_session(config, dsn) as client:
            await client.publish(User(topic=args.topic, message=message))

    trio.run(main)
    print(json.dumps({"app": config.app, "topic": args.topic, "sent": True}))
    return 0


def _listen(args: argparse.Namespace) -> int:
    from mesh.control_session import control_session

    config, dsn = session(args, quiet=True)
    send, receive = trio.open_memory_channel[str](10_000)

    def enqueue(payload: str) -> None:
        try:
            send.send_nowait(payload)
        except trio.WouldBlock:
            print("mesh listen: falling behind, a message was dropped", file=sys.stderr)

    def show(message: Any) -> None:
        # One JSON object per line (its "type" first), for jq and log shippers alike.
        print(msgspec.json.encode(message).decode(), flush=True)

    async def print_messages(client: Any) -> None:
        async for payload in receive:
            try:
                # Unsealed (checked, with a secret) and decoded within the limits, then
                # resolved when it came by reference: any payload can arrive here.
                message = await client.resolve(client.open(payload))
            except (InvalidPayload, DatabaseError) as error:
                note = {"type": "invalid", "error": str(error), "payload": payload[:500]}
                print(json.dumps(note), flush=True)
                continue
            if message is not None:
                show(message)

    async def main() -> None:
        async with (
            control_session(config, dsn, on_general=enqueue) as client,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(print_messages, client)
            print(
                f"listening to app {config.app!r}; interrupt to stop", file=sys.stderr, flush=True
            )
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()

    trio.run(main)
    return 0
