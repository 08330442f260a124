"""The job channel hears from any database login: malformed, deep or forged notices change
nothing, and a subscriber that raises stops neither the others nor the node."""

from __future__ import annotations

import json

import psycopg
import pytest

from mesh.errors import JobTimeout
from mesh.model.ids import job_channel
from mesh.model.jobs import JobEvent
from tests.helpers import wait_until
from tests.pg.graph_setup import double, mesh_with

MANIFEST = """
app:
  id: t
  version: '1'
  graphs:
    - subscribes: calc
      publishes: calc.done
      activities:
        start: {type: trigger}
        twice:
          type: worker
          topic: t.double
          input: {maps: {value: '{start.output.data.value}'}}
          job: {maps: {value: '{$self.output.data.value}'}}
      transitions:
        start: [{to: twice}]
"""


async def test_job_channel__malformed_deep_and_forged_notices_change_nothing(dsn: str) -> None:
    async with mesh_with(dsn, MANIFEST, {"t.double": double}) as mesh:
        held = await mesh.pub("calc", {"value": 1}, job_id="held", pending=60)
        heard: list[JobEvent] = []

        def broken(event: JobEvent) -> None:
            raise RuntimeError("a subscriber's bug")

        mesh.sub("calc.done", broken)
        mesh.sub("calc.done", heard.append)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for payload in (
                "[" * 3000 + "]" * 3000,
                "{not json",
                json.dumps([{"topic": 1, "job_id": None, "status": ["done"]}]),
                json.dumps([{"topic": "calc.done", "job_id": held, "status": "done"}]),
            ):
                conn.execute("SELECT pg_notify(%s, %s)", (job_channel("t"), payload))
        await wait_until(lambda: mesh.bad_notifications == 3, what="three dropped notices")
        await wait_until(lambda: len(heard) == 1, what="the forged notice to reach subscribers")
        # The forged "done" is not believed: the job's row says it is still pending.
        with pytest.raises(JobTimeout):
            await mesh.wait(held, timeout=1.0)
        # The node goes on: a real job runs, and both subscribers were called for it.
        record = await mesh.wait(await mesh.pub("calc", {"value": 21}), timeout=30)
        assert record.data["value"] == 42
        await wait_until(lambda: len(heard) == 2, what="the real completion")
