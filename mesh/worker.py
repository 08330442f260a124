"""Run workflows and activities inside an application's own process, asyncio or trio.

::

    client = await mesh.Client.connect(dsn, app="shop")
    async with mesh.Worker(client, task_queue="orders", workflows=[order_workflow],
                           activities=[check_inventory, reserve_item]):
        ...  # the application runs; the worker serves the task queue meanwhile

A worker is a mesh node for one task queue (its workflow worker and activity worker, a quorum
member, a seat in the leader election), built by the same code as ``mesh run``'s. Under trio
it runs in the caller's trio run. Under asyncio the node runs on trio in a thread of its own,
and the activities written for asyncio run on the **application's** loop, so they can use
what the application made on it (a pool, a client session). Leaving the block drains the
node: it stops claiming, finishes what it holds (up to ``drain_timeout``) and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.to_thread
import sniffio
import trio

from mesh.client import Client
from mesh.errors import lone_error
from mesh.launch import build_actors, check_task_queue, in_process_node, in_process_plan
from mesh.model.retry import RetryPolicy
from mesh.pg.client import MeshClient
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.node import Node


class Worker:
    """Serves ``task_queue``: runs its ``workflows`` and ``activities`` (functions, as
    ``mesh run``'s config names them) in this process while the ``async with`` block (or
    :meth:`run`) lasts."""

    def __init__(
        self,
        client: Client | MeshClient,
        *,
        task_queue: str,
        workflows: Sequence[Callable[..., Any]] = (),
        activities: Sequence[Callable[..., Any]] = (),
        concurrency: int = 10,
        retry: RetryPolicy | None = None,
        drain_timeout: float = 30.0,
    ) -> None:
        check_task_queue(workflows, activities)
        core = client._core if isinstance(client, Client) else client
        self.dsn = core.dsn
        self.app = core.app
        self.task_queue = task_queue
        self.workflows = list(workflows)
        self.activities = list(activities)
        self.settings = ConsumerSettings(concurrency=concurrency)
        self.retry = retry or RetryPolicy()
        self.drain_timeout = drain_timeout
        self.node: Node | None = None
        self._stop: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._task_group: Any = None

    def _build(self, asyncio_loop: asyncio.AbstractEventLoop | None) -> tuple[Node, list[Any]]:
        node = in_process_node(
            self.dsn,
            self.app,
            migrate=False,
            announce_jobs=False,
            timeout=30.0,
            asyncio_loop=asyncio_loop,
        )
        node.drain_seconds = self.drain_timeout
        plan = in_process_plan(
            engine=None,
            workers={},
            workflows={self.task_queue: self.workflows},
            activities={self.task_queue: self.activities},
            settings=self.settings,
            retry=self.retry,
            quorum=True,
            reap_interval=2.0,
        )
        return node, build_actors(node, plan)

    async def run(self) -> None:
        """Serve until cancelled (then drain and stop)."""
        async with self:
            await anyio.sleep_forever()

    async def __aenter__(self) -> Worker:
        if sniffio.current_async_library() == "trio":
            await self._start_in_trio()
        else:
            await self._start_in_thread(asyncio.get_running_loop())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._stop is not None:
            self._stop()
        if self._task_group is not None:
            group, self._task_group = self._task_group, None
            await group.__aexit__(None, None, None)
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await anyio.to_thread.run_sync(thread.join)
            if self._failure is not None:
                raise self._failure

    async def _start_in_trio(self) -> None:
        node, actors = self._build(None)
        self.node = node
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        await self._task_group.start(
            lambda task_status: node.run(actors, handle_signals=False, task_status=task_status)
        )
        self._stop = node.request_stop

    async def _start_in_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """The node on trio in a thread; asyncio activities on ``loop`` (the caller's)."""
        node, actors = self._build(loop)
        self.node = node
        ready = threading.Event()
        tokens: list[trio.lowlevel.TrioToken] = []

        async def main() -> None:
            tokens.append(trio.lowlevel.current_trio_token())
            async with trio.open_nursery() as nursery:
                await nursery.start(functools.partial(node.run, actors, handle_signals=False))
                ready.set()

        def serve() -> None:
            try:
                trio.run(main)
            except BaseException as error:  # told to the caller at __aenter__ or __aexit__
                lone = lone_error(error) if isinstance(error, BaseExceptionGroup) else None
                self._failure = lone or error
            finally:
                ready.set()

        self._thread = threading.Thread(target=serve, name=f"mesh-worker:{self.task_queue}")
        self._thread.start()
        await anyio.to_thread.run_sync(ready.wait)
        if self._failure is not None:
            failure, self._failure = self._failure, None
            self._thread = None
            raise failure

        def stop() -> None:
            if tokens:  # RunFinishedError: it stopped on its own (it failed)
                with contextlib.suppress(trio.RunFinishedError):
                    tokens[0].run_sync_soon(node.request_stop)

        self._stop = stop
