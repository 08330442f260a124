"""The workflow commands of ``mesh``: deploy, activate."""

from __future__ import annotations

import argparse
from typing import Any

from mesh.cli_context import session


def add_commands(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy", help="validate and store a manifest version (not yet active)"
    )
    deploy.add_argument("path", help="the manifest YAML (its $refs are resolved)")
    deploy.set_defaults(handler=_deploy)
    activate = commands.add_parser("activate", help="make a deployed version the active one")
    activate.add_argument("version")
    activate.add_argument("--app", help="the app id (default: the config's)")
    activate.set_defaults(handler=_activate)


def _deploy(args: argparse.Namespace) -> int:
    from mesh.manifests import load_manifest
    from mesh.pg.apps import deploy
    from mesh.pg.database import run_once
    from mesh.pg.migrations import check_schema

    _config, dsn = session(args)
    manifest = load_manifest(args.path)  # every problem is reported before anything is stored

    def store(conn: Any) -> bool:
        check_schema(conn)
        return deploy(conn, manifest)

    new = run_once(dsn, store)
    app, version = manifest.app.id, manifest.app.version
    state = "deployed" if new else "already deployed (identical)"
    print(
        f"app {app!r} version {version!r}: {state}; activate it with `mesh activate {version} --app {app}`"
    )
    return 0


def _activate(args: argparse.Namespace) -> int:
    from mesh.pg.apps import activate
    from mesh.pg.database import run_once

    config, dsn = session(args)
    app = args.app or config.app
    secret = config.quorum.secret.encode() or None
    run_once(dsn, activate, app, args.version, secret=secret, sender="cli")
    print(f"app {app!r}: version {args.version!r} is active")
    return 0
