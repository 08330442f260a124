"""The ``mesh`` command line: the parser, and how errors become exit codes. Each command
group is a module of :mod:`mesh.cli` with an ``add_commands``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mesh.cli.bench import add_commands as add_bench_commands
from mesh.cli.graphs import add_commands as add_graph_commands
from mesh.cli.node import add_commands as add_node_commands
from mesh.cli.quorum import add_commands as add_quorum_commands
from mesh.cli.schedules import add_commands as add_schedule_commands
from mesh.cli.streams import add_commands as add_streams_commands
from mesh.cli.workflows import add_commands as add_workflow_commands
from mesh.errors import (
    ConfigError,
    DatabaseUnavailable,
    JobTimeout,
    MeshError,
    SchemaOutOfDate,
    SupervisorGaveUp,
    lone_error,
)
from mesh.version import __version__

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_TIMEOUT = 4
"""A wait (``pub --wait``, ``workflow start --wait``, ``workflow result``) ran out of time:
the job goes on."""
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `... | head -1`


def main(argv: Sequence[str] | None = None) -> int:
    # Modules named in the config (workers, workflows) import from the working directory,
    # as `python -m` would and as gunicorn and celery users expect: the `mesh` script's own
    # folder is what Python put first on the path instead.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
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
    except JobTimeout as error:
        print(f"mesh: {error}; it goes on: wait again, or interrupt it", file=sys.stderr)
        return EXIT_TIMEOUT
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

    add_node_commands(commands)

    add_streams_commands(commands)

    add_bench_commands(commands)

    add_quorum_commands(commands)

    add_graph_commands(commands)

    add_workflow_commands(commands)
    add_schedule_commands(commands)

    return parser


if __name__ == "__main__":
    sys.exit(main())
