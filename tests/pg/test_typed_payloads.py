"""Typed payloads: arguments and results that are dataclasses, msgspec Structs, Pydantic
models, datetime, date, UUID, Decimal, Enum and bytes arrive as the types the receiving
function annotates, in workflows, activities, signals, children and results, through the
trio Mesh, the asyncio-and-trio Client and the synchronous MeshClient. A value that cannot
be sent is refused before anything is written, naming the argument; a payload over the
limit is refused with PayloadTooLarge, and nothing hangs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import trio

from mesh import (
    Client,
    ConsumerSettings,
    InvalidPayload,
    Mesh,
    MeshClient,
    PayloadTooLarge,
)
from mesh.model import payloads
from tests.helpers import scalar
from tests.typed_flows import (
    KINDS,
    Approval,
    Receipt,
    an_order,
    echo_receipt,
    parent,
    price,
    returns_big,
    ship,
    too_big,
    wait_for,
)

FAST = ConsumerSettings(poll_interval=0.2)


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
            typed = await aclient.get_handle(ahandle.workflow_id, Receipt).result()
            assert isinstance(typed, Receipt) and typed.order == uuid.UUID(int=2)
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
