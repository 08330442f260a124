"""A coalescing wake-up flag: many ``set()`` calls before one ``wait()`` make one wake-up."""

from __future__ import annotations

import trio


class Wakeup:
    def __init__(self) -> None:
        self._event = trio.Event()
        self.count = 0

    def set(self, _payload: str = "") -> None:
        """Wake the waiter (usable directly as a listener callback)."""
        self.count += 1
        self._event.set()

    def clear(self) -> None:
        """Forget earlier wake-ups; call just before doing the work they ask for."""
        if self._event.is_set():
            self._event = trio.Event()

    async def wait(self, timeout: float) -> bool:
        """Wait for a wake-up, at most ``timeout`` seconds; True if one came."""
        with trio.move_on_after(timeout):
            await self._event.wait()
            return True
        return False
