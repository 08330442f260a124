"""Typed payloads: arguments and results that are dataclasses, msgspec Structs, Pydantic
models, datetime, date, UUID, Decimal, Enum and bytes arrive as the types the receiving
function annotates, in workflows, activities, signals, children and results, through the
trio Mesh, the asyncio-and-trio Client and the synchronous MeshClient. A value that cannot
be sent is refused before anything is written, naming the argument; a payload over the
limit is refused with PayloadTooLarge, and nothing hangs."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pydantic
import pytest
import trio

from mesh import (
    ActivityFailed,
    Client,
    ConsumerSettings,
    InvalidPayload,
    Mesh,
    MeshClient,
    PayloadTooLarge,
    activity,
    workflow,
)
from mesh.model import payloads
from tests.helpers import scalar

FAST = ConsumerSettings(poll_interval=0.2)


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


async def test_typed_values_arrive_as_annotated_through_every_client(dsn: str) -> None:
    async with Mesh.open(
        dsn,
        app="typed",
        workflows={"q": [ship, parent, wait_for]},
        activities={"q": [price, echo_receipt]},
        worker_settings=FAST,
        engine_settings=FAST,
    ) as mesh:
        approval = Approval("ops", datetime(2026, 12, 7, 13, 0, tzinfo=UTC))
        handle = await mesh.start_workflow(ship, an_order(1), task_queue="q")
        assert await handle.signal("approve", approval) is True
        receipt = await handle.result()
        assert receipt == Receipt(uuid.UUID(int=1), Decimal("3.10"), KINDS, "ops")

        aclient = await Client.connect(dsn, app="typed")
        sync = MeshClient(dsn, app="typed")
        try:
            ahandle = await aclient.start_workflow(ship, an_order(2), task_queue="q")
            await ahandle.signal("approve", approval)
            assert (await ahandle.result()).order == uuid.UUID(int=2)
            shandle = await trio.to_thread.run_sync(
                lambda: sync.start_workflow(ship, an_order(3), task_queue="q")
            )
            await trio.to_thread.run_sync(lambda: shandle.signal("approve", approval))
            sresult = await trio.to_thread.run_sync(shandle.result)
            assert isinstance(sresult, Receipt) and sresult.total == Decimal("3.10")
            # Started by name, the result is the JSON as stored.
            raw = await aclient.get_handle(ahandle.workflow_id).result()
            assert raw["total"] == "3.10" and raw["order"] == str(uuid.UUID(int=2))
        finally:
            sync.close()
            await aclient.close()
        # Children and signals sent from workflow code.
        assert await mesh.execute_workflow(parent, an_order(4), task_queue="q") == [
            "Receipt",
            "4.50",
            "parent",
        ]


async def test_what_cannot_be_sent_is_refused_before_anything_is_written(dsn: str) -> None:
    async with Mesh.open(
        dsn, app="typed", workflows={"q": [ship]}, worker_settings=FAST, engine_settings=FAST
    ) as mesh:
        with pytest.raises(InvalidPayload) as refused:
            await mesh.start_workflow(ship, object(), task_queue="q")  # type: ignore[arg-type]
        assert "argument 1 (order) of workflow 'ship'" in str(refused.value)
        with pytest.raises(InvalidPayload, match="the data of signal 'approve'"):
            await mesh.get_handle("anyone").signal("approve", {1, object()})
        assert scalar(dsn, "SELECT count(*) FROM mesh.jobs") == 0
        assert scalar(dsn, "SELECT count(*) FROM mesh.stream_messages") == 0


async def test_a_payload_over_the_limit_is_refused_and_nothing_hangs(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(payloads, "max_payload_bytes", 100_000)
    async with Mesh.open(
        dsn,
        app="typed",
        workflows={"q": [returns_big]},
        activities={"q": [too_big]},
        worker_settings=FAST,
        engine_settings=FAST,
    ) as mesh:
        with trio.fail_after(60):
            assert await mesh.execute_workflow(returns_big, 10, task_queue="q") == "x" * 10
            outcome = await mesh.execute_workflow(returns_big, 200_000, task_queue="q")
        assert outcome == "PayloadTooLarge: True"
        with pytest.raises(PayloadTooLarge, match="over the 100,000-byte limit"):
            await mesh.start_workflow(returns_big, "y" * 200_000, task_queue="q")  # type: ignore[arg-type]
        written: Any = scalar(dsn, "SELECT count(*) FROM mesh.jobs WHERE topic = 'returns_big'")
        assert written == 2
