"""A cumulative duration histogram cheap enough to feed per message (exported as Prometheus)."""

from __future__ import annotations

from bisect import bisect_left

DEFAULT_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Upper bounds in seconds; +Inf is implied."""


class DurationHistogram:
    __slots__ = ("_counts", "buckets", "count", "sum")

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(self.buckets, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or below it), ending with ("+Inf", count)."""
        result: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*map(repr, self.buckets), "+Inf"), self._counts, strict=True):
            running += n
            result.append((bound, running))
        return result
