"""The HotMesh comparison kit (bench/): pinned to the version the figures name, the node
script parses, and the database reaches node-postgres as the mesh side names it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

BENCH = ROOT / "bench"


def load_compare() -> object:
    spec = importlib.util.spec_from_file_location("compare_hotmesh", BENCH / "compare_hotmesh.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hotmesh_is_pinned_in_the_manifest_and_the_lock() -> None:
    package = json.loads((BENCH / "hotmesh" / "package.json").read_text())
    lock = json.loads((BENCH / "hotmesh" / "package-lock.json").read_text())
    assert package["dependencies"]["@hotmeshio/hotmesh"] == "0.3.32"
    assert lock["packages"]["node_modules/@hotmeshio/hotmesh"]["version"] == "0.3.32"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_script_parses() -> None:
    checked = subprocess.run(
        ["node", "--check", str(BENCH / "hotmesh" / "bench.mjs")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr


def test_database_url_becomes_node_postgres_options() -> None:
    compare = load_compare()
    socket = compare._pg_options("host=/tmp/x/.mesh/pg user=postgres dbname=postgres")  # type: ignore[attr-defined]
    assert json.loads(socket["MESH_BENCH_PG"]) == {
        "host": "/tmp/x/.mesh/pg",
        "user": "postgres",
        "database": "postgres",
    }
    tcp = compare._pg_options("postgresql://u:p@db:6543/shop")  # type: ignore[attr-defined]
    assert json.loads(tcp["MESH_BENCH_PG"]) == {
        "host": "db",
        "port": 6543,
        "user": "u",
        "password": "p",
        "database": "shop",
    }
