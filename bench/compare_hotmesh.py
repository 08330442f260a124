"""Side by side on one Postgres: ``mesh bench workflows`` and the HotMesh TypeScript SDK
(npm ``@hotmeshio/hotmesh`` 0.3.32, driven by ``bench/hotmesh/bench.mjs``) on the same workload:
a trigger followed by S sequential worker activities (an async echo), N workflows, F in flight.

    python bench/compare_hotmesh.py --workflows 2000 --steps 1 3 --in-flight 50

Needs node and npm; installs HotMesh from the npm registry (``npm ci`` in bench/hotmesh) on first
use. The database is the one ``mesh db url`` names: MESH_DATABASE_URL, or the embedded server
under .mesh/pg of the current directory. Prints one JSON object: both results for each step
count and the ratio of workflows per second (mesh / HotMesh) and of p50 latency (HotMesh / mesh).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

HERE = Path(__file__).resolve().parent
HOTMESH = HERE / "hotmesh"
MESH = str(Path(sys.executable).parent / "mesh")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--in-flight", type=int, default=50)
    args = parser.parse_args()
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            sys.exit(f"compare_hotmesh: {tool} is not installed; install Node.js 18 or later")
    if not (HOTMESH / "node_modules" / "@hotmeshio" / "hotmesh").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HOTMESH, check=True)

    dsn = subprocess.run([MESH, "db", "url"], capture_output=True, text=True, check=True)
    url = dsn.stdout.strip()
    runs: list[dict[str, Any]] = []
    for steps in args.steps:
        common = ["--workflows", str(args.workflows), "--steps", str(steps)]
        common += ["--in-flight", str(args.in_flight)]
        mesh = _json([MESH, "bench", "workflows", *common, "--json"], env=None)
        hotmesh = _json(["node", str(HOTMESH / "bench.mjs"), *common], env=_pg_options(url))
        runs.append(
            {
                "steps": steps,
                "mesh": mesh,
                "hotmesh": hotmesh,
                "throughput_ratio": round(mesh["workflows_per_s"] / hotmesh["workflows_per_s"], 1),
                "p50_latency_ratio": round(
                    hotmesh["latency_ms"]["p50"] / mesh["latency_ms"]["p50"], 1
                ),
            }
        )
    print(json.dumps({"workflows": args.workflows, "in_flight": args.in_flight, "runs": runs}))
    return 0


def _pg_options(url: str) -> dict[str, str]:
    """The database as node-postgres client options, in MESH_BENCH_PG."""
    parts = conninfo_to_dict(url)
    names = {"host": "host", "port": "port", "user": "user", "password": "password"}
    options: dict[str, Any] = {names[k]: v for k, v in parts.items() if k in names}
    options["database"] = parts.get("dbname", "postgres")
    if "port" in options:
        options["port"] = int(options["port"])
    return {**os.environ, "MESH_BENCH_PG": json.dumps(options)}


def _json(command: list[str], env: dict[str, str] | None) -> dict[str, Any]:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    results = [line for line in done.stdout.splitlines() if '"workflows_per_s"' in line]
    if done.returncode != 0 or not results:
        output = (done.stderr + done.stdout)[-2000:]
        sys.exit(f"compare_hotmesh: {' '.join(command[:3])} failed:\n{output}")
    result: dict[str, Any] = json.loads(results[-1])
    return result


if __name__ == "__main__":
    raise SystemExit(main())
