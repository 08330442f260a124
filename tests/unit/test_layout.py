"""The layout the README describes holds: every module of mesh/ sits in a layer of the
import-linter contract, and no module outgrows a reading (no database needed)."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT

LIMIT = 600
"""Lines per module. The rule is one concept per module (CONTRIBUTING.md), split by concept,
never by line count; a module past this size has almost surely grown a second concept, and
this test is the alarm. Test files have the same limit."""

LONGER: dict[str, str] = {}
"""Modules allowed past the limit, by path, each with the reason (none today; the list must
stay short)."""


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return [name.strip() for layer in layers for name in layer.split("|")]


def test_layers__name_every_top_level_module_of_mesh() -> None:
    named = set(_layers())
    found = {
        f"mesh.{path.stem}" if path.is_file() else f"mesh.{path.name}"
        for path in (ROOT / "mesh").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert found - named == set(), "add these modules to a layer in pyproject.toml"
    assert "actors" in named


def test_modules__stay_under_the_size_limit() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for folder in ("mesh", "actors", "benchmarks", "tests")
        for path in (ROOT / folder).rglob("*.py")
        if (lines := path.read_text().count("\n")) > LIMIT
        and str(path.relative_to(ROOT)) not in LONGER
    }
    assert too_long == {}, f"one concept per module: split these by concept (past {LIMIT} lines)"


def test_benchmarks__stay_out_of_the_product() -> None:
    """Importing every module of mesh and actors (a node, the CLI, the API) loads nothing of
    the benchmarks package, and the query registry holds none of their SQL."""
    import subprocess
    import sys

    script = """
import importlib, pkgutil, sys
import mesh, actors
for package in (mesh, actors):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
from mesh.cli.main import _parser
_parser()
from mesh.pg.queries import queries
print(sorted(m for m in sys.modules if m.split(".")[0] == "benchmarks"))
print(sorted(n for n in queries() if n.startswith(("baseline", "bench"))))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.split("\n")[:2] == ["[]", "[]"], result.stdout + result.stderr


def test_tiers__pg_tests_start_no_process() -> None:
    """tests/pg talks to a database from this process; a test that starts node processes,
    the CLI or other programs belongs in tests/system (tests/unit refuses database fixtures
    in its conftest)."""
    import re

    starts = re.compile(r"NodeProcess|import subprocess|from tests\.helpers import .*\bMESH\b")
    starting = sorted(
        path.name
        for path in (ROOT / "tests" / "pg").glob("*.py")
        if starts.search(path.read_text(encoding="utf-8"))
    )
    assert starting == [], "move these to tests/system"
    assert {p.name for p in (ROOT / "tests").glob("test_*.py")} == set(), "put tests in a tier"
