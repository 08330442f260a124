"""Activity functions the tests name by dotted path (``tests.activities:...``). An
``async def`` runs on the node's asyncio loop (the default); those that coordinate with the
trio test that drives them say ``loop="trio"``."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import trio

from mesh import NonRetryableError, Pending, activity

calls: list[Any] = []
threads: list[str] = []
gate = threading.Event()


async def echo(data: Any) -> Any:
    return {"echo": data}


def sync_echo(data: Any) -> Any:
    threads.append(threading.current_thread().name)
    return {"echo": data}


async def work_a_little(data: Any) -> Any:
    await asyncio.sleep(0.01)  # simulated work, not synchronisation
    return {"n": data["n"]}


def block_one_second(data: Any) -> Any:
    time.sleep(1.0)  # simulated slow work, not synchronisation
    return {"n": data["n"]}


def always_fails(data: Any) -> Any:
    raise ValueError(f"cannot handle {data!r}")


def refuses(data: Any) -> Any:
    raise NonRetryableError("this order can never be shipped", code=422)


def returns_unserialisable(data: Any) -> Any:
    return {"when": object()}


async def stays_open(data: Any) -> Any:
    return Pending({"progress": 50})


def waits_for_gate(data: Any) -> Any:
    calls.append(data)
    gate.wait(30)
    return {"released": True}


def kills_its_process(data: Any) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)
    return None


not_a_function = 42


first_blocks = trio.Event()


@activity.defn(loop="trio")
async def first_one_waits(data: Any) -> Any:
    """Message 0 waits until the test lets it go; the rest answer at once."""
    if data["n"] == 0:
        await first_blocks.wait()
    return {"n": data["n"]}


running = 0
most_running = 0


@activity.defn(loop="trio")
async def counts_concurrency(data: Any) -> Any:
    """Records how many calls run at once (each waits a moment, so they overlap)."""
    global running, most_running
    running += 1
    most_running = max(most_running, running)
    try:
        await trio.sleep(0.001)  # simulated I/O, so that calls overlap
    finally:
        running -= 1
    return data


_running_lock = threading.Lock()


def counts_concurrency_in_threads(data: Any) -> Any:
    """As counts_concurrency, for a plain function run in worker threads."""
    global running, most_running
    with _running_lock:
        running += 1
        most_running = max(most_running, running)
    time.sleep(0.001)  # simulated work, so that calls overlap
    with _running_lock:
        running -= 1
    return data


async def add_one(data: Any) -> Any:
    await asyncio.sleep(0.02)  # simulated work, not synchronisation
    return {"value": data.get("value", 0) + 1}


def kills_its_process_if_poison(data: Any) -> Any:
    """Ends its process (as a segfault or an OOM kill would) for the poison input only."""
    if data.get("poison"):
        os._exit(3)
    time.sleep(0.02)  # simulated work, so that a node holds several when one dies
    return {"n": data["n"]}


def blocks_a_minute(data: Any) -> Any:
    time.sleep(60)  # simulated work longer than any stop window
    return {"n": data.get("n")}


async def add_one_slowly(data: Any) -> Any:
    await asyncio.sleep(0.5)  # simulated slow work: a node holds many when it is killed
    return {"value": data.get("value", 0) + 1}
