"""The embedded default database: a pgserver instance shared by every process of the host.

With no database URL configured, a node starts (or joins, if another process already started
it) a Postgres server whose data lives under ``.mesh/pg`` of the working directory. It listens
only on a Unix socket and stays up after the process exits, so later processes join it in
milliseconds. ``initdb`` refuses to run as root; pgserver runs the server as a dedicated user.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from mesh.errors import DatabaseUnavailable
from mesh.health import postgres_process, process_exists

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


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server, as its ``postmaster.pid`` and the process table say."""

    data_dir: Path
    pid: int
    socket_dir: str
    started_at: float
    connections: int
    """Server processes other than the postmaster's helpers: roughly, open connections."""

    @property
    def url(self) -> str:
        return f"postgresql://postgres:@/postgres?host={self.socket_dir}"


def embedded_server(data_dir: Path | None = None) -> EmbeddedServer | None:
    """The embedded server of ``data_dir`` if it runs (None: not running, or never made).
    Starts nothing."""
    data_dir = data_dir or embedded_dir()
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    found = postgres_process(pid)  # None: a stale file, its pid gone or reused
    if found is None:
        return None
    started_at, connections = found
    return EmbeddedServer(
        data_dir=data_dir,
        pid=pid,
        socket_dir=lines[4] if len(lines) > 4 and lines[4] else str(data_dir),
        started_at=started_at,
        connections=connections,
    )


def stop_embedded(data_dir: Path | None = None, timeout: float = 30.0) -> EmbeddedServer | None:
    """Stop the embedded server of ``data_dir`` (a fast shutdown: open transactions roll
    back, connections close; committed work is safe). Returns what was stopped, None if it
    was not running; :class:`DatabaseUnavailable` if it is still up after ``timeout``."""
    server = embedded_server(data_dir)
    if server is None:
        return None
    try:
        os.kill(server.pid, signal.SIGINT)  # Postgres' fast shutdown
    except ProcessLookupError:
        return server
    deadline = time.monotonic() + timeout
    while process_exists(server.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process_exists(server.pid):
        raise DatabaseUnavailable(
            f"the embedded Postgres (pid {server.pid}) did not stop within {timeout:g} s; "
            "try again, or stop it with SIGQUIT"
        )
    return server
