"""``mesh workflow``: workflows written as code, from the command line: start (and wait),
result, status, signal, cancel, terminate, export. ``mesh job ID`` shows a workflow's
recorded calls."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mesh.cli.context import app_of, session


def add_commands(commands: Any) -> None:
    group = commands.add_parser("workflow", help="workflows written as code")
    verbs = group.add_subparsers(dest="workflow_command", metavar="COMMAND", required=True)
    start = verbs.add_parser("start", help="start a workflow by name (prints its id)")
    start.add_argument("name", help="the workflow function's name")
    start.add_argument(
        "args", nargs="?", default="[]", help="its arguments: a JSON list, @file or - (stdin)"
    )
    start.add_argument("--task-queue", default="default", help="the task queue that runs it")
    start.add_argument("--workflow-id", default="", help="its id (default: a new one)")
    start.add_argument("--wait", action="store_true", help="wait and print its result")
    start.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits")
    start.set_defaults(handler=_start)
    result = verbs.add_parser("result", help="wait for a workflow's result and print it")
    result.add_argument("workflow_id")
    result.add_argument("--timeout", type=float, default=60.0)
    result.set_defaults(handler=_result)
    status = verbs.add_parser("status", help="running, done, failed or interrupted")
    status.add_argument("workflow_id")
    status.set_defaults(handler=_status)
    signal = verbs.add_parser("signal", help="send a signal its workflow.condition waits for")
    signal.add_argument("workflow_id")
    signal.add_argument("signal_id")
    signal.add_argument(
        "data", nargs="?", default="null", help="the signal's data: JSON, @file or - (stdin)"
    )
    signal.set_defaults(handler=_signal)
    cancel = verbs.add_parser("cancel", help="ask a workflow to stop")
    cancel.add_argument("workflow_id")
    cancel.set_defaults(handler=_cancel)
    terminate = verbs.add_parser("terminate", help="end a workflow now (its code is not told)")
    terminate.add_argument("workflow_id")
    terminate.add_argument("--reason", default="terminated", help="recorded as its error")
    terminate.set_defaults(handler=_terminate)
    export = verbs.add_parser("export", help="a workflow's data, state, status and timeline")
    export.add_argument("workflow_id")
    export.add_argument(
        "--allow", nargs="+", metavar="PART", help="only these: data state status timeline"
    )
    export.set_defaults(handler=_export)
    describe = verbs.add_parser(
        "describe",
        help="where a workflow stands: the calls it waits for (attempts, next retry, last "
        "failure), the nodes serving its task queue, warnings (JSON)",
    )
    describe.add_argument("workflow_id")
    describe.set_defaults(handler=_describe)
    for verb in (start, result, status, signal, cancel, terminate, export, describe):
        verb.add_argument("--app", help="the app id (default: the config's)")


def _timeout(args: argparse.Namespace) -> None:
    from mesh.errors import ConfigError

    if not 0 < args.timeout <= 86400 * 365:  # False for nan too
        raise ConfigError(
            "<command line>",
            "--timeout",
            f"{args.timeout!r} is not a number of seconds to wait",
            "give a positive number, e.g. --timeout 30",
        )


def _client(args: argparse.Namespace) -> Any:
    from mesh.pg.client import MeshClient

    config, dsn = session(args, quiet=True)
    return MeshClient(dsn, app=app_of(args, config))


def _print_result(client: Any, workflow_id: str, timeout: float) -> int:
    from mesh.errors import JobFailed

    try:
        value = client.get_handle(workflow_id).result(timeout=timeout)
    except JobFailed as failure:
        print(
            json.dumps(
                {"workflow_id": workflow_id, "status": failure.status, "error": failure.error}
            )
        )
        return 1
    print(json.dumps({"workflow_id": workflow_id, "status": "done", "result": value}))
    return 0


def _start(args: argparse.Namespace) -> int:
    from mesh.cli.payloads import json_argument
    from mesh.errors import ConfigError

    if args.wait:
        _timeout(args)  # refused before anything is written
    arguments = json_argument(args.args, "the workflow's arguments")
    if not isinstance(arguments, list):
        raise ConfigError(
            "<command line>", "args", "the arguments are a JSON list", "write e.g. '[\"sku-1\", 2]'"
        )
    with _client(args) as client:
        handle = client.start_workflow(
            args.name, *arguments, task_queue=args.task_queue, workflow_id=args.workflow_id
        )
        if not args.wait:
            print(handle.workflow_id)
            return 0
        return _print_result(client, handle.workflow_id, args.timeout)


def _result(args: argparse.Namespace) -> int:
    _timeout(args)
    with _client(args) as client:
        return _print_result(client, args.workflow_id, args.timeout)


def _describe(args: argparse.Namespace) -> int:
    import msgspec

    with _client(args) as client:
        described = client.describe(args.workflow_id)
    print(msgspec.json.format(msgspec.json.encode(described).decode(), indent=2))
    return 0


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(client.get_status(args.workflow_id))
    return 0


def _signal(args: argparse.Namespace) -> int:
    from mesh.cli.payloads import json_argument
    from mesh.errors import UnknownJob

    data = json_argument(args.data, "the signal data")
    with _client(args) as client:
        if not client.get_handle(args.workflow_id).signal(args.signal_id, data):
            raise UnknownJob(f"no running workflow {args.workflow_id!r}")
    print(f"signal {args.signal_id!r} sent to {args.workflow_id}")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from mesh.errors import UnknownJob

    with _client(args) as client:
        if not client.get_handle(args.workflow_id).cancel():
            raise UnknownJob(f"no running workflow {args.workflow_id!r}")
    print(f"asked {args.workflow_id} to stop")
    return 0


def _terminate(args: argparse.Namespace) -> int:
    from mesh.errors import UnknownJob

    with _client(args) as client:
        if not client.get_handle(args.workflow_id).terminate(args.reason):
            raise UnknownJob(f"no running workflow {args.workflow_id!r}")
    print(f"terminating {args.workflow_id}")
    return 0


def _export(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(json.dumps(client.get_handle(args.workflow_id).export(args.allow)))
    return 0
