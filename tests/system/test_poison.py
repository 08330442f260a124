"""A message that kills its process takes down only itself (real worker processes, killed
for real), and a retry policy's attempts reach the stream rows whichever way it is set."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from mesh.pg.client import MeshClient
from tests.helpers import NodeProcess, mesh, wait_until_sync, write_config

APP = "poison"

MANIFEST = """
app:
  id: poison
  version: '1'
  graphs:
    - subscribes: p.order
      activities:
        start: {type: trigger}
        work:
          type: worker
          topic: p.work
          input:
            maps: {n: '{start.output.data.n}', poison: '{start.output.data.poison}'}
          job: {maps: {n: '{$self.output.data.n}'}}
      transitions:
        start: [{to: work}]
    - subscribes: p.twice
      activities:
        t2: {type: trigger}
        work2:
          type: worker
          topic: p.work
          retry: {maximumAttempts: 2}
          input: {maps: {n: 0, poison: true}}
      transitions:
        t2: [{to: work2}]
"""


def config(tmp_path: Path, attempts: int = 3) -> Path:
    (tmp_path / "poison.yaml").write_text(MANIFEST)
    return write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
streams:
  lease: 2 seconds
  poll_interval: 0.3 seconds
  reap_interval: 0.3 seconds
retry:
  maximum_attempts: {attempts}
  backoff_coefficient: 1
  maximum_interval: 0.2 seconds
workers:
  - topic: p.work
    function: tests.activities:kills_its_process_if_poison
    concurrency: 10
    batch_size: 10
""",
    )


class Fleet:
    """An engine node and worker nodes that the test restarts when they die, as systemd's
    Restart= or a Procfile runner would; counts the deaths."""

    def __init__(self, tmp_path: Path, dsn: str, path: Path, workers: int) -> None:
        self.tmp_path, self.dsn, self.path = tmp_path, dsn, path
        self.started = 0
        self.deaths = 0
        self.engine = self._start("--role", "engine", "--role", "quorum")
        self.workers = [self._start("--role", "worker") for _ in range(workers)]

    def _start(self, *roles: str) -> NodeProcess:
        self.started += 1
        return NodeProcess(
            self.path, self.dsn, *roles, log=self.tmp_path / f"node-{self.started}.log"
        )

    def restart_the_dead(self) -> None:
        for index, node in enumerate(self.workers):
            if node.process.poll() is not None:
                assert node.process.returncode == 3, node.log()  # died of the poison
                node.ensure_stopped()
                self.deaths += 1
                self.workers[index] = self._start("--role", "worker")

    def stop(self) -> None:
        for node in [self.engine, *self.workers]:
            node.ensure_stopped()


@contextmanager
def fleet(tmp_path: Path, dsn: str, path: Path, workers: int) -> Iterator[Fleet]:
    assert mesh("migrate", dsn=dsn, cwd=tmp_path).returncode == 0
    for command in (("deploy", "poison.yaml"), ("activate", "1")):
        result = mesh("--config", str(path), *command, dsn=dsn, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    running = Fleet(tmp_path, dsn, path, workers)
    try:
        yield running
    finally:
        running.stop()


def statuses(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT state, count(*) FROM mesh.jobs GROUP BY state").fetchall())


def test_poison__among_200_jobs_on_3_workers_only_the_poison_job_fails(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    path = config(tmp_path)
    with fleet(tmp_path, dsn, path, workers=3) as nodes, MeshClient(dsn, app=APP) as client:
        for n in range(200):
            client.pub("p.order", {"n": n, "poison": n == 77}, job_id=f"job-{n}")

        def settled() -> bool:
            nodes.restart_the_dead()
            return sum(statuses(conn).values()) == 200 and "running" not in statuses(conn)

        wait_until_sync(settled, timeout=240, what="every job to finish")
        nodes.restart_the_dead()
    assert statuses(conn) == {"done": 199, "failed": 1}, statuses(conn)
    failed = conn.execute("SELECT key, error->>'message' FROM mesh.jobs WHERE state = 'failed'")
    (key, message), *_ = failed.fetchall()
    assert key == "job-77" and "crashed or hung each time" in message, message
    dead = conn.execute("SELECT payload->'data'->>'n', attempts FROM mesh.dead_letters").fetchall()
    assert dead == [("77", 3)]
    done = conn.execute(
        "SELECT count(*) FROM mesh.jobs_attributes a JOIN mesh.jobs j ON j.id = a.job_id "
        "WHERE j.state = 'done' AND a.symbol = 'n'"
    ).fetchone()
    assert done == (199,)
    print(f"worker processes killed by the poison: {nodes.deaths}")
    # Its first two deaths took others with it (refunded), then it ran alone: three more.
    assert 3 <= nodes.deaths <= 5, nodes.deaths
    left = conn.execute("SELECT count(*) FROM mesh.stream_messages").fetchone()
    assert left == (0,)


def test_retry_policy__the_configured_and_the_activitys_attempts_reach_the_stream(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    path = config(tmp_path, attempts=4)
    with fleet(tmp_path, dsn, path, workers=1) as nodes, MeshClient(dsn, app=APP) as client:
        # No policy in the manifest: the worker's (retry.maximum_attempts: 4) applies.
        client.pub("p.order", {"n": 1, "poison": True}, job_id="by-config")

        def failed(key: str) -> bool:
            nodes.restart_the_dead()
            return client.get_status(key) == "failed"

        wait_until_sync(lambda: failed("by-config"), timeout=120, what="the job to fail")
        by_config = nodes.deaths
        # The activity's own retry: {maximumAttempts: 2} wins over the worker's.
        client.pub("p.twice", {}, job_id="by-manifest")
        wait_until_sync(lambda: failed("by-manifest"), timeout=120, what="the second job")
        nodes.restart_the_dead()
        by_manifest = nodes.deaths - by_config
    assert (by_config, by_manifest) == (4, 2)
    dead = dict(
        conn.execute("SELECT payload->>'job_id', max_attempts FROM mesh.dead_letters").fetchall()
    )
    assert dead == {"by-config": 4, "by-manifest": 2}
