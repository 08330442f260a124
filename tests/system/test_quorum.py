"""The control plane with real node processes started through ``mesh run``: roll call,
throttle, broadcasts, signing, and bad control input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mesh.model.ids import quorum_channel
from tests.helpers import MESH, NodeProcess, node_env, wait_until_sync, write_config
from tests.nodes import APP, TOPIC, send


def quorum_config(
    tmp_path: Path,
    *,
    topics: tuple[str, ...] = (TOPIC,),
    function: str = "tests.activities:work_a_little",
    concurrency: int = 2,
) -> Path:
    workers = "".join(
        f"  - {{topic: {t}, function: '{function}', concurrency: {concurrency}, batch_size: {concurrency}}}\n"
        for t in topics
    )
    return write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
streams:
  poll_interval: 0.3 seconds
quorum:
  refresh_interval: 1 second
workers:
{workers}""",
    )


class Mesh:
    """Nodes started for one test, stopped at its end."""

    def __init__(self, tmp_path: Path, dsn: str, config: Path, **env: str) -> None:
        self.tmp_path, self.dsn, self.config, self.env = tmp_path, dsn, config, env
        self.nodes: list[NodeProcess] = []

    def start(self, *args: str) -> NodeProcess:
        node = NodeProcess(
            self.config,
            self.dsn,
            *args,
            log=self.tmp_path / f"node-{len(self.nodes)}.log",
            env=self.env,
        )
        self.nodes.append(node)
        node.wait_for_log("event=node_ready")
        return node

    def cli(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        """Run a command like an operator of this mesh would (``env`` overrides the mesh's)."""
        result = subprocess.run(
            [MESH, "--config", str(self.config), *args],
            env=node_env(self.dsn, **{**self.env, **env}),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.tmp_path,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def rollcall(self) -> list[dict[str, Any]]:
        return json.loads(self.cli("rollcall", "--json", "--delay", "1000").stdout)

    def stop(self) -> None:
        for node in self.nodes:
            node.ensure_stopped()


@pytest.fixture
def mesh_factory(tmp_path: Path, dsn: str) -> Iterator[Any]:
    meshes: list[Mesh] = []

    def make(config: Path, **env: str) -> Mesh:
        meshes.append(Mesh(tmp_path, dsn, config, **env))
        return meshes[-1]

    yield make
    for mesh in meshes:
        mesh.stop()


@contextmanager
def mesh_listen(mesh: Mesh, log: Path) -> Iterator[None]:
    """Run ``mesh listen --json`` into ``log`` for the duration; it must exit 0 on SIGTERM."""
    with open(log, "w") as out:
        listener = subprocess.Popen(
            [MESH, "--config", str(mesh.config), "listen", "--json"],
            env=node_env(mesh.dsn, **mesh.env),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            cwd=mesh.tmp_path,
        )
        try:
            assert listener.stderr is not None
            for _ in range(20):  # log lines may come first; the banner follows the LISTEN
                if "listening to app" in listener.stderr.readline():
                    break
            else:
                raise AssertionError("mesh listen never said it was listening")
            yield
        finally:
            listener.terminate()
            listener.communicate(timeout=10)  # also closes the stderr pipe
    assert listener.returncode == 0


def responses(dsn: str, topic: str = TOPIC) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM mesh.stream_messages WHERE stream = 'replies' AND payload->>'topic' = %s",
            (topic,),
        ).fetchone()
        return int(row[0]) if row else 0


def pending(dsn: str, topic: str = TOPIC) -> tuple[int, int]:
    """(messages still in the topic's stream, of which leased)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(lease_owner) FROM mesh.stream_messages WHERE stream = %s",
            (topic,),
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def unchanged_for(read: Any, seconds: float) -> bool:
    """True if ``read()`` gives the same value throughout ``seconds`` (observing inactivity)."""
    first = read()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if read() != first:
            return False
        time.sleep(0.1)
    return True


def notify_raw(dsn: str, payload: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (quorum_channel(APP), payload))


def test_rollcall__lists_every_member_with_real_readings(
    tmp_path: Path, dsn: str, mesh_factory: Any
) -> None:
    mesh = mesh_factory(quorum_config(tmp_path))
    engine = mesh.start("--role", "engine", "--role", "quorum")
    workers = [mesh.start("--role", "worker") for _ in range(3)]

    profiles = mesh.rollcall()
    assert len(profiles) == 4
    assert {p["pid"] for p in profiles} == {engine.pid, *(w.pid for w in workers)}
    by_pid = {p["pid"]: p for p in profiles}
    assert (
        by_pid[engine.pid]["roles"] == ["engine", "quorum"] and by_pid[engine.pid]["topics"] == []
    )
    for worker in workers:
        profile = by_pid[worker.pid]
        assert profile["roles"] == ["worker", "quorum"] and profile["topics"] == [TOPIC]
        assert [s["stream"] for s in profile["streams"]] == [TOPIC]
        assert profile["throttles"] == {TOPIC: 0}
    for profile in profiles:
        assert profile["app"] == APP and profile["host"] and profile["version"]
        assert 0 <= profile["system"]["cpu_percent"] <= 100 * 64
        assert 0 < profile["system"]["memory_used_bytes"] < profile["system"]["memory_total_bytes"]
        assert profile["system"]["network_received_bytes"] >= 0
        assert abs(profile["clock_skew_ms"]) < 5000
        assert time.time() - 120 < profile["started_at"] <= time.time()

    workers[0].kill()
    assert {p["pid"] for p in mesh.rollcall()} == {engine.pid, workers[1].pid, workers[2].pid}


def test_rollcall__table_by_default(tmp_path: Path, dsn: str, mesh_factory: Any) -> None:
    mesh = mesh_factory(quorum_config(tmp_path))
    node = mesh.start("--role", "worker")
    table = mesh.cli("rollcall").stdout
    assert "guid" in table.splitlines()[0] and "processed" in table and str(node.pid) in table


def test_throttle__pause_stops_consumption_and_resume_restarts_it(
    tmp_path: Path, dsn: str, mesh_factory: Any
) -> None:
    total = 400
    with psycopg.connect(dsn, autocommit=True) as conn:
        send(conn, *({"n": n} for n in range(total)))
    mesh = mesh_factory(quorum_config(tmp_path))
    mesh.start("--role", "worker")
    wait_until_sync(lambda: responses(dsn) >= 10, what="consumption to start")

    mesh.cli("throttle", "-1")
    wait_until_sync(lambda: pending(dsn)[1] == 0, what="in-flight work to finish")
    assert unchanged_for(lambda: pending(dsn), 1.5), "messages were consumed while paused"
    left, _ = pending(dsn)
    assert left > 0 and left + responses(dsn) == total, "a message was lost"

    late = mesh.start("--role", "worker")  # a node started during the pause stays paused
    assert unchanged_for(lambda: pending(dsn), 1.0)
    profiles = {p["pid"]: p for p in mesh.rollcall()}
    assert profiles[late.pid]["throttles"] == {TOPIC: -1}

    resumed = json.loads(mesh.cli("throttle", "0", "--json").stdout)
    assert resumed == {"app": APP, "throttle_ms": 0, "topic": None, "guid": None}
    wait_until_sync(lambda: pending(dsn)[0] < left, timeout=5, what="consumption to resume at once")
    wait_until_sync(lambda: responses(dsn) == total, timeout=60, what="all messages after resuming")


def test_throttle__a_topic_throttle_slows_only_that_topic(
    tmp_path: Path, dsn: str, mesh_factory: Any
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        send(conn, *({"n": n} for n in range(200)), topic="slow")
        send(conn, *({"n": n} for n in range(200)), topic="fast")
    mesh = mesh_factory(
        quorum_config(
            tmp_path, topics=("slow", "fast"), function="tests.activities:echo", concurrency=10
        )
    )
    mesh.cli("throttle", "250", "--topic", "slow")  # before the node starts: it reads it at boot
    mesh.start("--role", "worker")
    wait_until_sync(lambda: responses(dsn, "fast") == 200, what="the fast topic to finish")
    started = time.monotonic()
    slow_at_start = responses(dsn, "slow")
    wait_until_sync(
        lambda: responses(dsn, "slow") >= slow_at_start + 6, timeout=20, what="slow progress"
    )
    elapsed = time.monotonic() - started
    done = responses(dsn, "slow") - slow_at_start
    # One message per 250 ms per consumer: 6 messages need at least ~1.25 s.
    assert elapsed >= 1.0, f"{done} throttled messages in {elapsed:.2f}s"
    assert responses(dsn, "slow") < 200


def test_broadcast__reaches_every_member_and_mesh_listen(
    tmp_path: Path, dsn: str, mesh_factory: Any
) -> None:
    mesh = mesh_factory(quorum_config(tmp_path))
    mesh.start("--role", "worker")
    mesh.start("--role", "engine", "--role", "quorum")
    listen_log = tmp_path / "listen.log"
    with mesh_listen(mesh, listen_log):
        mesh.cli("broadcast", "promo", '{"sale": 10}')
        wait_until_sync(lambda: "promo" in listen_log.read_text(), what="mesh listen to print it")
        # Pongs go to the pinger's own channel; listen sees their copies (observer channel).
        pinger = mesh.cli("rollcall", "--json")
        guids = {p["guid"] for p in json.loads(pinger.stdout)}
        wait_until_sync(
            lambda: guids <= {m.get("guid") for m in _lines(listen_log) if m["type"] == "pong"},
            what="mesh listen to print both members' pongs",
        )
    (line,) = [json.loads(x) for x in listen_log.read_text().splitlines() if '"user"' in x]
    assert (line["topic"], line["message"]) == ("promo", {"sale": 10})
    for profile in mesh.rollcall():
        assert profile["quorum"].get("received.user") == 1, profile["quorum"]
        assert "quorum" in profile["roles"]  # the worker-only node runs a member too


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]


def test_bad_control_input__is_dropped_counted_and_survived(
    tmp_path: Path, dsn: str, mesh_factory: Any
) -> None:
    mesh = mesh_factory(quorum_config(tmp_path))
    node = mesh.start("--role", "worker")
    for payload in (
        "{not json",
        '{"type": "teleport"}',
        '{"type": "throttle", "throttle": "fast"}',
        '{"type": "throttle", "throttle": -7}',
    ):
        notify_raw(dsn, payload)

    def rejected() -> dict[str, int]:
        (profile,) = mesh.rollcall()
        return {k: v for k, v in profile["quorum"].items() if k.startswith("rejected.") and v}

    wait_until_sync(
        lambda: rejected() == {"rejected.malformed": 3, "rejected.bad_throttle": 1},
        what="four rejections",
    )
    # Logged once per reason (a flood of bad NOTIFYs must not flood the log).
    assert node.log().count("reason=malformed") == 1
    (profile,) = mesh.rollcall()
    assert profile["throttles"] == {TOPIC: 0}
    assert node.process.poll() is None

    for args, expected in (
        (["throttle", "--", "-2"], "out of range"),
        (["throttle", "fast"], "invalid int value"),
        (["throttle", "100", "--guid", "nobody"], "no live member"),
        (["broadcast", "promo", "{oops"], "not valid JSON"),
    ):
        result = mesh.cli(*args, check=False)
        assert result.returncode == 2 and expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_procfile__honcho_brings_up_the_mesh_and_rollcall_sees_it(tmp_path: Path, dsn: str) -> None:
    from tests.conftest import ROOT

    (tmp_path / "config").mkdir()
    config = quorum_config(tmp_path / "config")
    (tmp_path / "Procfile").write_text((ROOT / "Procfile").read_text())
    honcho = str(Path(MESH).parent / "honcho")
    env = node_env(dsn, PATH=f"{Path(MESH).parent}:{os.environ['PATH']}")
    log = tmp_path / "honcho.log"
    with open(log, "w") as out:
        runner = subprocess.Popen(
            [honcho, "start", "-c", "worker=3"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_sync(
                lambda: log.read_text().count("event=node_ready") == 4,
                timeout=60,
                what="four nodes ready",
            )
            result = subprocess.run(
                [MESH, "--config", str(config), "rollcall", "--json", "--delay", "1000"],
                env=node_env(dsn),
                capture_output=True,
                text=True,
                timeout=60,
                cwd=tmp_path,
            )
            profiles = json.loads(result.stdout)
            assert len(profiles) == 4
            assert sorted(tuple(p["roles"]) for p in profiles) == [
                ("engine", "quorum"),
                *[("worker", "quorum")] * 3,
            ]
            ports = sorted(
                int(p) for p in re.findall(r"event=metrics_serving port=(\d+)", log.read_text())
            )
            assert len(ports) == 4 and len(set(ports)) == 4, (
                "each process serves metrics on its own PORT"
            )
        finally:
            runner.send_signal(signal.SIGTERM)
            runner.wait(timeout=60)
    assert log.read_text().count("event=node_stopped") == 4, log.read_text()


def test_oversized_broadcast__travels_by_reference(
    tmp_path: Path, dsn: str, mesh_factory: Any
) -> None:
    mesh = mesh_factory(quorum_config(tmp_path))
    node = mesh.start("--role", "worker")
    big = {"blob": "é" * 6000}  # 12,000 bytes of UTF-8: over the NOTIFY limit
    listen_log = tmp_path / "listen.log"
    with mesh_listen(mesh, listen_log):
        mesh.cli("broadcast", "big", json.dumps(big))
        wait_until_sync(lambda: '"big"' in listen_log.read_text(), what="the large message")
    (line,) = [json.loads(x) for x in listen_log.read_text().splitlines() if '"big"' in x]
    assert line["message"] == big
    wait_until_sync(
        lambda: mesh.rollcall()[0]["quorum"].get("received.user") == 1, what="the member to get it"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM mesh.quorum_payloads").fetchone() == (1,)
    assert node.process.poll() is None


def test_rollcall_message__members_repeat_their_pong(
    tmp_path: Path, dsn: str, mesh_factory: Any
) -> None:
    mesh = mesh_factory(quorum_config(tmp_path))
    nodes = [mesh.start("--role", "worker") for _ in range(2)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'LISTEN "{quorum_channel(APP)}"')
        notify_raw(dsn, json.dumps({"type": "rollcall", "interval": 0.2, "max": 3}))
        pongs: list[dict[str, Any]] = []

        def six_pongs() -> bool:
            for note in conn.notifies(timeout=0.2, stop_after=1):
                message = json.loads(note.payload)
                if message["type"] == "pong":
                    pongs.append(message)
            return len(pongs) >= 6

        wait_until_sync(six_pongs, timeout=20, what="six pongs")
    assert len(pongs) == 6, "two members x three cycles"
    assert {p["guid"] for p in pongs} == {p["guid"] for p in mesh.rollcall()}
    assert all(
        p["originator"] is None and p["profile"]["pid"] in {n.pid for n in nodes} for p in pongs
    )
