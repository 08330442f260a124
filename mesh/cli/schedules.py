"""``mesh schedule``: create, list, describe, pause, resume, trigger and delete the
schedules that start workflows written as code (the elected leader fires them)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mesh.cli.context import app_of, session


def add_commands(commands: Any) -> None:
    group = commands.add_parser("schedule", help="schedules that start workflows")
    verbs = group.add_subparsers(dest="schedule_command", metavar="COMMAND", required=True)
    create = verbs.add_parser("create", help="start a workflow on a cron expression or interval")
    create.add_argument("schedule_id")
    create.add_argument("workflow", help="the workflow's name")
    create.add_argument(
        "args", nargs="?", default=None, help="its arguments, a JSON list (--graph: an object)"
    )
    create.add_argument(
        "--graph", action="store_true", help="WORKFLOW is a YAML graph's topic; ARGS its data"
    )
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="five fields (or six, seconds first): '*/5 * * * *'")
    when.add_argument("--every", help="an interval: '30 seconds', '1 hour'")
    create.add_argument("--offset", default="0", help="with --every: shift the ticks")
    create.add_argument("--time-zone", default="UTC", help="with --cron: an IANA name")
    create.add_argument("--task-queue", default="default")
    create.add_argument(
        "--overlap",
        default="skip",
        choices=["skip", "buffer_one", "allow_all", "cancel_other", "terminate_other"],
        help="what a tick does while the previous run still goes on (default: skip)",
    )
    create.add_argument("--catchup-window", default="60 seconds")
    create.add_argument("--jitter", default="0", help="delay each run by up to this much")
    create.add_argument("--replace", action="store_true", help="replace a schedule of that id")
    create.set_defaults(handler=_create)
    backfill = verbs.add_parser(
        "backfill", help="start the runs of past ticks in a range (those without one)"
    )
    backfill.add_argument("schedule_id")
    backfill.add_argument("--start", required=True, help="ISO 8601 with a zone: 2026-12-01T00:00Z")
    backfill.add_argument("--end", required=True, help="ISO 8601 with a zone")
    backfill.set_defaults(handler=_backfill)
    listing = verbs.add_parser("list", help="the app's schedules")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    listing.set_defaults(handler=_list)
    verbs_of_one = {
        "describe": "a schedule as JSON: next fire times, last runs, counts",
        "pause": "stop firing (resume goes on from then)",
        "resume": "fire again, from now",
        "trigger": "start a run now (prints its workflow id)",
        "delete": "delete a schedule (its runs stay)",
    }
    parsers = [create, listing, backfill]
    for verb, text in verbs_of_one.items():
        parser = verbs.add_parser(verb, help=text)
        parser.add_argument("schedule_id")
        parser.set_defaults(handler=_one)
        parsers.append(parser)
    for parser in parsers:
        parser.add_argument("--app", help="the app id (default: the config's)")


def _client(args: argparse.Namespace) -> Any:
    from mesh.pg.client import MeshClient

    config, dsn = session(args, quiet=True)
    return MeshClient(dsn, app=app_of(args, config))


def _create(args: argparse.Namespace) -> int:
    from mesh.cli.payloads import json_argument
    from mesh.errors import ConfigError

    default = "{}" if args.graph else "[]"
    arguments = json_argument(args.args or default, "the workflow's arguments")
    if args.graph and not isinstance(arguments, dict):
        raise ConfigError(
            "<command line>", "args", "a graph job's data is a JSON object", "write e.g. '{}'"
        )
    if not args.graph and not isinstance(arguments, list):
        raise ConfigError(
            "<command line>", "args", "the arguments are a JSON list", "write e.g. '[\"eu\", 2]'"
        )
    with _client(args) as client:
        new = client.create_schedule(
            args.schedule_id,
            args.workflow,
            arguments,
            replace=args.replace,
            graph=args.graph,
            cron=args.cron,
            every=args.every,
            offset=args.offset,
            time_zone=args.time_zone,
            task_queue=args.task_queue,
            overlap=args.overlap,
            catchup_window=args.catchup_window,
            jitter=args.jitter,
        )
        first = client.describe_schedule(args.schedule_id).next_fire_times[0]
    verb = "created" if new else "replaced"
    print(f"schedule {args.schedule_id!r} {verb}; first run at {first.isoformat()}")
    return 0


def _backfill(args: argparse.Namespace) -> int:
    from datetime import datetime

    from mesh.errors import ConfigError

    moments = []
    for key in ("start", "end"):
        text = getattr(args, key)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ConfigError(
                "<command line>", f"--{key}", f"{text!r} is not a moment with a time zone",
                "write ISO 8601 with a zone, e.g. 2026-12-01T00:00:00Z",
            )  # fmt: skip
        moments.append(moment)
    with _client(args) as client:
        started = client.backfill_schedule(args.schedule_id, *moments)
    for workflow_id in started:
        print(workflow_id)
    print(f"{len(started)} runs started", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = client.list_schedules(limit=1000)
    if args.json:
        _print_json([_summary(d) for d in found])
        return 0
    if not found:
        print("no schedules")
    for d in found:
        when = d.spec.cron or f"every {d.spec.every:g}s"
        state = "paused" if d.paused else f"next {d.next_fire_times[0].isoformat()}"
        print(
            f"{d.spec.id}  {d.spec.workflow}  {when}  {state}  "
            f"fired {d.fired} skipped {d.skipped} missed {d.missed}"
        )
    return 0


def _one(args: argparse.Namespace) -> int:
    verb = args.schedule_command
    with _client(args) as client:
        if verb == "describe":
            _print_json(client.describe_schedule(args.schedule_id))
        elif verb == "trigger":
            print(client.trigger_schedule(args.schedule_id))
        else:
            getattr(client, f"{verb}_schedule")(args.schedule_id)
            done = {"pause": "paused", "resume": "resumed", "delete": "deleted"}[verb]
            print(f"schedule {args.schedule_id!r} {done}")
    return 0


def _summary(described: Any) -> dict[str, Any]:
    import msgspec

    whole: dict[str, Any] = msgspec.to_builtins(described)
    return {key: whole[key] for key in ("spec", "paused", "fired", "skipped", "missed")} | {
        "next_fire_at": whole["next_fire_times"][0]
    }


def _print_json(value: Any) -> None:
    import msgspec

    print(msgspec.json.format(msgspec.json.encode(value).decode(), indent=2))
