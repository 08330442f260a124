"""Workflows and activities whose payloads are typed (dataclasses, msgspec Structs,
Pydantic models, datetime, date, UUID, Decimal, Enum, bytes): used in-process
(tests/pg/test_typed_payloads.py) and by ``mesh run`` nodes
(tests/system/test_typed_across_processes.py)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import msgspec
import pydantic

from mesh import ActivityFailed, activity, workflow


class Size(enum.Enum):
    SMALL = "s"
    LARGE = "l"


@dataclass
class Item:
    sku: str
    size: Size
    price: Decimal


class Address(msgspec.Struct):
    street: str
    since: date


class Customer(pydantic.BaseModel):
    name: str
    joined: datetime


@dataclass
class Order:
    id: uuid.UUID
    items: list[Item]
    ship_to: Address
    customer: Customer
    placed: datetime
    note: bytes


@dataclass
class Receipt:
    order: uuid.UUID
    total: Decimal
    kinds: list[str]
    approved_by: str


@dataclass
class Approval:
    by: str
    at: datetime


@activity.defn
async def price(order: Order, approval: Approval) -> Receipt:
    kinds = [
        type(order).__name__,
        type(order.items[0]).__name__,
        type(order.items[0].size).__name__,
        type(order.items[0].price).__name__,
        type(order.ship_to).__name__,
        type(order.ship_to.since).__name__,
        type(order.customer).__name__,
        type(order.customer.joined).__name__,
        type(order.placed).__name__,
        type(order.note).__name__,
        type(order.id).__name__,
        type(approval.at).__name__,
    ]
    total = sum((i.price for i in order.items), Decimal(0))
    return Receipt(order.id, total, kinds, approval.by)


async def ship(order: Order) -> Receipt:
    approval = await workflow.condition("approve", type=Approval)
    assert isinstance(approval, Approval)
    acts = workflow.proxy_activities(price)
    receipt = await acts[price](order, approval)
    assert isinstance(receipt, Receipt) and isinstance(receipt.total, Decimal)
    return receipt


async def parent(order: Order) -> list[str]:
    child_id = f"{order.id}-child"
    started = await workflow.start_child(ship, order, workflow_id=child_id)
    await workflow.signal(started, "approve", Approval("parent", datetime(2026, 1, 2, tzinfo=UTC)))
    receipt = await workflow.execute_child(wait_for, started)
    return [type(receipt).__name__, str(receipt.total), receipt.approved_by]


async def wait_for(child_id: str) -> Receipt:
    """A child that returns what a sibling child returned (a typed child result)."""
    acts = workflow.proxy_activities(echo_receipt)
    return await acts[echo_receipt](child_id)


@activity.defn
async def echo_receipt(child_id: str) -> Receipt:
    return Receipt(uuid.UUID(int=1), Decimal("4.50"), [], "parent")


@activity.defn
async def too_big(size: int) -> str:
    return "x" * size


async def returns_big(size: int) -> str:
    acts = workflow.proxy_activities(too_big)
    try:
        return await acts[too_big](size)
    except ActivityFailed as failed:
        return f"{failed.type_name}: {failed.non_retryable}"


def an_order(n: int) -> Order:
    return Order(
        id=uuid.UUID(int=n),
        items=[Item("sku-1", Size.LARGE, Decimal("1.10")), Item("sku-2", Size.SMALL, Decimal("2"))],
        ship_to=Address("1 Main St", date(2020, 5, 17)),
        customer=Customer(name="Ada", joined=datetime(2019, 1, 1, tzinfo=UTC)),
        placed=datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
        note=b"\x00\xff fragile",
    )


KINDS = [
    "Order",
    "Item",
    "Size",
    "Decimal",
    "Address",
    "date",
    "Customer",
    "datetime",
    "datetime",
    "bytes",
    "UUID",
    "datetime",
]
