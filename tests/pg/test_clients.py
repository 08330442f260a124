"""The trio Mesh, the asyncio-and-trio Client and the synchronous MeshClient are one
implementation: the same calls give the same answers and raise the same errors (real
Postgres, a real in-process node; the Client under trio here, under asyncio in
test_client.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
import trio

from mesh import Client, Mesh, MeshClient
from mesh.errors import JobFailed, MeshError, UnknownHook, UnknownJob, UnknownTopic
from mesh.runtime.consumer import ConsumerSettings
from tests.helpers import wait_until

FAST = ConsumerSettings(poll_interval=0.2)

MANIFEST = """
app:
  id: twins
  version: '1'
  graphs:
    - subscribes: flow
      activities:
        start: {type: trigger, job: {maps: {value: '{$self.output.data.value}'}}}
        twice: {type: worker, topic: twins.double, input: {maps: {value: '{start.output.data.value}'}}}
        gate: {type: hook}
      transitions:
        start: [{to: twice}]
        twice: [{to: gate}]
      hooks:
        go: [{to: gate, conditions: {match: [{expected: '{$job.metadata.jid}', actual: '{$self.hook.data.id}'}]}}]
"""


async def double(data: dict[str, Any]) -> dict[str, Any]:
    return {"value": data["value"] * 2}


async def in_thread(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await trio.to_thread.run_sync(functools.partial(call, *args, **kwargs))


async def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """What a call returned, or the type and text of what it raised."""
    try:
        result = call(*args, **kwargs)
        if hasattr(result, "__await__"):
            result = await result
        return ("returned", result)
    except MeshError as error:
        return (type(error).__name__, str(error))


async def test_mesh_and_mesh_client__same_calls_same_answers(dsn: str) -> None:
    async with Mesh.open(
        dsn,
        app="twins",
        workers={"twins.double": double},
        worker_settings=FAST,
        engine_settings=FAST,
    ) as mesh:
        client = MeshClient(dsn, app="twins")
        aclient = await Client.connect(dsn, app="twins")
        try:
            assert await mesh.deploy(MANIFEST) is True
            assert await in_thread(client.deploy, MANIFEST) is False  # the same version
            await in_thread(client.activate, "1")
            ours = await mesh.pub("flow", {"value": 2}, job_id="from-mesh")
            theirs = await in_thread(client.pub, "flow", {"value": 2}, job_id="from-client")
            assert (ours, theirs) == ("from-mesh", "from-client")

            async def at_gate(job_id: str) -> bool:
                found = await mesh.get_query_state(job_id, ["twice/output"])
                return found.get("twice/output") is not None

            for job_id in (ours, theirs):
                await wait_until(lambda j=job_id: at_gate(j), what=f"{job_id} at its hook")
            # Every read of one job answers alike through both.
            for job_id in (ours, theirs, "nobody"):
                for name, args in [
                    ("get_status", ()),
                    ("get_state", ()),
                    ("get_query_state", (["value", "twice/output"],)),
                    ("export", ()),
                    ("get_raw", ()),
                ]:
                    via_mesh = await outcome(getattr(mesh, name), job_id, *args)
                    via_client = await outcome(in_thread, getattr(client, name), job_id, *args)
                    via_aclient = await outcome(getattr(aclient, name), job_id, *args)
                    assert via_mesh == via_client == via_aclient, (name, job_id)
            state = (await mesh.get_state(ours))["metadata"]
            assert (state["jid"], state["status"], state["app"]) == (ours, "running", "twins")
            assert (await mesh.get_query_state(ours, ["value"])) == {"value": 2}
            # Writes answer alike, and refusals are the same errors.
            assert await mesh.signal("go", {"id": ours}) == 1
            assert await in_thread(client.signal, "go", {"id": theirs}) == 1
            done_mesh = await mesh.wait(ours)
            done_client = await in_thread(client.wait, theirs)
            assert done_mesh.data == done_client.data == {"value": 2}
            for name, args, error in [
                ("signal", ("nowhere", {}), UnknownHook),
                ("pub", ("no.such.topic", {}), UnknownTopic),
                ("interrupt", ("nobody",), UnknownJob),
            ]:
                via_mesh = await outcome(getattr(mesh, name), *args)
                via_client = await outcome(in_thread, getattr(client, name), *args)
                via_aclient = await outcome(getattr(aclient, name), *args)
                assert via_mesh == via_client == via_aclient, name
                assert via_mesh[0] == error.__name__, name
            # Interrupt with a code: the same through both.
            sides: dict[str, Callable[[str], Callable[..., Any]]] = {
                "stop-mesh": lambda name: getattr(mesh, name),
                "stop-client": lambda name: functools.partial(in_thread, getattr(client, name)),
                "stop-aclient": lambda name: getattr(aclient, name),
            }
            for key, call in sides.items():
                await call("pub")("flow", {"value": 1}, job_id=key)
                assert await call("interrupt")(key, code=451, reason="enough") is True
                with pytest.raises(JobFailed) as failed:
                    await call("wait")(key)
                assert failed.value.job.error == {
                    "message": "enough",
                    "type": "Interrupted",
                    "code": 451,
                }
            assert await mesh.scrub("stop-mesh") is True
            assert await in_thread(client.scrub, "stop-client") is True
            assert await aclient.scrub("stop-aclient") is True
            for key in sides:  # scrubbed: gone for both
                gone = await outcome(mesh.get_status, key)
                assert gone == await outcome(in_thread, client.get_status, key)
                assert gone[0] == "UnknownJob"
        finally:
            client.close()
            await aclient.close()
