"""Schema migrations: ``schema.sql`` for a fresh database, numbered files for upgrades.

Runs under a transaction-level advisory lock, so concurrent ``mesh migrate`` calls (one per
deploy, or many nodes at once) apply each step exactly once.
"""

from __future__ import annotations

import re
from importlib import resources

from mesh.errors import SchemaOutOfDate
from mesh.pg.database import Connection
from mesh.pg.queries import query, sql_text

_LOCK_KEY = 0x6D657368  # "mesh"
_MIGRATION_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every file in ``sql/migrations``, in order."""
    folder = resources.files("mesh.pg").joinpath("sql", "migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest_version() -> int:
    return available_migrations()[-1][0]


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database; 0 when mesh was never installed there."""
    exists = conn.execute(query("schema_installed")).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute(query("schema_version")).fetchone()
    return int(row[0]) if row else 0


def migrate(conn: Connection, *, use_schema_file: bool = True) -> list[int]:
    """Bring the schema up to date; returns the versions applied (empty if none were due).

    A fresh database gets ``schema.sql`` (recorded as the latest version) unless
    ``use_schema_file`` is False, in which case every numbered migration runs in turn.
    """
    applied: list[int] = []
    with conn.transaction():
        conn.execute(query("lock_migrations"), {"key": _LOCK_KEY})
        version = current_version(conn)
        migrations = available_migrations()
        if version > migrations[-1][0]:
            raise SchemaOutOfDate(
                f"the database schema is version {version}, newer than this mesh "
                f"({migrations[-1][0]}); upgrade mesh on this host"
            )
        if version == 0 and use_schema_file:
            conn.execute(sql_text("schema.sql").encode())
            for number, name, _ in migrations:
                conn.execute(query("record_migration"), {"version": number, "name": name})
            applied = [number for number, _, _ in migrations]
        else:
            for number, name, sql in migrations:
                if number > version:
                    conn.execute(sql.encode())
                    conn.execute(query("record_migration"), {"version": number, "name": name})
                    applied.append(number)
        add_to_search_path(conn)
    return applied


def add_to_search_path(conn: Connection) -> None:
    """Append ``mesh`` to the database's default search_path, so plain SQL can name the job
    tables unqualified (``SELECT ... FROM jobs j JOIN jobs_attributes a ...``).

    Applies to new sessions. A login that does not own the database sets it for itself in
    this database; the server's notice says what other logins run (``ALTER ROLE name IN
    DATABASE db SET search_path = "$user", public, mesh``).
    """
    conn.execute(query("add_mesh_to_search_path"), {})  # {}: so %% reads as %


def check_schema(conn: Connection) -> None:
    """Raise :class:`SchemaOutOfDate` with the fix unless the schema is exactly current."""
    version = current_version(conn)
    expected = latest_version()
    if version < expected:
        raise SchemaOutOfDate(
            f"the database schema is at version {version}, this mesh needs {expected}: "
            "run `mesh migrate` (once per deploy) and start the node again"
        )
    if version > expected:
        raise SchemaOutOfDate(
            f"the database schema is at version {version}, newer than this mesh "
            f"({expected}): upgrade mesh on this host"
        )
