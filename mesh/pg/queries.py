"""Named SQL queries, loaded once from ``sql/queries.sql``."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


def sql_text(filename: str) -> str:
    """The text of a file under ``mesh/pg/sql``."""
    return resources.files("mesh.pg").joinpath("sql", filename).read_text(encoding="utf-8")


@cache
def queries() -> dict[str, str]:
    text = sql_text("queries.sql")
    parts = _HEADER.split(text)
    # parts: [preamble, name1, body1, name2, body2, ...]
    named = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    return named


def query(name: str) -> str:
    """The SQL of the named query; KeyError names the missing query."""
    return queries()[name]
