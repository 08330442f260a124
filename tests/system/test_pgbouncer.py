"""Many nodes through PgBouncer in transaction mode: the pool goes through the pooler, LISTEN
(and the election's session locks) go direct on ``database.listen_url``. Runs a real
PgBouncer when one is installed; skipped, and says so, when not."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.helpers import NodeProcess, mesh, wait_until_sync, write_config
from tests.nodes import APP, TOPIC, responses, send

PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PGBOUNCER is None,
        reason="PgBouncer is not installed, so the transaction-mode test did not run "
        "(apt install pgbouncer)",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def bouncer_url(dsn: str) -> Iterator[str]:
    """A PgBouncer in transaction mode in front of this test's database."""
    assert PGBOUNCER is not None
    parts = conninfo_to_dict(dsn)
    host, user = str(parts.get("host", "127.0.0.1")), str(parts.get("user", "postgres"))
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="mesh-pgbouncer-"))
    folder.chmod(0o777)  # PgBouncer refuses to run as root: it switches to the server's user
    (folder / "users.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""
[databases]
mesh = host={host} port={parts.get("port", 5432)} dbname={parts["dbname"]} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = 4
max_client_conn = 500
ignore_startup_parameters = options
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""
    )
    command = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        owner = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "nobody"
        command[1:1] = ["-u", owner]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = make_conninfo(host="127.0.0.1", port=port, dbname="mesh", user=user)
    try:
        wait_until_sync(lambda: _answers(url) or process.poll() is not None, what="PgBouncer")
        assert process.poll() is None, (folder / "pgbouncer.log").read_text()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=1, prepare_threshold=None) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def config(tmp_path: Path, url: str, listen_url: str) -> Path:
    return write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
database:
  url: "{url}"
  listen_url: "{listen_url}"
node:
  roles: [quorum, worker]
workers:
  - topic: {TOPIC}
    function: tests.activities:echo
""",
    )


def test_through_pgbouncer__a_node_runs_on_a_transaction_pool_and_listens_direct(
    tmp_path: Path, dsn: str, conn: psycopg.Connection, bouncer_url: str
) -> None:
    path = config(tmp_path, bouncer_url, dsn)
    # PgBouncer drops the options that carry mesh's timeouts: refused, with the fix.
    # (MESH_DATABASE_URL, which the helpers set, wins over the file: it is the pooler too.)
    refused = mesh("--config", str(path), "run", dsn=bouncer_url, cwd=tmp_path, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "ALTER ROLE" in refused.stderr and "statement_timeout" in refused.stderr

    name = sql.Identifier(str(conninfo_to_dict(dsn)["dbname"]))
    for setting, value in (
        ("statement_timeout", "30s"),
        ("idle_in_transaction_session_timeout", "60s"),
    ):
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                name, sql.Identifier(setting), sql.Literal(value)
            )
        )
    conn.execute(  # PgBouncer's server connections started before: it opens new ones
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    node = NodeProcess(path, bouncer_url, log=tmp_path / "node.log")
    try:
        node.wait_for_log("event=node_ready")
        send(conn, *({"n": n} for n in range(300)))  # claims repeat: no prepared statements
        wait_until_sync(lambda: len(responses(conn)) == 300, what="300 responses")
        log = node.log()
        assert "prepared statement" not in log and "event=elected" in log, log[-3000:]
        direct = conn.execute(
            "SELECT application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'mesh%%'"
        ).fetchall()
        kinds = [row[0].split(":")[0] for row in direct]
        # One direct session (LISTEN, the election's locks); the pool's statements run on
        # PgBouncer's server connections (which take the client's application_name).
        assert kinds.count("mesh-listener") == 1, direct
        assert 1 <= kinds.count("mesh") <= 4, direct  # PgBouncer's default_pool_size
    finally:
        node.ensure_stopped()
