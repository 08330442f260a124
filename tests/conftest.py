"""Test fixtures: a real Postgres (embedded, or MESH_TEST_DATABASE_URL), one clone per test.

A template database is migrated once per session; each test gets ``CREATE DATABASE ...
TEMPLATE`` (milliseconds) and drops it ``WITH (FORCE)`` afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from mesh.pg.database import Database
from mesh.pg.embedded import embedded_dsn, embedded_server, stop_embedded
from mesh.pg.migrations import add_to_search_path, migrate

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "mesh_test_template"


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    url = os.environ.get("MESH_TEST_DATABASE_URL")
    if url:
        yield url
        return
    folder = ROOT / ".mesh" / "test-pg"
    ours = embedded_server(folder) is None
    yield embedded_dsn(folder)
    if ours:  # started for this session: stopped with it (`mesh db stop` does the same)
        stop_embedded(folder)


def _admin(server_dsn: str) -> psycopg.Connection:
    return psycopg.connect(make_conninfo(server_dsn, dbname="postgres"), autocommit=True)


@pytest.fixture(scope="session")
def template_dsn(server_dsn: str) -> Iterator[str]:
    with _admin(server_dsn) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    dsn = make_conninfo(server_dsn, dbname=TEMPLATE)
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
    yield dsn


@pytest.fixture
def dsn(server_dsn: str, template_dsn: str) -> Iterator[str]:
    """A fresh, migrated database for this test."""
    name = f"mesh_test_{uuid.uuid4().hex[:12]}"
    with _admin(server_dsn) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    url = make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        add_to_search_path(conn)  # a database setting: CREATE DATABASE ... TEMPLATE skips it
    try:
        yield url
    finally:
        with _admin(server_dsn) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def empty_dsn(server_dsn: str) -> Iterator[str]:
    """A fresh database without the mesh schema."""
    name = f"mesh_empty_{uuid.uuid4().hex[:12]}"
    with _admin(server_dsn) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server_dsn, dbname=name)
    finally:
        with _admin(server_dsn) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit connection to this test's database, for setup and assertions."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[Database]:
    database = Database(dsn, pool_size=8, application_name="mesh-test")
    await database.open()
    try:
        yield database
    finally:
        await database.close()
