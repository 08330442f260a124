"""``mesh bench hotmesh``: this mesh and the HotMesh TypeScript SDK side by side, one Postgres.

Both run the workload of ``mesh bench workflows`` (a trigger followed by S sequential worker
activities, an async echo; ``in_flight`` callers each publishing a job and waiting for it)
against the same database, one after the other, for each step count. With ``--code`` both
run workflows written as code instead: ``mesh bench durable``'s ``chain`` of A activities
against HotMesh's MeshFlow running the same function. The HotMesh side is npm
``@hotmeshio/hotmesh`` 0.3.32 driven by ``benchmarks/kit/bench.mjs`` (``durable.mjs`` for
code workflows); its pinned lock file is
copied to ``.mesh/hotmesh`` of the current directory and installed there with ``npm ci`` from
the npm registry (once; again when the lock changes). Needs Node.js 18 or later.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.graphs import bench_graphs
from mesh.errors import MeshError
from mesh.pg.database import url_parts

KIT = Path(__file__).resolve().parent / "kit"
KIT_FILES = ("package.json", "package-lock.json", "bench.mjs", "durable.mjs")
HOTMESH_VERSION = "0.3.32"


class ComparisonUnavailable(MeshError):
    """node or npm is missing, or installing or running the HotMesh side failed."""


def bench_hotmesh(
    dsn: str,
    *,
    workflows: int,
    steps: list[int],
    in_flight: int,
    workdir: Path,
    rounds: int = 1,
) -> dict[str, Any]:
    """Both sides on the same workload and Postgres. mesh's side runs ``rounds`` rounds and
    reports the median (a round takes about a second, so its warm-up weighs on one round);
    HotMesh's runs once (a run takes a minute or more)."""
    kit = install_kit(workdir)
    runs: list[dict[str, Any]] = []
    for count in steps:
        ours = bench_graphs(
            dsn, workflows=workflows, steps=count, in_flight=in_flight, nodes=1, rounds=rounds
        )
        options = {"workflows": workflows, "steps": count, "in-flight": in_flight}
        theirs = run_hotmesh(kit, dsn, "bench.mjs", options)
        runs.append({"steps": count, **_side_by_side(ours, theirs)})
    return {
        "workflows": workflows,
        "in_flight": in_flight,
        "hotmesh_version": HOTMESH_VERSION,
        "runs": runs,
        "ratios": "throughput: mesh / HotMesh workflows per second; p50: HotMesh / mesh",
    }


def bench_hotmesh_code(
    dsn: str,
    *,
    workflows: int,
    hotmesh_workflows: int,
    activities: list[int],
    in_flight: int,
    workdir: Path,
    rounds: int = 1,
) -> dict[str, Any]:
    """Workflows written as code on both sides, same Postgres, one after the other: mesh's
    ``bench durable`` and HotMesh's MeshFlow (``kit/durable.mjs``: the same ``chain`` of A
    activities). HotMesh's side runs ``hotmesh_workflows`` (it is two orders of magnitude
    slower: the default mesh count would take it many minutes)."""
    from benchmarks.workflows import bench_durable

    kit = install_kit(workdir)
    runs: list[dict[str, Any]] = []
    for count in activities:
        ours = bench_durable(
            dsn,
            workflows=workflows,
            activities=count,
            in_flight=in_flight,
            nodes=1,
            rounds=rounds,
        )
        options = {"workflows": hotmesh_workflows, "activities": count, "in-flight": in_flight}
        theirs = run_hotmesh(kit, dsn, "durable.mjs", options)
        runs.append({"activities": count, **_side_by_side(ours, theirs)})
    return {
        "workflows": {"mesh": workflows, "hotmesh": hotmesh_workflows},
        "in_flight": in_flight,
        "hotmesh_version": HOTMESH_VERSION,
        "hotmesh_api": "MeshFlow (Worker.create, Client.workflow.start, handle.result)",
        "runs": runs,
        "ratios": "throughput: mesh / HotMesh workflows per second; p50: HotMesh / mesh",
    }


def _side_by_side(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    return {
        "mesh": ours,
        "hotmesh": theirs,
        "throughput_ratio": round(ours["workflows_per_s"] / theirs["workflows_per_s"], 1),
        "p50_latency_ratio": round(theirs["latency_ms"]["p50"] / ours["latency_ms"]["p50"], 1),
    }


def install_kit(workdir: Path) -> Path:
    """The HotMesh kit under ``workdir``, installed; reinstalled when the lock file changed."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise ComparisonUnavailable(
                f"{tool} is not installed: install Node.js 18 or later to run the HotMesh side"
            )
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    installed_lock = workdir / "package-lock.json"
    lock_changed = (
        not installed_lock.exists()
        or installed_lock.read_bytes() != (KIT / "package-lock.json").read_bytes()
    )
    for name in KIT_FILES:
        shutil.copyfile(KIT / name, workdir / name)
    if lock_changed or not (workdir / "node_modules" / "@hotmeshio" / "hotmesh").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=workdir, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise ComparisonUnavailable(
                f"`npm ci` in {workdir} failed (is the npm registry reachable?):\n"
                f"{done.stderr[-2000:]}"
            )
    return workdir


def run_hotmesh(kit: Path, dsn: str, script: str, options: dict[str, int]) -> dict[str, Any]:
    """Run one of the kit's scripts with ``--name value`` options; its JSON figures."""
    command = ["node", str(kit / script)]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    env = {**os.environ, "MESH_BENCH_PG": json.dumps(node_postgres_options(dsn))}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=kit)
    # HotMesh logs JSON lines to stdout too: the result is the line with the figures.
    results = [line for line in done.stdout.splitlines() if '"workflows_per_s"' in line]
    if done.returncode != 0 or not results:
        raise ComparisonUnavailable(
            f"the HotMesh benchmark failed (exit {done.returncode}):\n"
            f"{(done.stderr + done.stdout)[-2000:]}"
        )
    result: dict[str, Any] = json.loads(results[-1])
    return result


def node_postgres_options(dsn: str) -> dict[str, Any]:
    """A libpq URL or key=value string as node-postgres client options."""
    parts = url_parts(dsn)
    options: dict[str, Any] = {
        key: parts[key] for key in ("host", "user", "password") if key in parts
    }
    if "port" in parts:
        options["port"] = int(parts["port"])
    options["database"] = parts.get("dbname", "postgres")
    return options
