"""When a consumer looks for messages that run alone, and claims one.

A message refunded twice (its holders died while holding it among others, see the reaper)
runs alone: only a consumer that holds nothing claims it (``claim_alone``), and that
consumer claims nothing else until it is settled. Consumers learn that such messages wait
three ways: the reaper's NOTIFY says so (payload ``alone``); a busy consumer's claim looks
now and then (:data:`LOOK_INTERVAL`, a cheap probe the claim makes only when asked); a
consumer that holds nothing tries ``claim_alone`` that often too. So a message that runs alone
waits at most about :data:`LOOK_INTERVAL` plus the time its stream's consumers need to finish
what they hold, even if every NOTIFY is missed.

"Alone" is per consumer, not per node: other topics' consumers in the same process go on.
If one of their messages kills the process while a message runs alone, the alone one is
charged that attempt (the others are refunded, and soon run alone themselves).
"""

from __future__ import annotations

from collections.abc import Sequence

from mesh.runtime.streams import StreamClaim

LOOK_INTERVAL = 5.0
"""Seconds between looks for messages that run alone, when nothing says they wait."""


class AloneWatch:
    def __init__(self) -> None:
        self.wanted = False
        """Messages that run alone wait (so far as this consumer knows): claim nothing more
        until it holds nothing, then claim one."""
        self._next_look = 0.0

    def notice(self) -> None:
        """The reaper said such messages wait."""
        self.wanted = True

    def try_alone(self, holds_nothing: bool, now: float) -> bool:
        """Whether to ``claim_alone`` now (only when holding nothing)."""
        if holds_nothing and (self.wanted or now >= self._next_look):
            self._next_look = now + LOOK_INTERVAL
            return True
        return False

    def look(self, now: float) -> bool:
        """Whether the next claim should look for them."""
        if now >= self._next_look:
            self._next_look = now + LOOK_INTERVAL
            return True
        return False

    def took(self, claims: Sequence[StreamClaim]) -> None:
        """After ``claim_alone``: one taken means more may wait; none means none wait."""
        self.wanted = bool(claims)

    def looked(self, claims: Sequence[StreamClaim]) -> None:
        """After a claim that looked (an empty one could not tell)."""
        if claims:
            self.wanted = any(claim.alone_waiting for claim in claims)
