"""Activities written the way asyncio code is written (no trio anywhere), and the workflows
that call them, for tests that run them in ``mesh run`` nodes by dotted path. They reach the
test through an HTTP server it runs (``TEST_HTTP``: replies and reports) and a database
(``TEST_ASYNCPG``: an asyncpg DSN)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp
import asyncpg
import httpx

from mesh import RetryPolicy, activity, workflow


def _url(path: str) -> str:
    return os.environ["TEST_HTTP"] + path


async def report(what: str) -> None:
    """Tell the test something happened (a POST to its HTTP server)."""
    async with httpx.AsyncClient() as client:
        await client.post(_url("/report"), content=what)


@activity.defn
async def fan_in(count: int) -> int:
    """asyncio.gather of asyncio.sleep calls inside one activity."""
    values = await asyncio.gather(*(asyncio.sleep(0.01, result=n) for n in range(count)))
    return sum(values)


async def fetch_with_aiohttp(path: str) -> str:
    """A plain async def (no decorator): it runs on asyncio too."""
    async with aiohttp.ClientSession() as session, session.get(_url(path)) as response:
        return await response.text()


@activity.defn(name="fetch_with_httpx")
async def fetch_httpx(path: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(_url(path))
        return response.text


class Inventory:
    """A worker-scoped resource: one asyncpg pool per worker, made on the asyncio loop when
    the worker starts and closed when it stops; its methods are activities."""

    pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> Inventory:
        self.pool = await asyncpg.create_pool(os.environ["TEST_ASYNCPG"], min_size=1, max_size=2)
        await report("pool created")
        return self

    async def __aexit__(self, *_: Any) -> None:
        if self.pool is not None:
            await self.pool.close()

    @activity.defn
    async def doubled(self, value: int) -> int:
        assert self.pool is not None, "the worker entered the resource before running it"
        async with self.pool.acquire() as connection:
            return int(await connection.fetchval("SELECT $1::int * 2", value))


inventory = Inventory()


@activity.defn
async def waits_to_be_cancelled(marker: str) -> str:
    """Sleeps a minute; reports when it starts and the CancelledError it gets."""
    await report(f"started {marker}")
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await report(f"cancelled {marker}")
        raise
    return "never"


async def uses_asyncio(value: int) -> dict[str, Any]:
    acts = workflow.proxy_activities(
        fan_in, fetch_with_aiohttp, fetch_httpx, inventory.doubled, start_to_close="30 seconds"
    )
    return {
        "gathered": await acts.fan_in(value),
        "aiohttp": await acts.fetch_with_aiohttp("/hello"),
        "httpx": await acts.fetch_with_httpx("/hello"),
        "doubled": await acts.doubled(value),
    }


async def times_out(marker: str) -> str:
    acts = workflow.proxy_activities(
        waits_to_be_cancelled,
        start_to_close="1 second",
        retry=RetryPolicy(maximum_attempts=1),
    )
    try:
        await acts.waits_to_be_cancelled(marker)
    except workflow.ActivityFailed as error:
        return error.type_name
    return "not cancelled"


async def waits_for_activity(marker: str) -> str:
    """Waits for an activity that runs a minute (no start_to_close)."""
    acts = workflow.proxy_activities(waits_to_be_cancelled)
    return str(await acts.waits_to_be_cancelled(marker))
