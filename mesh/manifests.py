"""Loading manifests: from a YAML file (resolving ``$ref`` to files and JSON pointers) or an
inline YAML document; then validation, which lists every problem.

A string is a file path unless it reads as a manifest: it spans lines, or starts with
``app:``, ``---`` or a comment. A :class:`~pathlib.Path` is always a file. Files are read
within the limits of :mod:`mesh.safe_yaml` (size, UTF-8, nesting, aliases, duplicate keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mesh.errors import DocumentInvalid, ManifestInvalid
from mesh.model.graph.manifest import Manifest
from mesh.model.graph.refs import RefError, resolve_refs
from mesh.model.graph.validation import validate_manifest
from mesh.safe_yaml import parse_yaml, read_document

MAX_MANIFEST_FILES = 100
"""Distinct files one manifest may draw in through ``$ref``."""


def _parse(text: str, source: str) -> Any:
    try:
        return parse_yaml(text, source)
    except DocumentInvalid as error:
        raise ManifestInvalid([str(error)]) from None


def _is_inline(source: str | Path) -> bool:
    if not isinstance(source, str):
        return False
    head = source.lstrip()
    return "\n" in source or head.startswith(("app:", "---", "#", "{"))


def load_manifest(source: str | Path) -> Manifest:
    """Parse, resolve and validate a manifest; :class:`ManifestInvalid` lists every problem."""
    if _is_inline(source):
        return validate_manifest(_parse(str(source), "<inline manifest>"))
    path = Path(source)
    try:
        text = read_document(path)
    except OSError as error:
        raise ManifestInvalid(
            [f"{path}: cannot read the file: {error.strerror or error}"]
        ) from None
    except DocumentInvalid as error:
        raise ManifestInvalid([str(error)]) from None
    loaded: dict[str, Any] = {}

    def load(name: str) -> Any:
        if name not in loaded:
            if len(loaded) >= MAX_MANIFEST_FILES:
                raise RefError(f"$ref draws in more than {MAX_MANIFEST_FILES} files")
            try:
                loaded[name] = _parse(read_document(name), name)
            except DocumentInvalid as error:
                raise RefError(str(error)) from None
        return loaded[name]

    try:
        document = resolve_refs(_parse(text, str(path)), str(path), load)
    except RefError as error:
        raise ManifestInvalid([str(error)]) from None
    except ManifestInvalid:
        raise
    return validate_manifest(document)
