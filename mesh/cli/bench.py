"""The benchmark commands of ``mesh``: ``bench streams``, ``scale``, ``graphs`` (YAML graphs;
``workflows`` is its former name, kept for a release), ``durable`` (workflows written as
code), ``hotmesh`` and ``idle``. Each prints one JSON object; the workloads live in the
``benchmarks`` package, imported when a benchmark runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from mesh.cli.context import _config, _dsn
from mesh.config import load_config
from mesh.errors import ConfigError
from mesh.logs import configure_logging


def add_commands(commands: Any) -> None:
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
    _add_workflow_benches(bench_commands)


def _add_workflow_benches(bench_commands: Any) -> None:
    bench_wf = _workflow_bench(
        bench_commands,
        "graphs",
        "YAML graphs end to end, per second: a trigger and S worker steps",
        aliases=["workflows"],
    )
    bench_wf.add_argument("--steps", type=int, default=1, help="sequential worker activities")
    bench_wf.add_argument("--nodes", type=int, default=1, help="node processes (engine+worker)")
    bench_wf.set_defaults(handler=_bench_graphs)
    bench_du = _workflow_bench(
        bench_commands,
        "durable",
        "workflows written as code: throughput, latency, node CPU and memory",
    )
    bench_du.add_argument("--activities", type=int, default=1, help="sequential activities")
    bench_du.add_argument(
        "--activity-loop",
        choices=["asyncio", "trio", "thread"],
        default="asyncio",
        help="where the activity runs: an async def on asyncio (the default) or trio, or a "
        "plain function in a worker thread",
    )
    bench_du.add_argument(
        "--workflow-checks",
        choices=["on", "off"],
        default="on",
        help="refuse non-deterministic calls in workflow code (on, the default) or not, to "
        "measure what the checks cost",
    )
    bench_du.add_argument(
        "--gather",
        type=int,
        default=0,
        help="instead: each workflow gathers this many activities at once (a fan-out)",
    )
    bench_du.add_argument("--nodes", type=int, default=1, help="node processes")
    bench_du.add_argument(
        "--suspended", type=int, default=0, help="also measure memory per waiting workflow"
    )
    bench_du.set_defaults(handler=_bench_durable)
    bench_hm = _workflow_bench(
        bench_commands,
        "hotmesh",
        "bench workflows side by side with HotMesh 0.3.32 (needs Node.js)",
        rounds="mesh's rounds; the median is reported (default 1)",
    )
    bench_hm.add_argument("--steps", type=int, nargs="+", default=[1, 3], help="e.g. 1 3")
    bench_hm.add_argument(
        "--code",
        action="store_true",
        help="workflows written as code: bench durable vs HotMesh MeshFlow",
    )
    bench_hm.add_argument(
        "--activities",
        type=int,
        nargs="+",
        default=[1],
        help="with --code: sequential activities per workflow, e.g. 1 10",
    )
    bench_hm.add_argument(
        "--hotmesh-workflows",
        type=int,
        default=200,
        help="with --code: workflows HotMesh runs (default 200; it runs a few per second)",
    )
    bench_hm.set_defaults(handler=_bench_hotmesh)
    idle = bench_commands.add_parser(
        "idle", help="what an idle mesh of N nodes costs Postgres (transactions, CPU, connections)"
    )
    idle.add_argument("--nodes", type=int, default=20, help="node processes (1 to 2000)")
    idle.add_argument("--topics", type=int, default=3, help="worker topics per node (0 to 100)")
    idle.add_argument("--seconds", type=float, default=30.0, help="how long to measure")
    idle.add_argument(
        "--settle",
        type=float,
        default=600.0,
        help="at most this long, wait for the pools to close what boot opened (one connection "
        "per database.pool_max_idle; default 600)",
    )
    idle.add_argument("--json", action="store_true", help="print JSON (the only format)")
    idle.set_defaults(handler=_bench_idle)


def _bench_idle(args: argparse.Namespace) -> int:
    from benchmarks.idle import bench_idle

    if not 1 <= args.nodes <= 2000 or not 0 <= args.topics <= 100:
        raise ConfigError(
            "<command line>",
            "bench idle",
            f"--nodes {args.nodes} / --topics {args.topics}: nodes from 1 to 2000, topics "
            "from 0 to 100",
        )
    for name, value, low in (("--seconds", args.seconds, 1), ("--settle", args.settle, 0)):
        if not low <= value <= 3600:  # False for nan too
            raise ConfigError("<command line>", name, f"{value} is not from {low} to 3600")
    config = _config(args, quiet=True)
    report = bench_idle(
        _dsn(config),
        nodes=args.nodes,
        topics=args.topics,
        seconds=args.seconds,
        settle_within=args.settle,
    )
    print(msgspec.json.encode(report).decode())
    return 0


def _workflow_bench(
    bench_commands: Any,
    name: str,
    description: str,
    rounds: str = "repeat and report the median round (default 1)",
    aliases: list[str] | None = None,
) -> Any:
    """A workflow benchmark's parser, with the options every one has."""
    parser = bench_commands.add_parser(name, help=description, aliases=aliases or [])
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=50, help="workflows running at once")
    parser.add_argument("--rounds", type=int, default=1, help=rounds)
    parser.add_argument("--json", action="store_true", help="print JSON (the only format)")
    return parser


def _bench_graphs(args: argparse.Namespace) -> int:
    from benchmarks.graphs import bench_graphs

    if args.bench_command == "workflows":
        print(
            "mesh bench workflows is now mesh bench graphs (YAML graphs); the old name goes "
            "in the next release",
            file=sys.stderr,
        )
    _check_workflow_bench(args, [args.steps], nodes=args.nodes, rounds=args.rounds)
    config = _config(args, quiet=True)
    report = bench_graphs(
        _dsn(config),
        workflows=args.workflows,
        steps=args.steps,
        in_flight=args.in_flight,
        nodes=args.nodes,
        rounds=args.rounds,
    )
    print(msgspec.json.encode(report).decode())
    return 0


def _bench_durable(args: argparse.Namespace) -> int:
    from benchmarks.workflows import bench_durable

    _check_workflow_bench(args, [args.activities], nodes=args.nodes, rounds=args.rounds)
    if args.activities < 1 or args.suspended < 0 or not 0 <= args.gather <= 100_000:
        raise ConfigError(
            "<command line>",
            "bench durable",
            "--activities must be at least 1, --suspended at least 0 and --gather from 0 "
            "(a chain of --activities) to 100000",
        )
    config = _config(args, quiet=True)
    report = bench_durable(
        _dsn(config),
        workflows=args.workflows,
        activities=args.activities,
        in_flight=args.in_flight,
        nodes=args.nodes,
        rounds=args.rounds,
        suspended=args.suspended,
        gather=args.gather,
        activity_loop=args.activity_loop,
        workflow_checks=args.workflow_checks == "on",
    )
    print(msgspec.json.encode(report).decode())
    return 0


def _bench_hotmesh(args: argparse.Namespace) -> int:
    from benchmarks.hotmesh import bench_hotmesh, bench_hotmesh_code

    _check_workflow_bench(args, args.steps, rounds=args.rounds)
    config = _config(args, quiet=True)
    if args.code and (min(args.activities) < 1 or args.hotmesh_workflows < 1):
        raise ConfigError(
            "<command line>",
            "bench hotmesh",
            "--activities and --hotmesh-workflows must be at least 1",
        )
    common = {"workflows": args.workflows, "in_flight": args.in_flight, "rounds": args.rounds}
    workdir = Path(".mesh") / "hotmesh"
    if args.code:
        report = bench_hotmesh_code(
            _dsn(config),
            hotmesh_workflows=args.hotmesh_workflows,
            activities=args.activities,
            workdir=workdir,
            **common,
        )
    else:
        report = bench_hotmesh(_dsn(config), steps=args.steps, workdir=workdir, **common)
    print(msgspec.json.encode(report).decode())
    return 0


def _check_workflow_bench(
    args: argparse.Namespace, steps: list[int], *, nodes: int = 1, rounds: int = 1
) -> None:
    if min(args.workflows, args.in_flight, nodes, rounds) < 1 or min(steps) < 0:
        raise ConfigError(
            "<command line>",
            f"bench {args.bench_command}",
            "--workflows, --in-flight, --nodes and --rounds must be at least 1, --steps at least 0",
        )


def _bench_streams(args: argparse.Namespace) -> int:
    from benchmarks.streams import bench_streams

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
    from benchmarks.scale import bench_scale

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
