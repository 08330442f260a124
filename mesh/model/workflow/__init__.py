"""Workflows written as plain async functions (HotMesh's "Option 1: Code"), decided purely.

A workflow function awaits *durable calls* (an activity, a sleep, a condition, a child
workflow, a signal); each gets the next *position* and is recorded once, by position, with its
outcome. :class:`~mesh.model.workflow.run.WorkflowRun` drives the function's coroutine: it
answers recorded calls from the history at once (replay), hands new ones to the runtime, and
keeps the coroutine suspended until their outcomes arrive, so a workflow runs once from the top
and resumes in place (its cost is linear in its length). A replayed call that differs from the
recorded one at its position stops the workflow (:class:`~mesh.errors.NondeterminismError`).

No I/O here: the runtime records the calls, runs them, and delivers their outcomes.
"""
