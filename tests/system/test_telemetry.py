"""OpenTelemetry spans across real processes: a client (this process, the SDK's in-memory
exporter), an engine node and a worker node (started with `mesh run`, exporting to files):
one job's spans form one trace, a child job's span links to its parent. Off, nothing of
OpenTelemetry is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import NodeProcess, node_env, wait_until_sync, write_config

APP = "traced"
MANIFEST = """
app:
  id: traced
  version: '1'
  graphs:
    - subscribes: order
      activities:
        placed: {type: trigger}
        check: {type: worker, topic: traced.check}
        ship: {type: await, topic: shipping}
      transitions:
        placed: [{to: check}]
        check: [{to: ship}]
    - subscribes: shipping
      activities:
        start: {type: trigger}
        label: {type: worker, topic: traced.label}
      transitions:
        start: [{to: label}]
"""


@pytest.fixture
def exporter() -> Iterator[Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from mesh import telemetry

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    telemetry.enable(provider)
    try:
        yield memory
    finally:
        telemetry.disable()


def spans_in(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_one_trace_per_job_across_client_engine_and_worker(
    tmp_path: Path, dsn: str, exporter: Any
) -> None:
    from mesh import MeshClient

    config = write_config(
        tmp_path / "mesh.yaml",
        f"app: {APP}\n"
        "workers:\n"
        "  - {topic: traced.check, function: 'tests.activities:echo'}\n"
        "  - {topic: traced.label, function: 'tests.activities:echo'}\n",
    )
    engine_spans, worker_spans = tmp_path / "engine.jsonl", tmp_path / "worker.jsonl"
    nodes = [
        NodeProcess(
            config,
            dsn,
            "--role",
            role,
            log=tmp_path / f"{role}.log",
            env={"MESH_TELEMETRY": "true", "MESH_TELEMETRY_EXPORTER": f"file:{spans}"},
        )
        for role, spans in (("engine", engine_spans), ("worker", worker_spans))
    ]
    try:
        for node in nodes:
            node.wait_for_log("event=node_ready")
        with MeshClient(dsn, app=APP) as client:
            client.deploy(MANIFEST)
            client.activate("1")
            job_id = client.pub("order", {"sku": "sku-1"})
            assert client.wait(job_id, timeout=30).status == "done"
        # Each process exports what it commits: responses are applied where the worker
        # acks them, so leg and job spans come from both nodes (and the client's start).
        wait_until_sync(
            lambda: (
                sum(
                    s["name"].startswith("mesh.job")
                    for s in spans_in(engine_spans) + spans_in(worker_spans)
                )
                == 2
            ),
            what="the spans of both jobs",
        )
    finally:
        for node in nodes:
            node.ensure_stopped()
    memory = [json.loads(s.to_json(indent=None)) for s in exporter.get_finished_spans()]
    engine, worker = spans_in(engine_spans), spans_in(worker_spans)
    assert engine and worker, "both node processes exported spans"
    everything = memory + engine + worker
    (pub,) = [s for s in memory if s["name"] == "mesh.pub order"]
    assert pub["attributes"]["mesh.job_id"] == job_id
    assert {s["context"]["trace_id"] for s in everything} == {pub["context"]["trace_id"]}
    names = sorted(s["name"] for s in everything)
    for leg_of in ("placed", "check", "ship", "start", "label"):
        assert names.count(f"mesh.activity {leg_of}") == 2, (leg_of, names)  # legs 1 and 2
    assert [n for n in names if n.startswith("mesh.worker")] == [
        "mesh.worker traced.check",
        "mesh.worker traced.label",
    ]
    workers = [s for s in everything if s["name"].startswith("mesh.worker")]
    assert all(s["attributes"]["mesh.outcome"] == "success" for s in workers)
    (parent,) = [s for s in everything if s["name"] == "mesh.job order"]
    (child,) = [s for s in everything if s["name"] == "mesh.job shipping"]
    assert parent["attributes"]["mesh.job_id"] == job_id
    assert parent["attributes"]["mesh.outcome"] == "done"
    assert child["links"][0]["attributes"]["mesh.relation"] == "parent job"


OFF = """
import sys, trio
from mesh.api import Mesh

async def double(data):
    return {"n": data["n"] * 2}

async def main():
    async with Mesh.open(sys.argv[1], app="quiet", workers={"off.double": double}) as mesh:
        await mesh.deploy('''
app:
  id: quiet
  version: '1'
  graphs:
    - subscribes: go
      activities:
        s: {type: trigger}
        d: {type: worker, topic: off.double, input: {maps: {n: '{s.output.data.n}'}}}
      transitions:
        s: [{to: d}]
''')
        await mesh.activate("1")
        await mesh.pubsub("go", {"n": 2}, timeout=20)

trio.run(main)
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")
print("opentelemetry modules:", loaded)
"""


def test_off__nothing_of_opentelemetry_is_imported(tmp_path: Path, dsn: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", OFF, dsn],
        env=node_env(dsn),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "opentelemetry modules: []" in result.stdout


def test_asked_without_the_extra_says_what_to_install(tmp_path: Path, dsn: str) -> None:
    config = write_config(tmp_path / "mesh.yaml", "app: x\ntelemetry: {enabled: true}\n")
    blocked = tmp_path / "blocked"
    (blocked / "opentelemetry").mkdir(parents=True)
    (blocked / "opentelemetry" / "__init__.py").write_text("raise ImportError('not here')\n")
    result = subprocess.run(
        [sys.executable, "-m", "mesh.cli", "--config", str(config), "run"],
        env=node_env(dsn, PYTHONPATH=f"{blocked}:{node_env(dsn)['PYTHONPATH']}"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "pip install 'mesh[otel]'" in result.stderr


async def test_a_workflow_written_as_code_is_one_trace(dsn: str, exporter: Any) -> None:
    from mesh.api import Mesh
    from tests.code_workflows import add_one, sequence

    async with Mesh.open(
        dsn, app=APP, workflows={"q": [sequence]}, activities={"q": [add_one]}
    ) as mesh:
        handle = await mesh.start_workflow(sequence, 1, task_queue="q", workflow_id="coded")
        assert await handle.result(timeout=30) == 4
    spans = exporter.get_finished_spans()
    names = sorted(s.name for s in spans)
    assert names.count("mesh.worker q-activity") == 3 and "mesh.job sequence" in names
    assert len({s.context.trace_id for s in spans}) == 1
    (job,) = [s for s in spans if s.name == "mesh.job sequence"]
    assert dict(job.attributes)["mesh.job_id"] == "coded"
