"""The layout the README describes holds: every module of mesh/ sits in a layer of the
import-linter contract, and no module outgrows a reading (no database needed)."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT

LIMIT = 400
"""Lines per module; beyond it a module holds more than one concept."""


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
        for folder in ("mesh", "actors")
        for path in (ROOT / folder).rglob("*.py")
        if (lines := path.read_text().count("\n")) > LIMIT
    }
    assert too_long == {}, f"split these modules (limit {LIMIT} lines)"
