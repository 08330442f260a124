"""How a workflow function is named: by ``@workflow.defn(name=...)``, else its ``__name__``.

Starting a workflow (``client.start_workflow(fn, ...)``, ``execute_child(fn, ...)``) and
running it (a worker's ``workflows=[...]``, a config's ``task_queues``) agree on the name
through :func:`workflow_name`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mesh.model.naming import check_own_name, index
from mesh.model.payloads import args_to_json, parameter_names, signature_of

ATTRIBUTE = "__mesh_workflow__"
"""Where ``@workflow.defn`` keeps a function's :class:`WorkflowDefinition`."""


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    name: str
    """The name jobs are started under."""
    explicit: bool = False
    """Given to ``@workflow.defn`` (not the function's ``__name__``)."""


def definition_of(function: Callable[..., Any]) -> WorkflowDefinition:
    given = getattr(function, ATTRIBUTE, None)
    if isinstance(given, WorkflowDefinition):
        return given
    name = getattr(function, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"{function!r} is not a function: pass a workflow function or its name")
    return WorkflowDefinition(name)


def workflow_name(workflow: Callable[..., Any] | str) -> str:
    """The name a workflow is started under: ``workflow`` itself when it is a string."""
    return workflow if isinstance(workflow, str) else definition_of(workflow).name


def registered_workflows(functions: Sequence[Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """``name -> function`` for a task queue's workflows; a lambda, a function defined inside
    another (unless named by ``@workflow.defn``), a non-function and two functions under one
    name are refused with :class:`TypeError`."""
    pairs = []
    for function in functions:
        if not callable(function):
            raise TypeError(f"{function!r} is not a workflow function")
        definition = definition_of(function)
        if not definition.explicit:
            check_own_name(function, "workflow")
        pairs.append((definition.name, function))
    return index(pairs, "workflow")


def start_arguments(workflow: Callable[..., Any] | str, args: Sequence[Any]) -> list[Any]:
    """A client's arguments for a workflow, as JSON values, each refused by its parameter's
    name when it cannot be sent."""
    return args_to_json(args, parameter_names(workflow), f"workflow {workflow_name(workflow)!r}")


def result_type(workflow: Callable[..., Any] | str) -> Any:
    """What a workflow's result arrives as: its function's return annotation (``Any`` for
    a workflow started by name)."""
    return Any if isinstance(workflow, str) else signature_of(workflow).returns
