"""The JSON Schema subset graphs use for their input and output: ``type`` (one or a list),
``properties``, ``required``, ``additionalProperties`` (bool), ``items``, ``enum``, ``const``,
``minimum``/``maximum``, ``exclusiveMinimum``/``exclusiveMaximum``, ``minLength``/
``maxLength``, ``minItems``/``maxItems``, ``pattern``. Other keywords (``description``,
``examples``, ``default``, ``format`` ...) are accepted and not enforced."""

from __future__ import annotations

import re
from typing import Any

TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


def _type_matches(value: Any, expected: str) -> bool:
    if expected == "null":
        return value is None
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "string":
        return isinstance(value, str)
    if expected == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def schema_problems(schema: Any, value: Any, path: str = "") -> list[str]:
    """Every way ``value`` fails ``schema``, each as ``path: problem`` (empty: it conforms)."""
    if not isinstance(schema, dict):
        return []
    where = path or "(input)"
    problems: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        allowed = expected if isinstance(expected, list) else [expected]
        if not any(_type_matches(value, t) for t in allowed):
            return [f"{where}: expected {' or '.join(allowed)}, got {_kind(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: must be {schema['const']!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        problems += _bound_problems(schema, value, where)
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{where}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: longer than {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: does not match {schema['pattern']!r}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: more than {schema['maxItems']} items")
        for index, item in enumerate(value):
            problems += schema_problems(schema.get("items"), item, f"{path}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name in schema.get("required") or []:
            if name not in value:
                problems.append(f"{_join(path, name)}: required")
        for name, item in value.items():
            if name in properties:
                problems += schema_problems(properties[name], item, _join(path, name))
            elif schema.get("additionalProperties") is False:
                problems.append(f"{_join(path, name)}: not allowed (no such property)")
    return problems


def schema_definition_problems(schema: Any, path: str) -> list[str]:
    """Problems in a schema itself (unknown types, wrong keyword shapes)."""
    if not isinstance(schema, dict):
        return [f"{path}: a schema is a mapping, not {_kind(schema)}"]
    problems: list[str] = []
    kinds = schema.get("type")
    for kind in kinds if isinstance(kinds, list) else [kinds] if kinds is not None else []:
        if kind not in TYPES:
            problems.append(f"{path}.type: unknown type {kind!r} (use {', '.join(sorted(TYPES))})")
    if "required" in schema and not isinstance(schema["required"], list):
        problems.append(f"{path}.required: must be a list of property names")
    for name, sub in (schema.get("properties") or {}).items():
        problems += schema_definition_problems(sub, f"{path}.properties.{name}")
    if "items" in schema:
        problems += schema_definition_problems(schema["items"], f"{path}.items")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except (re.error, TypeError) as error:
            problems.append(f"{path}.pattern: not a regular expression ({error})")
    return problems


def _bound_problems(schema: dict[str, Any], value: float, where: str) -> list[str]:
    problems = []
    if "minimum" in schema and not value >= schema["minimum"]:
        problems.append(f"{where}: {value} must be at least {schema['minimum']}")
    if "maximum" in schema and not value <= schema["maximum"]:
        problems.append(f"{where}: {value} must be at most {schema['maximum']}")
    if "exclusiveMinimum" in schema and not value > schema["exclusiveMinimum"]:
        problems.append(f"{where}: {value} must be more than {schema['exclusiveMinimum']}")
    if "exclusiveMaximum" in schema and not value < schema["exclusiveMaximum"]:
        problems.append(f"{where}: {value} must be less than {schema['exclusiveMaximum']}")
    return problems


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
