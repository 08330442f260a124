"""The embedded default database: a pgserver instance shared by every process of the host.

With no database URL configured, a node starts (or joins, if another process already started
it) a Postgres server whose data lives under ``.mesh/pg`` of the working directory. It listens
only on a Unix socket and stays up after the process exits, so later processes join it in
milliseconds. ``initdb`` refuses to run as root; pgserver runs the server as a dedicated user.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from mesh.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(".mesh") / "pg"


def embedded_dir() -> Path:
    """Where the embedded server keeps its data: ``MESH_EMBEDDED_DIR`` or ``./.mesh/pg``."""
    return Path(os.environ.get("MESH_EMBEDDED_DIR") or DEFAULT_DIR).absolute()


def embedded_dsn(data_dir: Path | None = None) -> str:
    """Start or join the embedded server and return its DSN (database ``postgres``)."""
    data_dir = data_dir or embedded_dir()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); it is harmless.
        warnings.simplefilter("ignore")
        try:
            import pgserver

            server = pgserver.get_server(data_dir, cleanup_mode=None)  # type: ignore[attr-defined]
        except Exception as error:  # pgserver raises plain exceptions of many kinds
            raise DatabaseUnavailable(
                f"could not start the embedded Postgres in {data_dir}: {error}. "
                "Set MESH_DATABASE_URL to use another server, or remove the directory if it "
                "is damaged."
            ) from error
    dsn: str = server.get_uri()
    log.debug("event=embedded_database dir=%s dsn=%s", data_dir, dsn)
    return dsn
