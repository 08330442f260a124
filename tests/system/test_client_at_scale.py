"""mesh.Client under asyncio, in a process of its own, starts 2,000 one-activity workflows and
waits for their results while a ``mesh run`` worker runs them: the client process loads no
actor and no runtime, holds no listening connection until it waits, and never an advisory
lock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.helpers import NodeProcess, node_env, write_config

CONFIG = """
app: scale
node: {roles: [quorum, worker]}
streams: {poll_interval: 1 second}
task_queues:
  - name: scale
    workflows: [tests.code_workflows:sequence]
    activities: [tests.code_workflows:add_one]
    concurrency: 100
"""

CLIENT = """
import asyncio, json, os, sys
import psycopg
from mesh import Client

DSN = os.environ["MESH_DATABASE_URL"]
LISTENER = "mesh-client-listener:scale"


def probe():
    with psycopg.connect(DSN, autocommit=True) as conn:
        listeners = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (LISTENER,)
        ).fetchone()[0]
        locks = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND a.application_name LIKE 'mesh-client%'"
        ).fetchone()[0]
    return listeners, locks


async def main():
    report = {}
    async with await Client.connect(DSN, app="scale") as client:
        report["before"] = [client.listening, *probe()]
        limit = asyncio.Semaphore(50)
        samples = []

        async def one(n):
            async with limit:
                handle = await client.start_workflow("sequence", n, task_queue="scale")
                return await handle.result(timeout=300)

        async def sample():
            while True:
                samples.append(await asyncio.to_thread(probe))
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        results = await asyncio.gather(*(one(n) for n in range(2000)))
        sampler.cancel()
        report["wrong"] = [n for n, r in enumerate(results) if r != n + 3]
        report["samples"] = samples
    report["loaded"] = sorted(m for m in sys.modules if m.startswith(("mesh.runtime", "actors")))
    print(json.dumps(report))


asyncio.run(main())
"""


def test_client__2000_workflows_under_asyncio_with_no_node_in_the_client(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    node = NodeProcess(write_config(tmp_path / "scale.yaml", CONFIG), dsn, log=tmp_path / "n.log")
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    try:
        node.wait_for_log("event=node_ready")
        done = subprocess.run(
            [sys.executable, str(script)],
            env=node_env(dsn),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        node.ensure_stopped()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["before"] == [False, 0, 0], "no listener before anything waits"
    assert report["wrong"] == [], "every workflow returned its value + 3"
    assert report["loaded"] == [], "the client process loaded no runtime and no actor"
    samples = report["samples"]
    assert samples and all(locks == 0 for _, locks in samples), "never an advisory lock"
    assert max(listeners for listeners, _ in samples) == 1, "one listener for 2,000 waits"
