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
