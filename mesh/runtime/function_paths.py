"""User functions named by dotted path: ``package.module:function``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mesh.errors import FunctionNotFound


def resolve_function(dotted_path: str) -> Callable[..., Any]:
    """Import and return the callable ``dotted_path`` names.

    Raises :class:`FunctionNotFound` saying which part failed and what the form is.
    """
    module_name, sep, attribute = dotted_path.partition(":")
    if not sep or not module_name or not attribute:
        raise FunctionNotFound(
            f"{dotted_path!r} is not a function path; write 'package.module:function', "
            "e.g. 'mesh.examples.inventory:check_inventory'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise FunctionNotFound(
            f"cannot import module {module_name!r} for {dotted_path!r}: {error}. Is the "
            "package installed, or is its folder on PYTHONPATH / the working directory?"
        ) from error
    except SyntaxError as error:
        raise FunctionNotFound(
            f"module {module_name!r} (for {dotted_path!r}) has a syntax error: {error.msg} "
            f"({error.filename}, line {error.lineno}); fix it and start again"
        ) from None
    except (Exception, SystemExit) as error:  # user code ran at import and failed
        raise FunctionNotFound(
            f"importing module {module_name!r} (for {dotted_path!r}) raised "
            f"{type(error).__name__}: {error}; fix the module (it runs when imported)"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise FunctionNotFound(
                f"module {module_name!r} has no attribute {attribute!r} (from {dotted_path!r})"
            ) from None
    if not callable(target):
        raise FunctionNotFound(f"{dotted_path!r} names a {type(target).__name__}, not a function")
    return target  # type: ignore[no-any-return]
