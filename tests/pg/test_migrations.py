"""The schema: migrations reproduce schema.sql; nodes refuse a schema that is behind."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
import trio

from mesh.errors import SchemaOutOfDate
from mesh.pg.migrations import check_schema, current_version, latest_version, migrate
from mesh.runtime.node import Node
from tests.conftest import ROOT

CATALOG = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
       || ' ' || coalesce(column_default, '')
FROM information_schema.columns WHERE table_schema = 'mesh'
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'mesh'
UNION ALL
SELECT 'function', p.proname || ' ' || md5(pg_get_functiondef(p.oid))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'mesh'
UNION ALL
SELECT 'trigger', tgname || ' ' || pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'mesh' AND NOT t.tgisinternal
UNION ALL
SELECT 'constraint', conname || ' ' || pg_get_constraintdef(c.oid)
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'mesh'
ORDER BY 1, 2
"""


def _catalog(conn: psycopg.Connection) -> list[tuple[str, str]]:
    conn.execute("SET search_path = pg_catalog")  # so both print names schema-qualified
    return conn.execute(CATALOG).fetchall()


def test_migrations__produce_the_same_schema_as_schema_sql(
    server_dsn: str, empty_dsn: str, dsn: str
) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as stepwise:
        assert migrate(stepwise, use_schema_file=False) == list(range(1, latest_version() + 1))
        stepwise_catalog = _catalog(stepwise)
    with psycopg.connect(dsn, autocommit=True) as fresh:  # the template used schema.sql
        fresh_catalog = _catalog(fresh)
    assert stepwise_catalog == fresh_catalog
    assert len(fresh_catalog) > 20


def test_migrate__is_idempotent(conn: psycopg.Connection) -> None:
    assert migrate(conn) == []
    assert current_version(conn) == latest_version()
    check_schema(conn)


def test_check_schema__refuses_a_missing_schema_with_the_fix(empty_dsn: str) -> None:
    with (
        psycopg.connect(empty_dsn, autocommit=True) as conn,
        pytest.raises(SchemaOutOfDate, match="run `mesh migrate`"),
    ):
        check_schema(conn)


def test_check_schema__refuses_a_newer_schema(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO mesh.schema_migrations (version, name) VALUES (999, 'future')")
    with pytest.raises(SchemaOutOfDate, match="upgrade mesh"):
        check_schema(conn)


async def test_node__refuses_to_start_on_an_unmigrated_database(empty_dsn: str) -> None:
    node = Node(empty_dsn, app="a")
    with trio.fail_after(20), pytest.raises(SchemaOutOfDate, match="mesh migrate"):
        await node.run([], handle_signals=False)


async def test_mesh_open__with_migrate_installs_the_schema_and_runs(empty_dsn: str) -> None:
    from mesh.api import Mesh
    from tests.code_workflows import add_one, sequence

    with trio.fail_after(60):
        async with Mesh.open(
            empty_dsn,
            app="fresh",
            migrate=True,
            workflows={"q": [sequence]},
            activities={"q": [add_one]},
        ) as mesh:
            handle = await mesh.start_workflow(sequence, 1, task_queue="q")
            assert await handle.result(timeout=30) == 4  # three activities, each adding one
    with psycopg.connect(empty_dsn) as conn:
        assert current_version(conn) == latest_version()


async def test_mesh_open__without_migrate_still_refuses_an_unmigrated_database(
    empty_dsn: str,
) -> None:
    from mesh.api import Mesh

    with trio.fail_after(20), pytest.raises(SchemaOutOfDate, match="mesh migrate"):
        async with Mesh.open(empty_dsn, app="fresh"):
            pass


@pytest.mark.skipif(
    bool(os.environ.get("MESH_TEST_DATABASE_URL")), reason="runs on the embedded server only"
)
async def test_mesh_open__without_a_dsn_joins_the_embedded_database_and_migrates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mesh.api import Mesh
    from tests.code_workflows import add_one, sequence

    # The suite's own embedded server (already running): joining it takes milliseconds.
    monkeypatch.setenv("MESH_EMBEDDED_DIR", str(ROOT / ".mesh" / "test-pg"))
    app = f"embedded-{uuid.uuid4().hex[:8]}"
    with trio.fail_after(60):
        async with Mesh.open(
            app=app, workflows={"q": [sequence]}, activities={"q": [add_one]}
        ) as mesh:
            handle = await mesh.start_workflow(sequence, 10, task_queue="q")
            assert await handle.result(timeout=30) == 13
            assert "test-pg" in mesh.node.db.dsn


def test_migrate__by_a_login_that_does_not_own_the_database__bare_names_resolve_for_it(
    empty_dsn: str,
) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    role = f"tenant_{uuid.uuid4().hex[:8]}"
    database = conninfo_to_dict(empty_dsn)["dbname"]
    with psycopg.connect(empty_dsn, autocommit=True) as admin:
        try:
            admin.execute(f"CREATE ROLE {role} LOGIN")
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the test database login cannot create roles")
        admin.execute(f'GRANT CREATE ON DATABASE "{database}" TO {role}')
    as_tenant = make_conninfo(empty_dsn, user=role)
    try:
        with psycopg.connect(as_tenant, autocommit=True) as conn:
            notices: list[str] = []
            conn.add_notice_handler(lambda notice: notices.append(notice.message_primary or ""))
            migrate(conn)
        with psycopg.connect(as_tenant) as conn:  # a new session: the setting applies
            assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
        assert any("ALTER ROLE name IN DATABASE" in notice for notice in notices)
    finally:
        with psycopg.connect(empty_dsn, autocommit=True) as admin:
            admin.execute("DROP SCHEMA IF EXISTS mesh CASCADE")
            admin.execute(f'REVOKE ALL ON DATABASE "{database}" FROM {role}')
            admin.execute(f'ALTER ROLE {role} IN DATABASE "{database}" RESET ALL')
            admin.execute(f"DROP ROLE {role}")


def test_migration_14__moves_a_workflow_step_count_to_its_column(empty_dsn: str) -> None:
    """A code workflow's applied steps leave jobs.cycles for jobs.applied_steps (a graph's
    cycles stay), and SQL written against mesh.durable_steps still reads the calls."""
    from mesh.pg.migrations import available_migrations

    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        for number, name, text in available_migrations():
            if number >= 14:
                break
            with conn.transaction():
                conn.execute(text.encode())
                conn.execute(
                    "INSERT INTO mesh.schema_migrations (version, name) VALUES (%s, %s)",
                    (number, name),
                )
        conn.execute(
            "INSERT INTO mesh.jobs (app, key, gid, version, topic, status, cycles) VALUES "
            "('a', 'code-1', 'g', 'code', 'w', 1, 5), ('a', 'graph-1', 'g', '1', 't', 1, 2)"
        )
        conn.execute(
            "INSERT INTO mesh.durable_steps (job_id, gid, position, kind, name, shape) "
            "SELECT id, 'g', 0, 'activity', 'step', '[]' FROM mesh.jobs WHERE key = 'code-1'"
        )
        assert migrate(conn)[0] == 14  # and any later ones
        rows = conn.execute(
            "SELECT key, cycles, applied_steps FROM mesh.jobs ORDER BY key"
        ).fetchall()
        assert rows == [("code-1", 0, 5), ("graph-1", 2, 0)]
        steps = conn.execute("SELECT name FROM mesh.durable_steps").fetchall()
        assert (
            steps == [("step",)] == conn.execute("SELECT name FROM mesh.workflow_steps").fetchall()
        )
