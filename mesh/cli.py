"""The ``mesh`` command line: run nodes, manage the database, inspect and feed streams."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import trio

from mesh import __version__
from mesh.bench_cli import add_commands as add_bench_commands
from mesh.cli_context import _config, _dsn
from mesh.errors import (
    ConfigError,
    DatabaseUnavailable,
    MeshError,
    SchemaOutOfDate,
    SupervisorGaveUp,
    lone_error,
)
from mesh.quorum_cli import add_commands as add_quorum_commands
from mesh.streams_cli import add_commands as add_streams_commands
from mesh.workflow_cli import add_commands as add_workflow_commands

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `... | head -1`


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return _run_handler(args)
    except ConfigError as error:
        print(f"mesh: configuration error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except SchemaOutOfDate as error:
        print(f"mesh: {error}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseUnavailable as error:
        print(f"mesh: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except SupervisorGaveUp as error:
        # An actor kept crashing: exit non-zero so systemd or the Procfile runner restarts us.
        print(f"mesh: giving up: {error}", file=sys.stderr)
        return EXIT_FAILED
    except MeshError as error:
        print(f"mesh: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`mesh demo | head -1`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run_handler(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except BaseExceptionGroup as group:
        lone = lone_error(group)
        if isinstance(lone, MeshError):
            raise lone from None  # reported like any other error of this command
        raise


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mesh", description="mesh: run nodes, manage the database, inspect and feed streams."
    )
    parser.add_argument("--version", action="version", version=f"mesh {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: $MESH_CONFIG or config/mesh.yaml)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    db = commands.add_parser("db", help="database commands")
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    db_commands.add_parser(
        "url", help="print the database URL in use (starts the embedded server if needed)"
    ).set_defaults(handler=_db_url)

    commands.add_parser(
        "migrate", help="create or upgrade the mesh schema (once per deploy)"
    ).set_defaults(handler=_migrate)

    run = commands.add_parser("run", help="run a node until SIGTERM")
    run.add_argument(
        "--role",
        action="append",
        choices=["engine", "quorum", "worker"],
        help="roles to run (repeatable; default: the config's)",
    )
    run.add_argument(
        "--topic",
        action="append",
        help="worker topics to serve (repeatable; default: all configured)",
    )
    run.add_argument(
        "--drain-timeout",
        metavar="SECONDS",
        help="how long SIGTERM waits for in-flight work (default: node.drain_timeout); keep it "
        "under the process runner's stop timeout (honcho kills after 5 s)",
    )
    run.set_defaults(handler=_run)

    add_streams_commands(commands)

    add_bench_commands(commands)

    add_quorum_commands(commands)

    add_workflow_commands(commands)

    demo = commands.add_parser("demo", help="run the order demo on the embedded database")
    demo.add_argument("--orders", type=int, default=200, help="how many (1 to 100000)")
    demo.set_defaults(handler=_demo)
    return parser


def _db_url(args: argparse.Namespace) -> int:
    print(_dsn(_config(args)))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from mesh.pg.database import run_once
    from mesh.pg.migrations import migrate

    config = _config(args)
    applied = run_once(_dsn(config), migrate)
    print(f"schema migrated: applied {applied}" if applied else "schema is up to date")
    return 0


def _run(args: argparse.Namespace) -> int:
    from mesh.config import with_drain_timeout
    from mesh.launch import build_actors, build_node, metrics_port
    from mesh.metrics import serve_metrics

    config = _config(args)
    if args.drain_timeout is not None:
        config = with_drain_timeout(config, args.drain_timeout)
    node = build_node(config, _dsn(config))
    actors = build_actors(config, node, roles=args.role, topics=args.topic)
    port = metrics_port(config)

    async def main() -> None:
        server = serve_metrics(node, port, config.source) if port else None
        try:
            await node.run(actors)
        finally:
            if server is not None:
                server.shutdown()

    trio.run(main)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mesh.demo import run_demo

    if not 1 <= args.orders <= 100_000:
        raise ConfigError("<command line>", "--orders", f"{args.orders} is not from 1 to 100000")
    config = _config(args)
    return run_demo(config, _dsn(config), orders=args.orders)


if __name__ == "__main__":
    sys.exit(main())
