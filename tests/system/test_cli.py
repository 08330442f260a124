"""The ``mesh`` command line, run as a real process: good paths and refused bad input."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psycopg
import pytest

from tests.helpers import ROOT, NodeProcess, mesh, wait_until_sync, write_config
from tests.pg.test_graphs import HOTMESH_README_QUERY


def depth(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM mesh.stream_messages").fetchone()
    assert row is not None
    return int(row[0])


def test_version(tmp_path: Path, dsn: str) -> None:
    result = mesh("--version", dsn=dsn, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("mesh 0.")


def test_db_url__prints_the_url_in_use(tmp_path: Path, dsn: str) -> None:
    result = mesh("db", "url", dsn=dsn, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == dsn


def test_streams_send__then_streams_json(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    sent = mesh(
        "streams",
        "send",
        "inventory.check",
        '{"sku": "sku-100", "qty": 2}',
        dsn=dsn,
        cwd=tmp_path,
        MESH_APP="shop",
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["topic"] == "inventory.check"
    listed = mesh("streams", "--json", dsn=dsn, cwd=tmp_path, MESH_APP="shop")
    (row,) = json.loads(listed.stdout)
    assert (row["stream"], row["depth"], row["ready"], row["leased"], row["dead_lettered"]) == (
        "inventory.check",
        1,
        1,
        0,
        0,
    )
    table = mesh("streams", dsn=dsn, cwd=tmp_path, MESH_APP="shop")
    assert "inventory.check" in table.stdout and "lag_seconds" in table.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["streams", "send", "inventory.check", "{qty: 2}"], "is not valid JSON"),
        (["streams", "send", "it's", "{}"], 'topic "it\'s" is not allowed'),
        (["streams", "send", "a;drop table x", "{}"], "is not allowed"),
        (["streams", "send", "t" * 200, "{}"], "200 characters long"),
    ],
)
def test_streams_send__refuses_bad_input_and_enqueues_nothing(
    tmp_path: Path, dsn: str, conn: psycopg.Connection, args: list[str], expected: str
) -> None:
    result = mesh(*args, dsn=dsn, cwd=tmp_path)
    assert result.returncode == 2, result
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert depth(conn) == 0


def test_bad_app_id__is_refused(tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    result = mesh("streams", "send", "t", "{}", dsn=dsn, cwd=tmp_path, MESH_APP="shop'; --")
    assert result.returncode == 2 and "MESH_APP" in result.stderr
    assert depth(conn) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("app: a\n  bad: indent\n", "bad.yaml: line 2, column"),
        (
            "app: a\nworkers:\n  - {topic: t, function: 'm:f', concurrancy: 2}\n",
            "workers[0].concurrancy: unknown key",
        ),
        (
            "app: a\nworkers:\n  - {topic: t, function: 'no.such.module:f'}\n",
            "cannot import module 'no.such.module'",
        ),
        (
            "app: a\nworkers:\n  - {topic: t, function: 'tests.activities:missing'}\n",
            "has no attribute 'missing'",
        ),
        (
            "app: a\nworkers:\n  - {topic: t, function: 'tests.activities:not_a_function'}\n",
            "names a int, not a function",
        ),
    ],
)
def test_run__refuses_a_bad_config_before_starting(
    tmp_path: Path, dsn: str, text: str, expected: str
) -> None:
    path = write_config(tmp_path / "bad.yaml", text)
    result = mesh("--config", str(path), "run", dsn=dsn, cwd=tmp_path, timeout=30)
    assert result.returncode == 2, result
    assert expected in result.stderr and "configuration error" in result.stderr
    assert "Traceback" not in result.stderr


def test_run__refuses_an_unmigrated_database_then_migrate_fixes_it(
    tmp_path: Path, empty_dsn: str
) -> None:
    refused = mesh("run", dsn=empty_dsn, cwd=tmp_path, timeout=30)
    assert refused.returncode == 2 and "run `mesh migrate`" in refused.stderr
    migrated = mesh("migrate", dsn=empty_dsn, cwd=tmp_path)
    from mesh.pg.migrations import available_migrations

    every = [number for number, _, _ in available_migrations()]
    assert migrated.returncode == 0 and f"applied {every}" in migrated.stdout
    again = mesh("migrate", dsn=empty_dsn, cwd=tmp_path)
    assert "up to date" in again.stdout


def test_run__keeps_retrying_an_unreachable_database_and_stops_cleanly(tmp_path: Path) -> None:
    path = write_config(tmp_path / "mesh.yaml", "app: a\n")
    node = NodeProcess(path, "postgresql://mesh@127.0.0.1:1/nowhere", log=tmp_path / "node.log")
    try:
        wait_until_sync(
            lambda: node.log().count("event=database_unreachable") >= 2,
            timeout=30,
            what="two retry log lines",
        )
        assert node.process.poll() is None, "the node gave up instead of retrying"
        assert "127.0.0.1" in node.log() and "retry_in=" in node.log()
        node.process.send_signal(signal.SIGTERM)
        assert node.wait(timeout=10) == 0
    finally:
        node.ensure_stopped()


def test_bench_streams__prints_one_json_object(tmp_path: Path, dsn: str) -> None:
    result = mesh(
        "bench",
        "streams",
        "--messages",
        "300",
        "--batch",
        "20",
        "--workers",
        "2",
        "--json",
        dsn=dsn,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["messages"] == 300 and report["throughput_per_s"] > 0
    assert set(report["latency_ms"]) >= {"p50", "p99"}
    assert report["settings"]["batch"] == 20 and report["settings"]["workers"] == 2


def test_demo__runs_the_orders_to_completion(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    result = mesh("demo", "--orders", "40", dsn=dsn, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "40/40 finished" in result.stdout
    assert "nothing pending, leased or dead-lettered" in result.stdout
    # Both branches ran, and HotMesh's README query printed order-456's data.
    assert "reserved" in result.stdout and "backordered" in result.stdout
    assert "order-456 | 0 | order | availableQty |  | 12 |" in result.stdout
    assert "level=error" not in result.stderr and "Traceback" not in result.stderr
    assert "{'" not in result.stdout, "JSON values print as JSON, not Python reprs"
    assert depth(conn) == 0
    # The query runs verbatim (bare table names, HotMesh's columns), for the YAML order and,
    # with its key, for the order written as code: every row with a semaphore of 0.
    for key, workflow, attribute, value in (
        ("order-456", "order", "availableQty", 12),
        ("code-order-456", "order_workflow", "result", "reserved"),
    ):
        rows = conn.execute(HOTMESH_README_QUERY.replace("order-456", key)).fetchall()
        assert rows and {(row[0], row[1], row[2]) for row in rows} == {(key, 0, workflow)}
        assert {row[3]: row[5] for row in rows}[attribute] == value
        assert [row[3] for row in rows] == sorted(row[3] for row in rows)


def test_bench_scale__runs_worker_processes_and_prints_json(tmp_path: Path, dsn: str) -> None:
    result = mesh(
        "bench",
        "scale",
        "--processes",
        "1,2",
        "--messages",
        "300",
        "--batch",
        "20",
        "--json",
        dsn=dsn,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["processes"] for r in report["results"]] == [1, 2]
    assert all(r["throughput_per_s"] > 0 and r["latency_ms"]["p50"] > 0 for r in report["results"])


def test_bench_scale__refuses_bad_process_counts(tmp_path: Path, dsn: str) -> None:
    result = mesh("bench", "scale", "--processes", "1,zero", "--json", dsn=dsn, cwd=tmp_path)
    assert result.returncode == 2 and "--processes must list positive counts" in result.stderr


def test_bench_workflows__runs_rounds_on_a_node_process_and_prints_json(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    result = mesh(
        "bench",
        "workflows",
        "--workflows",
        "60",
        "--steps",
        "2",
        "--in-flight",
        "10",
        "--rounds",
        "2",
        "--json",
        dsn=dsn,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failed"] == 0 and report["steps"] == 2
    assert len(report["rounds"]) == 2 and report["workflows_per_s"] in report["rounds"]
    assert report["latency_ms"]["p50"] > 0
    # 2 rounds of 60 workflows, each a trigger and two worker steps, all done.
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE state = 'done') FROM mesh.jobs"
    ).fetchone()
    assert row == (120, 120)


def test_bench_workflows__refuses_bad_counts(tmp_path: Path, dsn: str) -> None:
    result = mesh("bench", "workflows", "--in-flight", "0", "--json", dsn=dsn, cwd=tmp_path)
    assert (
        result.returncode == 2 and "--in-flight" in result.stderr and "at least 1" in result.stderr
    )


def test_streams_dead_and_requeue(tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO mesh.dead_letters (id, app, stream, priority, enqueued_at, attempts, max_attempts, last_error, payload)"
        ' VALUES (7, \'shop\', \'t\', 1, now(), 3, 3, \'ValueError: no stock\', \'{"type": "request", "id": "r", "app": "shop", "topic": "t"}\')'
    )
    listed = mesh("streams", "dead", dsn=dsn, cwd=tmp_path, MESH_APP="shop")
    assert (
        listed.returncode == 0
        and "ValueError: no stock" in listed.stdout
        and "attempts=3/3" in listed.stdout
    )
    (dead,) = json.loads(
        mesh("streams", "dead", "--json", dsn=dsn, cwd=tmp_path, MESH_APP="shop").stdout
    )
    assert dead["payload"]["type"] == "request"  # the message as JSON, not a string of it
    requeued = mesh("streams", "requeue", "--topic", "t", dsn=dsn, cwd=tmp_path, MESH_APP="shop")
    assert requeued.returncode == 0 and "requeued 1" in requeued.stdout
    assert depth(conn) == 1
    assert (
        json.loads(mesh("streams", "dead", "--json", dsn=dsn, cwd=tmp_path, MESH_APP="shop").stdout)
        == []
    )


def test_run__imports_worker_modules_from_the_working_directory(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    """`mesh run` (the console script, not `python -m`) finds a module next to the config,
    as a Procfile in a project folder expects."""
    (tmp_path / "local_tasks.py").write_text(
        "def shout(data):\n    return {'said': str(data['word']).upper()}\n"
    )
    path = write_config(
        tmp_path / "mesh.yaml",
        "app: shop\nworkers:\n  - {topic: shout, function: 'local_tasks:shout'}\n",
    )
    # No empty entry on PYTHONPATH (it would stand for the working directory).
    node = NodeProcess(path, dsn, log=tmp_path / "node.log", env={"PYTHONPATH": str(ROOT)})
    try:
        node.wait_for_log("event=node_ready")
        sent = mesh(
            "--config",
            str(path),
            "streams",
            "send",
            "shout",
            '{"word": "hi"}',
            dsn=dsn,
            cwd=tmp_path,
        )
        assert sent.returncode == 0, sent.stderr
        wait_until_sync(lambda: depth(conn) == 0, what="the request handled and acked")
    finally:
        node.ensure_stopped()
    assert "FunctionNotFound" not in node.log() and "cannot import" not in node.log()


def test_db_status_and_stop__the_embedded_server(tmp_path: Path) -> None:
    own = {"MESH_DATABASE_URL": "", "MESH_EMBEDDED_DIR": str(tmp_path / "pg")}
    before = mesh("db", "status", dsn="", cwd=tmp_path, **own)
    assert before.returncode == 1 and "not running" in before.stdout
    started = mesh("db", "url", dsn="", cwd=tmp_path, **own)
    assert started.returncode == 0, started.stderr
    try:
        running = mesh("db", "status", "--json", dsn="", cwd=tmp_path, **own)
        report = json.loads(running.stdout)
        assert running.returncode == 0 and report["running"] is True
        assert report["url"] == started.stdout.strip() and report["pid"] > 0
    finally:
        stopped = mesh("db", "stop", dsn="", cwd=tmp_path, **own)
    assert stopped.returncode == 0 and f"pid {report['pid']}" in stopped.stdout
    after = mesh("db", "status", dsn="", cwd=tmp_path, **own)
    assert after.returncode == 1 and "not running" in after.stdout
    again = mesh("db", "stop", "--json", dsn="", cwd=tmp_path, **own)
    assert json.loads(again.stdout)["stopped"] is False


def test_db_status__a_configured_database_that_does_not_answer(tmp_path: Path) -> None:
    result = mesh("db", "status", dsn="postgresql://nobody@127.0.0.1:1/none", cwd=tmp_path)
    assert result.returncode == 3 and "no answer from" in result.stdout
    refused = mesh("db", "stop", dsn="postgresql://nobody@127.0.0.1:1/none", cwd=tmp_path)
    assert refused.returncode == 2 and "only the embedded server" in refused.stderr
