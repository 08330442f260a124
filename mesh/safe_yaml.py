"""YAML documents (configs and manifests), read so that a hostile file is refused, not run.

- At most :data:`MAX_DOCUMENT_BYTES`, and UTF-8 (a bad byte is reported by line and offset).
- Parsed by libyaml (PyYAML's C parser: a 6 MB file in about a second instead of half a
  minute, and its own cap of 1,000 nesting levels).
- Nested at most :data:`~mesh.model.limits.MAX_DEPTH` levels, and aliases may not make it
  grow past :data:`MAX_VALUES` values and ten times what is written (a "billion laughs"
  file is a few lines that expand to 10^9 values); no alias to a value that contains it.
- Duplicate keys are refused: YAML says keys are unique, and PyYAML would silently keep the
  last one.

:class:`DocumentInvalid` names the source, where in it, the problem and the fix; configs and
manifests turn it into their own errors. :func:`substitute` fills ``${VAR}`` in a parsed
config from the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mesh.errors import ConfigError, DocumentInvalid
from mesh.model.limits import MAX_DEPTH

MAX_DOCUMENT_BYTES = 16 << 20
MAX_VALUES = 1_000_000

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_document(path: str | Path) -> str:
    """The text of a YAML file: size-checked and decoded as UTF-8. :class:`OSError` when it
    cannot be read; :class:`DocumentInvalid` when it is too large or not UTF-8."""
    source = str(path)
    with open(path, "rb") as file:
        raw = file.read(MAX_DOCUMENT_BYTES + 1)
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise DocumentInvalid(
            source,
            "",
            f"the file is larger than {MAX_DOCUMENT_BYTES >> 20} MiB",
            "split it, or keep large data out of configs and manifests",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DocumentInvalid(
            source,
            f"line {line} (byte {error.start})",
            f"not UTF-8 text: byte {raw[error.start : error.start + 1]!r} cannot be decoded",
            "save the file as UTF-8",
        ) from None


def parse_yaml(text: str, source: str) -> Any:
    """The value of one YAML document, within the limits above (None for an empty one)."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise DocumentInvalid(
            source, "", f"the document is larger than {MAX_DOCUMENT_BYTES >> 20} MiB", "shorten it"
        )
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_node(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise DocumentInvalid(
            source, where, f"invalid YAML: {problem}", "fix the YAML syntax there"
        ) from None
    except RecursionError:  # the pure-Python parser, where libyaml is missing
        raise DocumentInvalid(
            source, "", f"nested more than {MAX_DEPTH} levels deep", "flatten it"
        ) from None
    finally:
        loader.dispose()


def _check_node(root: yaml.Node, source: str) -> None:
    """Depth, expanded size, self-reference and duplicate keys, walked without recursion.

    A node reached through several aliases is walked once; its expanded size is counted
    each time it is used, which is what a consumer of the document would build.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise DocumentInvalid(
                source, _where(node), "an alias refers to a value that contains it", "remove it"
            )
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        if depth > MAX_DEPTH:
            raise DocumentInvalid(
                source, _where(node), f"nested more than {MAX_DEPTH} levels deep", "flatten it"
            )
        if isinstance(node, yaml.MappingNode):
            _check_keys(node, source)
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))
    expanded, written = sizes[id(root)], len(sizes)
    if expanded > max(MAX_VALUES, 10 * written):
        raise DocumentInvalid(
            source,
            "",
            f"its aliases expand {written:,} written values to {expanded:,}",
            "write the values out, or use fewer aliases",
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_keys(node: yaml.MappingNode, source: str) -> None:
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
            continue
        name = (key_node.tag, key_node.value)
        if name in seen:
            raise DocumentInvalid(
                source,
                _where(key_node),
                f"key {key_node.value!r} appears twice in one mapping (first at "
                f"{_where(seen[name])})",
                "keep one of them",
            )
        seen[name] = key_node


def _where(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute(
    value: Any, source: str, environ: Mapping[str, str] | None = None, path: str = ""
) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML document.

    Substituting after parsing keeps comments inert and values from breaking the YAML syntax.
    An unset variable without a default is an error naming the key.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {
            k: substitute(v, source, env, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [substitute(v, source, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if env.get(name):
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            source,
            path,
            f"environment variable {name} is not set",
            f"export {name}=... or write ${{{name}:-default}}",
        )

    return _VARIABLE.sub(replace, value)
