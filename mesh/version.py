"""The installed mesh's version, read from its package metadata: ``pyproject.toml`` is the
one place it is written."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("mesh")
except metadata.PackageNotFoundError:  # a source tree on sys.path, never installed
    __version__ = "0+unknown"
