"""Activities written for asyncio run in ``mesh run`` nodes as they are written: asyncio.sleep
and gather, aiohttp and httpx against an HTTP server the test runs, an asyncpg pool made once
per worker. A start_to_close that passes, a workflow cancelled or terminated, and a drain past
its deadline reach a running activity as asyncio.CancelledError."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from mesh.pg.client import MeshClient
from tests.helpers import NodeProcess, wait_until_sync, write_config

APP = "aio"
QUEUE = "aio"


class Server:
    """An HTTP server on 127.0.0.1: GET answers ``hello``, POST /report is recorded."""

    def __init__(self) -> None:
        self.reports: list[str] = []
        reports = self.reports

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(b"hello")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                reports.append(self.rfile.read(length).decode())
                self._answer(b"ok")

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    try:
        yield running
    finally:
        running.httpd.shutdown()
        running.httpd.server_close()


def asyncpg_dsn(dsn: str) -> str:
    parts = conninfo_to_dict(dsn)
    host = parts.get("host", "")
    where = f"?host={host}" if str(host).startswith("/") else ""
    at = "" if where else str(host)
    return f"postgresql://{parts.get('user', 'postgres')}@{at}/{parts['dbname']}{where}"


def test_asyncio_activities__run_in_a_node_as_written(
    tmp_path: Path, dsn: str, conn: psycopg.Connection, server: Server
) -> None:
    config = write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
node: {{roles: [quorum, worker], drain_timeout: 1 second}}
streams: {{poll_interval: 1 second, lease: 3 seconds}}
task_queues:
  - name: {QUEUE}
    workflows:
      - tests.asyncio_activities:uses_asyncio
      - tests.asyncio_activities:times_out
      - tests.asyncio_activities:waits_for_activity
    activities:
      - tests.asyncio_activities:fan_in
      - tests.asyncio_activities:fetch_with_aiohttp
      - tests.asyncio_activities:fetch_httpx
      - tests.asyncio_activities:inventory.doubled
      - tests.asyncio_activities:waits_to_be_cancelled
""",
    )
    env = {"TEST_HTTP": server.url, "TEST_ASYNCPG": asyncpg_dsn(dsn)}
    node = NodeProcess(config, dsn, log=tmp_path / "node.log", env=env)
    try:
        node.wait_for_log("event=node_ready")
        with MeshClient(dsn, app=APP) as client:
            results = [
                client.start_workflow("uses_asyncio", n, task_queue=QUEUE).result(timeout=60)
                for n in (3, 5)
            ]
            timed_out = client.start_workflow("times_out", "m1", task_queue=QUEUE)
            kind = timed_out.result(timeout=60)
            wait_until_sync(lambda: "cancelled m1" in server.reports, what="start_to_close")
            # The workflow is cancelled, then another terminated, while their activity runs.
            for marker, end in (("m2", "cancel"), ("m3", "terminate")):
                handle = client.start_workflow("waits_for_activity", marker, task_queue=QUEUE)
                wait_until_sync(lambda m=marker: f"started {m}" in server.reports, what=marker)
                assert getattr(handle, end)() is True
                wait_until_sync(lambda m=marker: f"cancelled {m}" in server.reports, what=end)
            # The node drains past its deadline while an activity runs.
            client.start_workflow("waits_for_activity", "m4", task_queue=QUEUE)
            wait_until_sync(lambda: "started m4" in server.reports, what="m4")
        assert node.terminate(timeout=30) == 0
        wait_until_sync(lambda: "cancelled m4" in server.reports, what="the drain deadline")
    finally:
        node.ensure_stopped()
    assert results == [
        {"gathered": 3, "aiohttp": "hello", "httpx": "hello", "doubled": 6},
        {"gathered": 10, "aiohttp": "hello", "httpx": "hello", "doubled": 10},
    ], node.log()
    assert kind == "TooSlowError", "start_to_close passed: the attempt failed as timed out"
    assert server.reports.count("pool created") == 1, "one asyncpg pool for the worker"
    assert "no running event loop" not in node.log()
