"""The configuration reference, generated from :mod:`mesh.config` so that it cannot drift:
every key of the config structs with its default, what it allows and what it means (the
field's docstring). ``python -m mesh.config_reference`` prints the Markdown table the README
carries, and ``python -m mesh.config_reference --write README.md`` puts it there, after the
line that names this module (a test checks the two agree)."""

from __future__ import annotations

import ast
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any

import msgspec

from mesh import config
from mesh.config import COUNT_BOUNDS, DURATION_BOUNDS, Config

ALLOWED_TEXT = {
    "app": "letters, digits, `-`, `_`",
    "workers[].topic": "letters, digits, `.`, `-`, `_`",
    "task_queues[].name": "letters, digits, `.`, `-`, `_`",
    "workers[].concurrency": "1-100,000",
    "task_queues[].concurrency": "1-100,000",
    "workers[].batch_size": "1-10,000",
    "retry.maximum_attempts": "1-1,000",
    "retry.backoff_coefficient": "1-1,000",
    "retry.maximum_interval": "0-7 days",
}
"""What a key allows where the bounds tables do not say it (names, and the retry policy,
which :class:`mesh.model.retry.RetryPolicy` checks)."""

SKIPPED = {"source"}
"""Fields of the structs that are not keys of the file."""


@dataclass(frozen=True, slots=True)
class Key:
    path: str
    default: str
    allowed: str
    meaning: str


def keys() -> list[Key]:
    """Every key of a config file, in the order of the structs."""
    found: list[Key] = []
    _walk(Config, "", found)
    return found


def markdown_table() -> str:
    """The reference as the README's Markdown table."""
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for key in keys():
        lines.append(f"| `{key.path}` | {key.default} | {key.allowed} | {key.meaning} |")
    return "\n".join(lines) + "\n"


def _walk(struct: type[msgspec.Struct], prefix: str, found: list[Key]) -> None:
    docs = _field_docs(struct)
    hints = typing.get_type_hints(struct, vars(config))
    for field in msgspec.structs.fields(struct):
        if field.name in SKIPPED:
            continue
        path = f"{prefix}{field.name}"
        nested = _struct_of(hints[field.name])
        if nested is not None and not docs.get(field.name):
            listed = typing.get_origin(hints[field.name]) is list
            _walk(nested, f"{path}[]." if listed else f"{path}.", found)
            continue
        meaning = docs.get(field.name)
        if not meaning:
            raise ValueError(f"config key {path!r} has no docstring: say what it means")
        found.append(Key(path, _default(field), _allowed(path, hints[field.name]), meaning))


def _struct_of(hint: Any) -> type[msgspec.Struct] | None:
    """The config struct a field holds (itself, in a list, or optional), if any."""
    candidates = [hint, *typing.get_args(hint)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
            return candidate
    return None


def _field_docs(struct: type) -> dict[str, str]:
    """The docstrings written under a struct's fields, joined to one line."""
    tree = ast.parse(inspect.getsource(struct))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, following in zip(body, [*body[1:], None], strict=True):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _default(field: msgspec.structs.FieldInfo) -> str:
    if field.required:
        return "required"
    value = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "" or value == []:
        return "empty"
    if isinstance(value, list):
        return "`[" + ", ".join(map(str, value)) + "]`"
    if isinstance(value, str) and not value[:1].isdigit():
        return f"`{value}`"
    return _duration(value) if isinstance(value, str) else f"{value:,}".replace(".0,", ",")


def _duration(text: str) -> str:
    number, _, unit = text.partition(" ")
    short = {"second": "s", "seconds": "s", "minutes": "min", "hour": "h", "days": "days"}
    return f"{number} {short.get(unit, unit)}"


def _allowed(path: str, hint: Any) -> str:
    if path in ALLOWED_TEXT:
        return ALLOWED_TEXT[path]
    if path in DURATION_BOUNDS:
        low, high = DURATION_BOUNDS[path]
        return f"{_seconds(low)}-{_seconds(high)}"
    if path in COUNT_BOUNDS:
        low, high = COUNT_BOUNDS[path]
        return f"{low:,}-{high:,}"
    values = _literal_values(hint)
    return ", ".join(f"`{v}`" for v in values) if values else ""


def _literal_values(hint: Any) -> list[str]:
    if typing.get_origin(hint) is typing.Literal:
        return [str(v) for v in typing.get_args(hint)]
    if typing.get_origin(hint) in (list, types.UnionType, typing.Union):
        for argument in typing.get_args(hint):
            values = _literal_values(argument)
            if values:
                return values
    return []


def _seconds(value: float) -> str:
    for size, unit in ((86400.0, " day"), (3600.0, " h"), (60.0, " min")):
        if value >= size and value % size == 0:
            count = int(value // size)
            return f"{count}{unit}{'s' if unit == ' day' and count > 1 else ''}"
    if value == 0:
        return "0"
    return f"{value:g} s"


MARKER = "<!-- The table is generated from mesh/config.py: python -m mesh.config_reference -->"


def write_into(path: str) -> None:
    """Replace the table after :data:`MARKER` in the Markdown file ``path``."""
    with open(path, encoding="utf-8") as file:
        lines = file.read().split("\n")
    start = lines.index(MARKER) + 1
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    lines[start:end] = markdown_table().rstrip("\n").split("\n")
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(lines))


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"] and len(sys.argv) == 3:
        write_into(sys.argv[2])
    else:
        print(markdown_table(), end="")
