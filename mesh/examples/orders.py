"""The order example written as code: the same steps as ``config/orders.yaml``.

``check_inventory`` and ``reserve_item`` are async (they run on the node's asyncio loop);
``notify_backorder`` is a plain function (it runs in a worker thread). ``reserve_item``
fails the first time it sees an order whose id ends in 7, to show a retry with backoff.
"""

from __future__ import annotations

import asyncio
import threading

from mesh import RetryPolicy, workflow

STOCK = {"sku-100": 12, "sku-200": 3, "sku-300": 0, "sku-400": 40}
_seen_lock = threading.Lock()
_seen: set[str] = set()


async def check_inventory(sku: str) -> int:
    """How many of ``sku`` are in stock."""
    await asyncio.sleep(0)  # stands in for an async inventory lookup
    return STOCK.get(sku, 0)


async def reserve_item(order_id: str, sku: str, quantity: int) -> str:
    """Reserve stock for an order. Fails once for order ids ending in 7 (a flaky warehouse)."""
    with _seen_lock:
        first_time = order_id not in _seen
        _seen.add(order_id)
    if first_time and order_id.endswith("7"):
        raise TimeoutError(f"warehouse did not answer for order {order_id}")
    return "reserved"


def notify_backorder(order_id: str, sku: str) -> str:
    """Tell the customer the order waits for stock (a plain function: a worker thread)."""
    return "backordered"


async def order_workflow(order_id: str, sku: str, qty: int) -> str:
    acts = workflow.proxy_activities(
        check_inventory,
        reserve_item,
        notify_backorder,
        retry=RetryPolicy(maximum_attempts=5, backoff_coefficient=1, maximum_interval=1),
    )
    available: int = await acts.check_inventory(sku)
    outcome: str
    if available >= qty:
        outcome = await acts.reserve_item(order_id, sku, qty)
    else:
        outcome = await acts.notify_backorder(order_id, sku)
    return outcome
