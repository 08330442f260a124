"""Throttle state of a node, consulted by every claim loop before it claims.

The quorum member keeps it current (from ``mesh.throttles`` at start, on every throttle
message, and on a periodic re-read so a missed NOTIFY costs at most one refresh interval).
A change wakes every loop that is paused or sleeping between messages, so a lifted pause
takes effect at once.
"""

from __future__ import annotations

import trio

from mesh.model.quorum import ThrottleKey, effective_throttle


class ThrottleState:
    def __init__(self, guid: str) -> None:
        self.guid = guid
        self._throttles: dict[ThrottleKey, int] = {}
        self._changed = trio.Event()

    def effective(self, topic: str) -> int:
        """Milliseconds between messages for ``topic`` on this node; -1 paused, 0 none."""
        return effective_throttle(self._throttles, topic, self.guid)

    def replace(self, throttles: dict[ThrottleKey, int]) -> None:
        """Adopt ``throttles`` (the persisted rows); wakes waiters if anything changed."""
        if throttles != self._throttles:
            self._throttles = dict(throttles)
            self._changed.set()
            self._changed = trio.Event()

    def snapshot(self) -> dict[ThrottleKey, int]:
        return dict(self._throttles)

    async def wait(self, seconds: float | None, *also: trio.Event) -> None:
        """Sleep ``seconds`` (None: until woken), cut short by a throttle change or any of
        ``also`` (a consumer's stop event)."""
        changed = self._changed
        with trio.move_on_after(float("inf") if seconds is None else seconds):
            async with trio.open_nursery() as nursery:
                for event in (changed, *also):
                    nursery.start_soon(_wait_then_cancel, event, nursery.cancel_scope)


async def _wait_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
