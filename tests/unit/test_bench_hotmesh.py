"""The HotMesh comparison kit (``mesh bench hotmesh``): pinned to the version the figures name,
the node script parses, the database reaches node-postgres as the mesh side names it, and a
machine without Node.js gets a clear error."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks.hotmesh import (
    HOTMESH_VERSION,
    KIT,
    ComparisonUnavailable,
    install_kit,
    node_postgres_options,
)


def test_hotmesh_is_pinned_in_the_manifest_and_the_lock() -> None:
    package = json.loads((KIT / "package.json").read_text())
    lock = json.loads((KIT / "package-lock.json").read_text())
    assert package["dependencies"]["@hotmeshio/hotmesh"] == HOTMESH_VERSION == "0.3.32"
    assert lock["packages"]["node_modules/@hotmeshio/hotmesh"]["version"] == HOTMESH_VERSION


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("script", ["bench.mjs", "durable.mjs"])
def test_the_node_scripts_parse(script: str) -> None:
    checked = subprocess.run(["node", "--check", str(KIT / script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_database_url_becomes_node_postgres_options() -> None:
    assert node_postgres_options("host=/tmp/x/.mesh/pg user=postgres dbname=postgres") == {
        "host": "/tmp/x/.mesh/pg",
        "user": "postgres",
        "database": "postgres",
    }
    assert node_postgres_options("postgresql://u:p@db:6543/shop") == {
        "host": "db",
        "port": 6543,
        "user": "u",
        "password": "p",
        "database": "shop",
    }


def test_without_node_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no node, no npm
    with pytest.raises(ComparisonUnavailable, match=r"node is not installed: install Node\.js"):
        install_kit(tmp_path / "kit")
    assert not (tmp_path / "kit").exists()
