"""The ``mesh`` command line, one module per command group: ``node`` (run, migrate, db,
demo), ``streams``, ``workflows``, ``quorum`` and ``bench``; ``main`` parses and reports."""

from mesh.cli.main import main

__all__ = ["main"]
