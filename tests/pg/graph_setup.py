"""What the graph tests on real Postgres share: an in-process mesh with a manifest deployed
and active, the test workers, the SEQUENCE manifest, and waiting for a hook's registration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from mesh.api import Mesh
from mesh.examples import inventory
from mesh.runtime.consumer import ConsumerSettings
from tests.helpers import wait_until

FAST = ConsumerSettings(poll_interval=0.2)


@asynccontextmanager
async def mesh_with(
    dsn: str, manifest: str, workers: dict[str, Callable[..., Any]] | None = None, app: str = "t"
) -> AsyncIterator[Mesh]:
    async with Mesh.open(
        dsn, app=app, workers=workers or {}, worker_settings=FAST, engine_settings=FAST
    ) as mesh:
        await mesh.deploy(manifest)
        await mesh.activate("1")
        yield mesh


async def double(data: dict[str, Any]) -> dict[str, Any]:
    return {"value": data["value"] * 2}


ORDER_WORKERS = {
    "inventory.check": inventory.check_inventory,
    "inventory.reserve": inventory.reserve_item,
    "inventory.backorder.notify": inventory.notify_backorder,
}

SEQUENCE = """
app:
  id: t
  version: '1'
  graphs:
    - subscribes: calc
      input:
        schema: {type: object, properties: {value: {type: number}}, required: [value]}
      activities:
        start:
          type: trigger
          job: {maps: {first: '{$self.output.data.value}'}}
        a:
          type: worker
          topic: t.double
          input: {maps: {value: '{start.output.data.value}'}}
        b:
          type: worker
          topic: t.double
          input: {maps: {value: '{a.output.data.value}'}}
          output:
            maps:
              plusOne:
                '@pipe':
                  - ['{$self.output.data.value}', 1]
                  - ['{@math.add}']
          job: {maps: {result: '{$self.output.data.plusOne}'}}
      transitions:
        start: [{to: a}]
        a: [{to: b}]
"""


async def wait_registered(dsn: str, key: str) -> None:
    """Wait until the job ``key`` has a hook registered."""

    def registered() -> bool:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM mesh.hook_signals h JOIN mesh.jobs j ON j.id = h.job_id "
                "WHERE j.key = %s",
                (key,),
            ).fetchone()
        return bool(row and row[0])

    await wait_until(registered, what=f"a hook of job {key!r} to register")
