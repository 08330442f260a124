"""Loading manifests: from a YAML file (resolving ``$ref`` to files and JSON pointers) or an
inline YAML string starting with ``app:``; then validation, which lists every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mesh.model.graph import Manifest, ManifestInvalid, validate_manifest
from mesh.model.graph.refs import RefError, resolve_refs


def _parse(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(YAML)"
        raise ManifestInvalid(
            [f"{source}: {where}: invalid YAML: {getattr(error, 'problem', None) or error}"]
        ) from error


def load_manifest(source: str | Path) -> Manifest:
    """Parse, resolve and validate a manifest; :class:`ManifestInvalid` lists every problem."""
    if isinstance(source, str) and source.lstrip().startswith("app:"):
        return validate_manifest(_parse(source, "<inline manifest>"))
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ManifestInvalid([f"{path}: cannot read the file: {error.strerror}"]) from error

    def load(name: str) -> Any:
        return _parse(Path(name).read_text(encoding="utf-8"), name)

    try:
        document = resolve_refs(_parse(text, str(path)), str(path), load)
    except RefError as error:
        raise ManifestInvalid([str(error)]) from error
    return validate_manifest(document)
