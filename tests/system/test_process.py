"""Real node processes started through ``mesh run``: SIGKILL takeover, SIGTERM drain, poison."""

from __future__ import annotations

import signal
from pathlib import Path

import psycopg

from tests.helpers import NodeProcess, wait_until_sync, write_config
from tests.nodes import APP, TOPIC, send


def config(
    tmp_path: Path,
    function: str,
    *,
    concurrency: int = 20,
    lease: str = "2 seconds",
    attempts: int = 3,
) -> Path:
    return write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
node:
  roles: [quorum, worker]  # the test reads the responses off their stream itself
  drain_timeout: 20 seconds
streams:
  lease: {lease}
  poll_interval: 0.5 seconds
  reap_interval: 0.3 seconds
  batch_size: 10
retry:
  maximum_attempts: {attempts}
  backoff_coefficient: 1
  maximum_interval: 0.5 seconds
workers:
  - topic: {TOPIC}
    function: {function}
    concurrency: {concurrency}
""",
    )


def one(conn: psycopg.Connection, query: str) -> object:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def response_counts(conn: psycopg.Connection) -> tuple[int, int]:
    row = conn.execute(
        "SELECT count(*), count(DISTINCT payload->>'request_id') FROM mesh.stream_messages WHERE stream = 'replies'"
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_sigkill__a_second_node_finishes_the_work_exactly_once(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    total = 300
    request_ids = set(send(conn, *({"n": n} for n in range(total))))
    path = config(tmp_path, "tests.activities:work_a_little")
    first = NodeProcess(path, dsn, log=tmp_path / "first.log")
    try:
        wait_until_sync(
            lambda: response_counts(conn)[0] >= 40, what="the first node to make progress"
        )
        first.kill()
    finally:
        first.ensure_stopped()
    done_by_first = response_counts(conn)[0]
    assert done_by_first < total, "the first node finished everything before it was killed"
    leased_by_dead_node = one(
        conn, "SELECT count(*) FROM mesh.stream_messages WHERE lease_owner IS NOT NULL"
    )

    second = NodeProcess(path, dsn, log=tmp_path / "second.log")
    try:
        wait_until_sync(lambda: response_counts(conn)[0] >= total, timeout=60, what="all responses")
        assert second.terminate() == 0, second.log()
    finally:
        second.ensure_stopped()

    assert response_counts(conn) == (total, total), "every request must have exactly one response"
    answered = {
        r[0]
        for r in conn.execute(
            "SELECT payload->>'request_id' FROM mesh.stream_messages WHERE stream = 'replies'"
        )
    }
    assert answered == request_ids
    assert one(conn, f"SELECT count(*) FROM mesh.stream_messages WHERE stream = '{TOPIC}'") == 0, (
        "work left pending"
    )
    assert (
        one(conn, "SELECT count(*) FROM mesh.stream_messages WHERE lease_owner IS NOT NULL") == 0
    ), "leases left"
    assert one(conn, "SELECT count(*) FROM mesh.dead_letters") == 0
    print(f"first node answered {done_by_first}, left {leased_by_dead_node} leased at its death")


def test_sigterm__drains_in_flight_work_and_leaves_no_lease(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    send(conn, *({"n": n} for n in range(30)))
    node = NodeProcess(
        config(tmp_path, "tests.activities:block_one_second", concurrency=10, lease="30 seconds"),
        dsn,
        log=tmp_path / "node.log",
    )
    try:
        wait_until_sync(
            lambda: (
                one(conn, "SELECT count(*) FROM mesh.stream_messages WHERE lease_owner IS NOT NULL")
                == 10
            ),
            what="ten messages in flight",
        )
        assert response_counts(conn)[0] < 10
        code = node.terminate()
    finally:
        node.ensure_stopped()
    log = node.log()
    assert code == 0, log
    assert "event=node_draining" in log and "event=node_stopped" in log
    answered, _ = response_counts(conn)
    assert answered >= 10, f"in-flight work was abandoned: {answered} responses"
    assert (
        one(conn, "SELECT count(*) FROM mesh.stream_messages WHERE lease_owner IS NOT NULL") == 0
    ), "a lease was left behind"
    # What was never claimed is still there, untouched, for the next node.
    assert (
        one(conn, f"SELECT count(*) FROM mesh.stream_messages WHERE stream = '{TOPIC}'")
        == 30 - answered
    )


def test_poison__a_message_that_kills_its_node_is_dead_lettered_after_n_claims(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    (request_id,) = send(conn, {"n": 1})
    path = config(tmp_path, "tests.activities:kills_its_process", lease="1 second", attempts=3)
    deaths = 0
    for round_number in range(6):
        node = NodeProcess(path, dsn, log=tmp_path / f"node-{round_number}.log")
        try:
            wait_until_sync(
                lambda node=node: (
                    node.process.poll() is not None
                    or one(conn, "SELECT count(*) FROM mesh.dead_letters") == 1
                ),
                timeout=30,
                what="the node to die or the message to be dead-lettered",
            )
            if node.process.poll() is not None:
                deaths += 1
                continue
            assert node.terminate() == 0
            break
        finally:
            node.ensure_stopped()
    assert deaths == 3, f"the handler ran {deaths} times; the policy allows 3 attempts"
    row = conn.execute(
        "SELECT attempts, last_error, payload->>'id' FROM mesh.dead_letters"
    ).fetchone()
    assert row is not None and row[0] == 3 and row[2] == request_id and "claimed 3 times" in row[1]
    error = conn.execute(
        "SELECT payload->>'status', payload->'error'->>'type' FROM mesh.stream_messages WHERE stream = 'replies'"
    ).fetchall()
    assert error == [("error", "DeadLettered")]


def test_second_signal__exits_at_once(tmp_path: Path, dsn: str, conn: psycopg.Connection) -> None:
    send(conn, *({"n": n} for n in range(3)))
    path = config(tmp_path, "tests.activities:block_one_second", concurrency=3, lease="30 seconds")
    node = NodeProcess(path, dsn, log=tmp_path / "node.log")
    try:
        wait_until_sync(
            lambda: (
                one(conn, "SELECT count(*) FROM mesh.stream_messages WHERE lease_owner IS NOT NULL")
                == 3
            ),
            what="work in flight",
        )
        node.process.send_signal(signal.SIGTERM)
        node.wait_for_log("action=drain")
        node.process.send_signal(signal.SIGTERM)
        code = node.wait(timeout=10)
    finally:
        node.ensure_stopped()
    assert code == 128 + signal.SIGTERM, node.log()
    assert "action=exit_now" in node.log()


def test_procfile__honcho_stops_every_node_after_it_drained(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    """honcho sends SIGKILL 5 s after SIGTERM: the Procfile's nodes must have drained,
    released what they still held and exited by then."""
    import os
    import subprocess

    from tests.conftest import ROOT
    from tests.helpers import MESH, node_env

    (tmp_path / "config").mkdir()
    config(tmp_path / "config", "tests.activities:blocks_a_minute", concurrency=3)
    (tmp_path / "Procfile").write_text((ROOT / "Procfile").read_text())
    send(conn, *({"n": n} for n in range(6)))
    honcho = str(Path(MESH).parent / "honcho")
    env = node_env(dsn, PATH=f"{Path(MESH).parent}:{os.environ['PATH']}")
    log = tmp_path / "honcho.log"
    leased = "SELECT count(*) FROM mesh.stream_messages WHERE lease_owner IS NOT NULL"
    with open(log, "w") as out:
        runner = subprocess.Popen(
            [honcho, "start", "-c", "worker=2"], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
        try:
            wait_until_sync(
                lambda: log.read_text().count("event=node_ready") == 3,
                timeout=60,
                what="three nodes ready",
            )
            wait_until_sync(lambda: one(conn, leased) == 6, timeout=60, what="work in flight")
            runner.send_signal(signal.SIGTERM)
            runner.wait(timeout=30)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
    text = log.read_text()
    assert "SIGKILL" not in text, text[-3000:]
    assert text.count("event=node_stopped") == 3, text[-3000:]
    assert one(conn, leased) == 0, "a killed node left its leases to expire"
    attempts = conn.execute("SELECT DISTINCT attempts FROM mesh.stream_messages").fetchall()
    assert attempts == [(0,)], "a drained message keeps its attempts"
