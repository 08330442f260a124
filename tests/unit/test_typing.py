"""Workflows written as code are typed: mypy sees an activity's arguments and return type
through ``acts[function]``, and a handle's result type from the workflow function."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SNIPPET = """
from mesh import Mesh, MeshClient, workflow

async def check_inventory(item_id: str) -> int:
    return 1

def notify_backorder(item_id: str) -> None: ...

async def order(item_id: str) -> str:
    acts = workflow.proxy_activities(check_inventory, notify_backorder)
    available = await acts[check_inventory](item_id)
    reveal_type(available)
    await acts[notify_backorder](item_id)
    await acts[check_inventory](3)
    untyped = await acts.check_inventory(item_id)
    reveal_type(untyped)
    return "x"

async def client(mesh: Mesh, sync: MeshClient) -> None:
    handle = await mesh.start_workflow(order, "i", task_queue="q")
    reveal_type(await handle.result())
    reveal_type(sync.start_workflow(order, "i").result())
    by_name = await mesh.start_workflow("order", "i")
    reveal_type(await by_name.result())
"""


def test_mypy_sees_activity_arguments_and_results_and_handle_results(tmp_path: Path) -> None:
    source = tmp_path / "typed_workflow.py"
    source.write_text(SNIPPET)
    out, _, _ = api.run([str(source), "--cache-dir", str(tmp_path / "cache")])
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if f"{source.name}:" in line]
    assert lines == [
        'note: Revealed type is "int"',
        'error: Argument 1 has incompatible type "int"; expected "str"  [arg-type]',
        'note: Revealed type is "Any"',
        'note: Revealed type is "str"',
        'note: Revealed type is "str"',
        'note: Revealed type is "Any"',
    ], out


STARTS = """
from mesh import Client, Mesh, MeshClient, workflow

async def ship(order_id: str, qty: int) -> float:
    return 1.0

async def parent() -> None:
    cost = await workflow.execute_child(ship, "o-1", 2)
    reveal_type(cost)
    await workflow.execute_child(ship, "o-1", "two")
    child_id = await workflow.start_child(ship, "o-1", 2, workflow_id="c")
    reveal_type(child_id)

async def clients(mesh: Mesh, client: Client, sync: MeshClient) -> None:
    handle = await client.start_workflow(ship, "o-1", 2, task_queue="q", workflow_id="w")
    reveal_type(await handle.result())
    reveal_type(await client.execute_workflow(ship, "o-1", 2))
    reveal_type(await mesh.execute_workflow(ship, "o-1", 2))
    reveal_type(sync.execute_workflow(ship, "o-1", 2))
    await client.start_workflow(ship, "o-1", "2")
    await mesh.start_workflow(ship, "o-1")
    sync.start_workflow(ship, 1, 2)
    reveal_type(await client.execute_workflow("ship", "anything", object()))
    reveal_type(await client.get_handle("w", float).result())
"""


def test_mypy_checks_the_arguments_of_starts_and_children(tmp_path: Path) -> None:
    """A workflow started by function has its arguments checked and its result typed, from
    every client and as a child; started by name, both are Any."""
    source = tmp_path / "typed_starts.py"
    source.write_text(STARTS)
    out, _, _ = api.run([str(source), "--cache-dir", str(tmp_path / "cache")])
    found = [
        (int(line.split(":")[1]), line.split(": ", 1)[1].split("  [")[0])
        for line in out.splitlines()
        if line.startswith(str(source)) and (": error:" in line or ": note: Revealed" in line)
    ]
    revealed = [(n, text) for n, text in found if text.startswith("note")]
    errors = sorted({n for n, text in found if text.startswith("error")})
    assert [text for _, text in revealed] == [
        'note: Revealed type is "float"',
        'note: Revealed type is "str"',
        'note: Revealed type is "float"',
        'note: Revealed type is "float"',
        'note: Revealed type is "float"',
        'note: Revealed type is "float"',
        'note: Revealed type is "Any"',
        'note: Revealed type is "float"',
    ], out
    lines = STARTS.splitlines()
    assert [lines[n - 1].strip() for n in errors] == [
        'await workflow.execute_child(ship, "o-1", "two")',
        'await client.start_workflow(ship, "o-1", "2")',
        'await mesh.start_workflow(ship, "o-1")',
        "sync.start_workflow(ship, 1, 2)",
    ], out


def test_the_three_faces_offer_the_same_calls() -> None:
    """Mesh (trio, a node), Client (asyncio and trio) and MeshClient (synchronous) answer
    the same calls; their handles too. Mesh adds what needs a node of its own."""
    import inspect

    from mesh import Client, Mesh, MeshClient
    from mesh.handle import WorkflowHandle
    from mesh.pg.client import ClientWorkflowHandle

    def calls(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    lifecycle = {"app", "close", "connect", "listening", "operations", "open"}
    assert calls(MeshClient) - lifecycle <= calls(Client)
    assert calls(Client) - lifecycle <= calls(Mesh)
    assert calls(Client) - lifecycle <= calls(MeshClient) | {"dsn", "pool_size", "recheck"}
    assert {n for n, _ in inspect.getmembers(WorkflowHandle, inspect.isfunction)} == {
        n for n, _ in inspect.getmembers(ClientWorkflowHandle, inspect.isfunction)
    }
