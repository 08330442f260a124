"""Named SQL queries, loaded once from ``sql/queries.sql`` (streams, graphs, the quorum and
the demo), ``sql/workflows.sql`` (workflows written as code) and ``sql/schedules.sql``; a
name is unique across the files."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


def sql_text(filename: str) -> str:
    """The text of a file under ``mesh/pg/sql``."""
    return resources.files("mesh.pg").joinpath("sql", filename).read_text(encoding="utf-8")


FILES = ("queries.sql", "workflows.sql", "schedules.sql")


@cache
def queries() -> dict[str, str]:
    named: dict[str, str] = {}
    for filename in FILES:
        parts = _HEADER.split(sql_text(filename))
        # parts: [preamble, name1, body1, name2, body2, ...]
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in named:
                raise ValueError(f"{filename}: query {name!r} is defined twice")
            named[name] = body.strip()
    return named


def query(name: str) -> str:
    """The SQL of the named query; KeyError names the missing query."""
    return queries()[name]
