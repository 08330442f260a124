"""Typed payloads: what crosses the database (a workflow's or an activity's arguments and
result, a signal's data, a heartbeat's details) is JSON, and arrives as the type the
receiving function annotates, as Temporal's data converter does.

Sent: dataclasses, msgspec Structs, Pydantic models (when pydantic is installed), ``datetime``
and ``date`` (ISO 8601 text), ``UUID`` and ``Decimal`` (text), ``Enum`` (its value),
``bytes`` (base64), sets and tuples (arrays) become JSON values (:func:`to_json`); anything
else is refused before anything is written, naming the argument. Received: each value is
converted to the annotation of the parameter (or the return type) it lands in
(:func:`from_json`); where a function is not annotated, or the annotation is one msgspec
cannot build (``Any``, a bare class), the JSON value arrives as it is.

A payload is at most :data:`max_payload_bytes` of JSON (``MESH_MAX_PAYLOAD``, default
8 MB; Postgres refuses a ``jsonb`` value of 256 MB): a larger one is refused with
:class:`~mesh.errors.PayloadTooLarge`, before anything is written.
"""

from __future__ import annotations

import inspect
import os
import typing
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import msgspec

from mesh.errors import InvalidPayload, PayloadTooLarge
from mesh.model.limits import check_value

DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024
CEILING = 200 * 1024 * 1024
"""The largest limit that can be set: Postgres refuses a jsonb value of 256 MB."""


def _limit_from_environment() -> int:
    text = os.environ.get("MESH_MAX_PAYLOAD", "").strip().upper().replace(" ", "")
    if not text:
        return DEFAULT_MAX_PAYLOAD
    units = {"KB": 1024, "MB": 1024**2, "B": 1}
    for unit, factor in units.items():
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return min(int(text[: -len(unit)]) * factor, CEILING)
    if text.isdigit():
        return min(int(text), CEILING)
    raise InvalidPayload(
        f"MESH_MAX_PAYLOAD={os.environ['MESH_MAX_PAYLOAD']!r} is not a size: write bytes or "
        "e.g. '16 MB', at most 200 MB"
    )


max_payload_bytes = _limit_from_environment()
"""The largest payload (JSON bytes) mesh writes."""


def _encode_other(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)  # pydantic v2
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not a type mesh can send")


def to_json(value: Any, what: str) -> Any:
    """``value`` as JSON values (see the module), checked and measured; :class:`InvalidPayload`
    naming ``what`` when it cannot be sent."""
    try:
        plain = msgspec.to_builtins(value, enc_hook=_encode_other, str_keys=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidPayload(
            f"{what} cannot be sent: {error}; send JSON values, dataclasses, msgspec Structs, "
            "Pydantic models, datetime, date, UUID, Decimal, Enum or bytes"
        ) from None
    check_value(plain, what)
    size = len(msgspec.json.encode(plain)) if _maybe_large(plain) else 0
    if size > max_payload_bytes:
        raise PayloadTooLarge(
            f"{what} is {size:,} bytes of JSON, over the {max_payload_bytes:,}-byte limit "
            "(MESH_MAX_PAYLOAD): store large data elsewhere (a bucket, a table) and pass "
            "its key, or raise the limit"
        )
    return plain


def _maybe_large(value: Any) -> bool:
    """Cheap: a value that cannot reach the limit is not encoded to be measured."""
    if isinstance(value, str):
        return len(value) * 4 > max_payload_bytes // 2
    return not (isinstance(value, int | float | bool) or value is None)


def args_to_json(args: Sequence[Any], names: Sequence[str], what: str) -> list[Any]:
    """Positional arguments as JSON values, each refused by its name (``argument 2
    (qty) of workflow 'order'``)."""
    sent = []
    for index, arg in enumerate(args):
        name = f" ({names[index]})" if index < len(names) else ""
        sent.append(to_json(arg, f"argument {index + 1}{name} of {what}"))
    total = len(msgspec.json.encode(sent)) if len(sent) > 1 and _maybe_large(sent) else 0
    if total > max_payload_bytes:
        raise PayloadTooLarge(
            f"the arguments of {what} are {total:,} bytes of JSON, over the "
            f"{max_payload_bytes:,}-byte limit (MESH_MAX_PAYLOAD)"
        )
    return sent


def _decode_other(kind: type, value: Any) -> Any:
    validate = getattr(kind, "model_validate", None)  # pydantic v2
    if callable(validate):
        return validate(value)
    raise NotImplementedError(kind)


@lru_cache(maxsize=4096)
def _converts(annotation: Any) -> bool:
    """Whether msgspec can build ``annotation`` (``Any`` and unsupported types pass values
    through as they are)."""
    if annotation is Any or annotation is inspect.Parameter.empty or annotation is object:
        return False
    try:
        msgspec.convert(None, annotation, dec_hook=_decode_other)
    except msgspec.ValidationError:
        return True
    except (TypeError, NotImplementedError):
        return hasattr(annotation, "model_validate")
    return True


def from_json(value: Any, annotation: Any, what: str) -> Any:
    """``value`` (JSON) as ``annotation``; :class:`InvalidPayload` naming ``what`` when it
    does not fit."""
    try:
        if not _converts(annotation):
            return value
    except TypeError:  # an unhashable annotation
        return value
    try:
        return msgspec.convert(value, annotation, strict=False, dec_hook=_decode_other)
    except msgspec.ValidationError as error:
        raise InvalidPayload(
            f"{what} does not fit its annotation {annotation!r}: {error}"
        ) from None
    except Exception as error:  # a model's own validation
        raise InvalidPayload(f"{what} does not fit {annotation!r}: {error}") from None


class Signature(msgspec.Struct, frozen=True):
    """What a function's annotations say of its payloads."""

    names: tuple[str, ...]
    """Positional parameter names, in order."""
    parameters: tuple[Any, ...]
    """Their annotations (``Any`` where absent)."""
    variadic: Any
    """The annotation of ``*args`` (None: it has none)."""
    returns: Any


@lru_cache(maxsize=4096)
def _signature_of(function: Callable[..., Any]) -> Signature:
    target = inspect.unwrap(function)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: treat the function as untyped
        hints = {}
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return Signature((), (), Any, Any)
    names: list[str] = []
    kinds: list[Any] = []
    variadic: Any = None
    for parameter in parameters:
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            if parameter.name == "self" and not names:
                continue
            names.append(parameter.name)
            kinds.append(hints.get(parameter.name, Any))
        elif parameter.kind is parameter.VAR_POSITIONAL:
            variadic = hints.get(parameter.name, Any)
    return Signature(tuple(names), tuple(kinds), variadic, hints.get("return", Any))


def signature_of(function: Callable[..., Any]) -> Signature:
    try:
        return _signature_of(function)
    except TypeError:  # unhashable callable
        return Signature((), (), Any, Any)


def receive_args(function: Callable[..., Any], args: Sequence[Any], what: str) -> list[Any]:
    """``args`` (JSON) converted to ``function``'s parameter annotations."""
    signature = signature_of(function)
    received = []
    for index, arg in enumerate(args):
        if index < len(signature.parameters):
            annotation, name = signature.parameters[index], signature.names[index]
        else:
            annotation, name = signature.variadic or Any, "*args"
        received.append(from_json(arg, annotation, f"argument {index + 1} ({name}) of {what}"))
    return received


def receive_result(function: Callable[..., Any] | None, value: Any, what: str) -> Any:
    """``value`` (JSON) converted to ``function``'s return annotation."""
    if function is None:
        return value
    return from_json(value, signature_of(function).returns, what)


def parameter_names(function: Callable[..., Any] | str) -> tuple[str, ...]:
    return () if isinstance(function, str) else signature_of(function).names
