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

import trio

from mesh.runtime.consumer.wakeups import Wakeup
from mesh.runtime.streams import StreamClaim, Streams

LOOK_INTERVAL = 5.0
"""Seconds between looks for messages that run alone, when nothing says they wait."""


class AloneWatch:
    """One consumer's view of the messages that run alone in its stream, and its claims."""

    def __init__(self) -> None:
        self.wanted = False
        """Messages that run alone wait (so far as this consumer knows): claim nothing more
        until it holds nothing, then claim one."""
        self._next_look = 0.0

    def heard(self, wakeup: Wakeup) -> None:
        """Take in the reaper's word, if its wake-up said such messages wait."""
        if wakeup.alone:
            wakeup.alone = False
            self.wanted = True

    async def claim(
        self,
        streams: Streams,
        app: str,
        stream: str,
        *,
        holds_nothing: bool,
        limit: int,
        lease: float,
        max_attempts: int,
    ) -> list[StreamClaim]:
        """The consumer's next claim: one message that runs alone when it holds nothing and
        one waits (or it is time to try), else up to ``limit`` others (looking, now and then,
        whether messages that run alone wait)."""
        now = trio.current_time()
        if holds_nothing and (self.wanted or now >= self._next_look):
            # One statement: a message that runs alone, else up to ``limit`` others.
            self._next_look = now + LOOK_INTERVAL
            claims = await streams.claim_alone(
                app, stream, lease=lease, max_attempts=max_attempts, others=limit
            )
            self.wanted = any(claim.alone for claim in claims)  # one taken: more may wait
            return claims
        look = now >= self._next_look
        if look:
            self._next_look = now + LOOK_INTERVAL
        claims = await streams.claim(
            app, stream, limit=limit, lease=lease, look=look, max_attempts=max_attempts
        )
        if look and claims:  # an empty claim cannot tell
            self.wanted = any(claim.alone_waiting for claim in claims)
        return claims
