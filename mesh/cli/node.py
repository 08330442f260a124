"""``mesh run``, ``mesh migrate``, ``mesh db url`` and ``mesh demo``: running nodes and the
database they share."""

from __future__ import annotations

import argparse
from typing import Any

import trio

from mesh.cli.context import _config, _dsn
from mesh.errors import ConfigError


def add_commands(commands: Any) -> None:
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

    demo = commands.add_parser("demo", help="run the order demo on the embedded database")
    demo.add_argument("--orders", type=int, default=200, help="how many (1 to 100000)")
    demo.set_defaults(handler=_demo)


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
    from mesh.launch import build_actors, build_node, metrics_port, node_plan
    from mesh.metrics import serve_metrics

    config = _config(args)
    if args.drain_timeout is not None:
        config = with_drain_timeout(config, args.drain_timeout)
    node = build_node(config, _dsn(config))
    actors = build_actors(node, node_plan(config, roles=args.role, topics=args.topic))
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
