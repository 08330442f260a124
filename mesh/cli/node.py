"""``mesh run``, ``mesh migrate``, ``mesh db url`` and ``mesh demo``: running nodes and the
database they share."""

from __future__ import annotations

import argparse
import time
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
    status = db_commands.add_parser(
        "status", help="whether the database answers (and the embedded server's process)"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_db_status)
    stop = db_commands.add_parser(
        "stop", help="stop the embedded server (the next mesh command starts it again)"
    )
    stop.add_argument("--json", action="store_true", help="print JSON")
    stop.set_defaults(handler=_db_stop)

    commands.add_parser(
        "migrate", help="create or upgrade the mesh schema (once per deploy)"
    ).set_defaults(handler=_migrate)

    run = commands.add_parser("run", help="run a node until SIGTERM")
    run.add_argument(
        "--role",
        action="append",
        choices=["engine", "quorum", "worker"],
        help="roles to run (repeatable; default: the config's); every node also runs a "
        "quorum member, so naming quorum changes nothing",
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


def _db_status(args: argparse.Namespace) -> int:
    """Exit 0: the database answers; 1: the embedded server is not running; 3: the
    configured database does not answer."""
    import json

    from mesh.errors import DatabaseUnavailable
    from mesh.pg.database import redact, run_once, server_facts
    from mesh.pg.embedded import embedded_dir, embedded_server

    config = _config(args)
    report: dict[str, Any]
    if config.database.url:
        report = {"embedded": False, "url": redact(config.database.url)}
        try:
            report |= {"running": True, **run_once(config.database.url, server_facts)}
        except DatabaseUnavailable as error:
            report |= {"running": False, "error": str(error)}
    else:
        server = embedded_server()
        report = {"embedded": True, "data_dir": str(embedded_dir()), "running": bool(server)}
        if server is not None:
            report |= {
                "pid": server.pid,
                "url": server.url,
                "started_at": time.strftime(
                    "%Y-%m-%dT%H:%M:%S%z", time.localtime(server.started_at)
                ),
                "connections": server.connections,
            }
    if args.json:
        print(json.dumps(report))
    elif not report["running"]:
        if report["embedded"]:
            print(f"not running: {report['data_dir']}; any mesh command starts it")
        else:
            print(f"no answer from {report['url']}: {report['error']}")
    else:
        print("running: " + ", ".join(f"{k} {v}" for k, v in report.items() if k != "running"))
    if report["running"]:
        return 0
    return 3 if config.database.url else 1


def _db_stop(args: argparse.Namespace) -> int:
    import json

    from mesh.pg.embedded import embedded_dir, stop_embedded

    config = _config(args)
    if config.database.url:
        raise ConfigError(
            config.source,
            "database.url",
            "mesh stops only the embedded server; this config names another database",
            "stop that server with its own tools (pg_ctl, systemctl, your provider)",
        )
    stopped = stop_embedded()
    if args.json:
        print(json.dumps({"data_dir": str(embedded_dir()), "stopped": stopped is not None}))
    elif stopped is None:
        print(f"not running: {embedded_dir()}")
    else:
        print(f"stopped the embedded Postgres (pid {stopped.pid}) of {stopped.data_dir}")
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
    from mesh.launch import (
        build_actors,
        build_node,
        metrics_port,
        node_plan,
        switch_on_telemetry,
    )
    from mesh.metrics import serve_metrics

    config = _config(args)
    if args.drain_timeout is not None:
        config = with_drain_timeout(config, args.drain_timeout)
    switch_on_telemetry(config)
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
