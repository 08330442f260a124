"""The names workflows and activities are registered under, and why some functions cannot
be registered by their own name.

A request names the function it wants (``{"activity": "charge"}``, a workflow job's
``workflow_name``), so two functions under one name on one task queue would answer for each
other. A plain function is named by its ``__name__``; that name is refused when it cannot
tell functions apart: a lambda (all are ``<lambda>``) and a function defined inside another
(each call of the outer one makes a new function of the same name). Either may be
registered under a name given with ``@workflow.defn(name=...)`` / ``@activity.defn(name=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def where(function: Callable[..., Any]) -> str:
    """``module:qualified.name`` of a function, for messages."""
    return f"{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', function)}"


def check_own_name(function: Callable[..., Any], kind: str) -> None:
    """Refuse (:class:`TypeError`) a ``kind`` ("workflow", "activity") function whose
    ``__name__`` does not name it alone."""
    name = getattr(function, "__name__", None)
    qualified = getattr(function, "__qualname__", "") or ""
    fix = f"or give it a name of its own with @{kind}.defn(name=...)"
    if not isinstance(name, str) or name == "<lambda>":
        raise TypeError(
            f"{where(function)} is a lambda, which has no name to register a {kind} under: "
            f"define it with def at module level, {fix}"
        )
    if "<locals>" in qualified:
        outer = qualified.split(".<locals>")[0]
        raise TypeError(
            f"{kind} {where(function)} is defined inside {outer}(): every call of {outer} makes "
            f"another function named {name!r}; define it at module level, {fix}"
        )


def index(
    named: Iterable[tuple[str, Callable[..., Any]]], kind: str
) -> dict[str, Callable[..., Any]]:
    """``name -> function`` of ``(name, function)`` pairs; the same function twice is kept
    once, two functions under one name are refused (:class:`TypeError`)."""
    found: dict[str, Callable[..., Any]] = {}
    for name, function in named:
        other = found.get(name)
        if other is not None and not _same(other, function):
            raise TypeError(
                f"two {kind} functions are named {name!r}: {where(other)} and {where(function)}; "
                f"rename one (@{kind}.defn(name=...)) or register it once"
            )
        found[name] = function
    return found


def _same(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    return a is b or a == b  # bound methods of one object compare equal, not identical
