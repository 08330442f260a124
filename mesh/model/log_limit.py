"""How often to log a recurring problem: the first time at once, then once per interval.

Whoever can send a NOTIFY can send ten thousand; each is dropped and counted, but logging
each would turn an attack (or a misconfigured sender) into a flood of log lines. Callers ask
:meth:`LogLimit.allow` and, when it says yes, report how many were held back since.
"""

from __future__ import annotations


class LogLimit:
    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str, now: float) -> int | None:
        """None: do not log this one. Otherwise log it, with the returned number of
        occurrences of ``key`` that were held back since the last line."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)
