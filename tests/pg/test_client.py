"""The client that starts no node, under asyncio and under trio: its waits share one listening
connection, opened only while something waits, and hold no pooled connection (a status read
goes through while many wait on a pool of one); it never takes an advisory lock. Mesh.open
under asyncio is refused, naming Client.connect. (No node runs here: the workflows wait on a
task queue nobody serves, and the test ends their jobs as a node would: the row, then the job
channel's notice.)"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import psycopg
import pytest

from mesh import Client, Mesh, MeshClient
from mesh.errors import JobFailed, WrongEventLoop
from tests.helpers import eventually, wait_until_sync

APP = "clients"
LISTENER = f"mesh-client-listener:{APP}"


def connections(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def end_jobs(dsn: str, keys: list[str]) -> None:
    """End the jobs ``keys`` as interrupted and announce it, as a node's commit would."""
    from mesh.model.graph.effects import announcement, announcement_payloads
    from mesh.model.ids import job_channel

    with psycopg.connect(dsn, autocommit=True) as ender, ender.transaction():
        ender.execute(
            "UPDATE mesh.jobs SET state = 'interrupted', status = -1000000000, "
            'error = \'{"message": "ended by the test", "code": 410}\' '
            "WHERE app = %s AND key = ANY(%s)",
            (APP, keys),
        )
        events = [announcement("waits", key, "interrupted") for key in keys]
        for payload in announcement_payloads(events):
            ender.execute("SELECT pg_notify(%s, %s)", (job_channel(APP), payload))


def client_advisory_locks(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND a.application_name LIKE 'mesh-client%%'"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_async_client__waits_share_one_listener_and_hold_no_pooled_connection(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    async def scenario() -> dict[str, Any]:
        async with await Client.connect(dsn, app=APP, pool_size=1) as client:
            before = (client.listening, connections(conn, LISTENER))
            handles = [
                await client.start_workflow("waits", n, task_queue="nobody") for n in range(10)
            ]
            results: list[Any] = []

            async def wait(handle: Any) -> None:
                try:
                    results.append(await handle.result())
                except JobFailed as error:
                    results.append(error.status)

            waits = [asyncio.create_task(wait(h)) for h in handles]
            await eventually(lambda: client.listening, what="the first wait to listen")
            # ten waits on a pool of one: a status read still goes through
            status = await handles[0].status()
            during = (client.listening, connections(conn, LISTENER), client_advisory_locks(conn))
            end_jobs(dsn, [h.workflow_id for h in handles])
            await asyncio.gather(*waits)
            return {"before": before, "status": status, "during": during, "results": results}

    outcome = asyncio.run(scenario())
    assert outcome["before"] == (False, 0), "no listener before anything waits"
    assert outcome["status"] == "running"
    assert outcome["during"] == (True, 1, 0), "one listener for ten waits, no advisory lock"
    assert outcome["results"] == ["interrupted"] * 10
    wait_until_sync(lambda: connections(conn, LISTENER) == 0, what="the client to close")


async def test_async_client__works_under_trio_too(dsn: str) -> None:
    async with await Client.connect(dsn, app=APP) as client:
        handle = await client.start_workflow("waits", 1, task_queue="nobody")
        assert await handle.status() == "running"
        end_jobs(dsn, [handle.workflow_id])
        with pytest.raises(JobFailed, match="interrupted"):
            await handle.result(timeout=10)


def test_sync_client__waits_from_threads_hold_no_pooled_connection(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    with MeshClient(dsn, app=APP, pool_size=1) as client:
        handles = [client.start_workflow("waits", n, task_queue="nobody") for n in range(8)]
        results: list[Any] = []

        def wait(handle: Any) -> None:
            try:
                results.append(handle.result())
            except JobFailed as error:
                results.append(error.status)

        threads = [threading.Thread(target=wait, args=(h,)) for h in handles]
        for thread in threads:
            thread.start()
        wait_until_sync(lambda: client.waiters.listening, what="the listener")
        assert handles[0].status() == "running", "a read goes through while eight wait"
        assert connections(conn, LISTENER) == 1
        end_jobs(dsn, [h.workflow_id for h in handles])
        for thread in threads:
            thread.join(30)
    assert results == ["interrupted"] * 8


def test_mesh_open__under_asyncio_is_refused_naming_the_client(dsn: str) -> None:
    async def open_a_node() -> None:
        async with Mesh.open(dsn, app=APP):
            pass

    with pytest.raises(WrongEventLoop, match=r"Client\.connect"):
        asyncio.run(open_a_node())
