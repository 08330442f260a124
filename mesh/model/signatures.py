"""The type variables of the typed ways to start a workflow (``start_workflow``,
``execute_workflow``, ``execute_child``): each is a family of overloads, one per number of
positional arguments, that type checkers match against the workflow function.

Starting a workflow by function is checked: its arguments against the function's parameters
(positional, up to six; pass more as one dataclass, or start it by name) and the result
type from its return type. Started by name (a string), arguments and result are ``Any``.
"""

from __future__ import annotations

from typing import TypeVar

R = TypeVar("R")
A1 = TypeVar("A1")
A2 = TypeVar("A2")
A3 = TypeVar("A3")
A4 = TypeVar("A4")
A5 = TypeVar("A5")
A6 = TypeVar("A6")
