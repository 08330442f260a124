"""What every ``mesh`` command starts from: its config (with logging set up) and the
database URL (starting the embedded server if none is configured)."""

from __future__ import annotations

import argparse
import os

from mesh.config import Config, load_config
from mesh.errors import ConfigError, InvalidIdentifier
from mesh.logs import configure_logging
from mesh.model.ids import validate_app_id


def _config(args: argparse.Namespace, *, quiet: bool = False) -> Config:
    """The config of this invocation, with logging set up. ``quiet``: warnings and up unless
    MESH_LOG_LEVEL says otherwise (a one-shot command's connection chatter is noise)."""
    config = load_config(args.config)
    configure_logging(os.environ.get("MESH_LOG_LEVEL") or "warn" if quiet else config.log_level)
    return config


def _dsn(config: Config) -> str:
    from mesh.launch import database_url

    return database_url(config)


def session(args: argparse.Namespace, *, quiet: bool = False) -> tuple[Config, str]:
    """The config and the database URL of this invocation (starting the embedded server)."""
    config = _config(args, quiet=quiet)
    return config, _dsn(config)


def app_of(args: argparse.Namespace, config: Config) -> str:
    """The app a command acts on: ``--app`` (validated like the config's), else the config's."""
    app = getattr(args, "app", None)
    if app is None:
        return config.app
    try:
        return validate_app_id(app)
    except InvalidIdentifier as error:
        raise ConfigError("<command line>", "--app", str(error)) from None
