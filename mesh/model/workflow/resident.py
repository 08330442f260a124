"""The workflows a node keeps suspended in memory, bounded.

A suspended workflow's coroutine stays resident so its next outcome resumes it in place
(no replay). Memory is bounded by count: past ``capacity`` the least recently resumed run is
evicted (its coroutine closed); if its outcome comes later, the node replays it from its
recorded history, which costs time, never correctness."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from mesh.model.workflow.run import WorkflowRun


class ResidentRuns:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a node keeps at least one workflow resident")
        self.capacity = capacity
        self.evicted = 0
        self._runs: OrderedDict[str, WorkflowRun] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[str]:
        return iter(self._runs)

    def take(self, workflow_id: str) -> WorkflowRun | None:
        """The resident run of that workflow, if any (it is then the most recently used)."""
        run = self._runs.get(workflow_id)
        if run is not None:
            self._runs.move_to_end(workflow_id)
        return run

    def keep(self, run: WorkflowRun) -> None:
        """Keep a suspended run; evicts the least recently used past the capacity."""
        key = run.info.workflow_id
        self._runs[key] = run
        self._runs.move_to_end(key)
        while len(self._runs) > self.capacity:
            _, evicted = self._runs.popitem(last=False)
            evicted.close()
            self.evicted += 1

    def drop(self, workflow_id: str) -> None:
        """Forget a run that finished (or that another node now runs)."""
        run = self._runs.pop(workflow_id, None)
        if run is not None and not run.finished:
            run.close()
