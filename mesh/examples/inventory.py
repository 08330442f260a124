"""The order example's activities: check inventory, then reserve or notify a backorder.

``check_inventory`` is async (it runs on the node's asyncio loop); the others are plain
functions (run in worker threads). ``reserve_item`` fails the first time it sees an order
whose id ends in 7, to show a retry with backoff.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

_STOCK = {"sku-100": 12, "sku-200": 3, "sku-300": 0, "sku-400": 40}
_seen_lock = threading.Lock()
_seen_reservations: set[str] = set()


async def check_inventory(data: dict[str, Any]) -> dict[str, Any]:
    """Report how many of ``data['sku']`` are available against ``data['qty']`` requested."""
    await asyncio.sleep(0)  # stands in for an async inventory lookup
    sku = str(data.get("sku", ""))
    return {
        "orderId": data.get("orderId"),
        "sku": sku,
        "availableQty": _STOCK.get(sku, 0),
        "requestedQty": int(data.get("qty", 1)),
    }


def reserve_item(data: dict[str, Any]) -> dict[str, Any]:
    """Reserve stock for an order. Fails once for order ids ending in 7 (a flaky warehouse)."""
    order_id = str(data.get("orderId", ""))
    with _seen_lock:
        first_time = order_id not in _seen_reservations
        _seen_reservations.add(order_id)
    if first_time and order_id.endswith("7"):
        raise TimeoutError(f"warehouse did not answer for order {order_id}")
    return {"orderId": order_id, "reserved": int(data.get("requestedQty", 1)), "status": "reserved"}


def notify_backorder(data: dict[str, Any]) -> dict[str, Any]:
    """Tell the customer the order waits for stock."""
    return {"orderId": data.get("orderId"), "status": "backordered", "notified": True}
