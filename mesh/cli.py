"""The ``mesh`` command line: run nodes, manage the database, inspect and feed streams."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec
import trio

from mesh import __version__
from mesh.cli_context import _config, _dsn
from mesh.config import load_config
from mesh.errors import (
    ConfigError,
    DatabaseUnavailable,
    MeshError,
    SchemaOutOfDate,
    SupervisorGaveUp,
    lone_error,
)
from mesh.logs import configure_logging
from mesh.quorum_cli import add_commands as add_quorum_commands
from mesh.streams_cli import add_commands as add_streams_commands
from mesh.workflow_cli import add_commands as add_workflow_commands

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


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
    run.set_defaults(handler=_run)

    add_streams_commands(commands)

    bench = commands.add_parser("bench", help="benchmarks that print JSON")
    bench_commands = bench.add_subparsers(dest="bench_command", metavar="COMMAND", required=True)
    bench_streams = bench_commands.add_parser(
        "streams", help="end-to-end stream throughput and latency"
    )
    bench_streams.add_argument("--messages", type=int, default=20000)
    bench_streams.add_argument("--batch", type=int, default=50)
    bench_streams.add_argument("--workers", type=int, default=4, help="consumers on the topic")
    bench_streams.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="in flight per consumer (default: the batch size)",
    )
    bench_streams.add_argument(
        "--rounds", type=int, default=1, help="repeat and report the median round (default 1)"
    )
    bench_streams.add_argument(
        "--baseline",
        action="store_true",
        help="also run raw SQL doing the same work and report the ratio",
    )
    bench_streams.add_argument("--json", action="store_true", help="print JSON (the only format)")
    bench_streams.set_defaults(handler=_bench_streams)
    bench_scale = bench_commands.add_parser(
        "scale", help="the stream workload with 1, 2, 4 ... worker processes (`mesh run`)"
    )
    bench_scale.add_argument(
        "--processes", default="1,2,4", help="comma-separated process counts (default 1,2,4)"
    )
    bench_scale.add_argument("--messages", type=int, default=20000)
    bench_scale.add_argument("--batch", type=int, default=50)
    bench_scale.add_argument("--json", action="store_true", help="print JSON (the only format)")
    bench_scale.set_defaults(handler=_bench_scale)
    bench_wf = bench_commands.add_parser(
        "workflows", help="end-to-end workflows per second: a trigger and S worker steps"
    )
    bench_wf.add_argument("--workflows", type=int, default=2000)
    bench_wf.add_argument("--steps", type=int, default=1, help="sequential worker activities")
    bench_wf.add_argument("--in-flight", type=int, default=50, help="jobs running at once")
    bench_wf.add_argument("--nodes", type=int, default=1, help="node processes (engine+worker)")
    bench_wf.add_argument("--json", action="store_true", help="print JSON (the only format)")
    bench_wf.set_defaults(handler=_bench_workflows)
    bench_hm = bench_commands.add_parser(
        "hotmesh", help="bench workflows side by side with HotMesh 0.3.32 (needs Node.js)"
    )
    bench_hm.add_argument("--workflows", type=int, default=2000)
    bench_hm.add_argument("--steps", type=int, nargs="+", default=[1, 3], help="e.g. 1 3")
    bench_hm.add_argument("--in-flight", type=int, default=50, help="jobs running at once")
    bench_hm.add_argument("--json", action="store_true", help="print JSON (the only format)")
    bench_hm.set_defaults(handler=_bench_hotmesh)

    add_quorum_commands(commands)

    add_workflow_commands(commands)

    demo = commands.add_parser("demo", help="run the order demo on the embedded database")
    demo.add_argument("--orders", type=int, default=200)
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
    from mesh.launch import build_actors, build_node, metrics_port
    from mesh.metrics import serve_metrics

    config = _config(args)
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


def _bench_workflows(args: argparse.Namespace) -> int:
    from mesh.bench_workflows import bench_workflows

    config = _config(args, quiet=True)
    report = bench_workflows(
        _dsn(config),
        workflows=args.workflows,
        steps=args.steps,
        in_flight=args.in_flight,
        nodes=args.nodes,
    )
    print(msgspec.json.encode(report).decode())
    return 0


def _bench_hotmesh(args: argparse.Namespace) -> int:
    from mesh.bench_hotmesh import bench_hotmesh

    config = _config(args, quiet=True)
    report = bench_hotmesh(
        _dsn(config),
        workflows=args.workflows,
        steps=args.steps,
        in_flight=args.in_flight,
        workdir=Path(".mesh") / "hotmesh",
    )
    print(msgspec.json.encode(report).decode())
    return 0


def _bench_streams(args: argparse.Namespace) -> int:
    from mesh.bench import bench_streams

    config = load_config(args.config)
    configure_logging(os.environ.get("MESH_LOG_LEVEL") or "warn")
    if min(args.messages, args.batch, args.workers, args.rounds) < 1:
        raise ConfigError(
            "<command line>",
            "bench streams",
            "--messages, --batch, --workers and --rounds must be at least 1",
        )
    result = bench_streams(
        _dsn(config),
        messages=args.messages,
        batch=args.batch,
        workers=args.workers,
        concurrency=args.concurrency or args.batch,
        baseline=args.baseline,
        rounds=args.rounds,
    )
    print(msgspec.json.encode(result).decode())
    return 0


def _bench_scale(args: argparse.Namespace) -> int:
    from mesh.bench_scale import bench_scale

    config = load_config(args.config)
    configure_logging(os.environ.get("MESH_LOG_LEVEL") or "warn")
    try:
        processes = [int(p) for p in args.processes.split(",")]
    except ValueError:
        processes = []
    if not processes or min(processes) < 1 or min(args.messages, args.batch) < 1:
        raise ConfigError(
            "<command line>",
            "bench scale",
            "--processes must list positive counts (e.g. 1,2,4); --messages and --batch at least 1",
        )
    result = bench_scale(
        _dsn(config), processes=processes, messages=args.messages, batch=args.batch
    )
    print(msgspec.json.encode(result).decode())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mesh.demo import run_demo

    config = _config(args)
    return run_demo(config, _dsn(config), orders=args.orders)


if __name__ == "__main__":
    sys.exit(main())
