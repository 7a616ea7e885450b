"""Grants and denials over time, in buckets as wide as the span needs (a second up to a week).

Counts are kept per second while that stays small, then per ten seconds, minute, ... week:
memory is bounded by the number of buckets, never by the number of records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from grantline.report.summary import Bucket, Timeline
from grantline.report.times import iso

# Each step divides the next, so counts regroup exactly.
STEPS_SECONDS = (1, 10, 60, 600, 3600, 86_400, 7 * 86_400)
MAX_BARS = 120
_MAX_KEPT = 4096
_MAX_BUCKETS = 2000


class TimelineCounter:
    """Counts of two series (grants, denials) by bucket of their record's time."""

    def __init__(self, since_ms: int | None = None, until_ms: int | None = None) -> None:
        self._since = since_ms
        self._until = until_ms
        self._step = 0  # an index into STEPS_SECONDS
        self._grants: Counter[int] = Counter()
        self._denials: Counter[int] = Counter()

    def grant(self, at_ms: int) -> None:
        self._add(self._grants, at_ms)

    def denial(self, at_ms: int) -> None:
        self._add(self._denials, at_ms)

    def _add(self, series: Counter[int], at_ms: int) -> None:
        series[at_ms // self._width()] += 1
        if len(series) > _MAX_KEPT and self._step < len(STEPS_SECONDS) - 1:
            self._coarsen(self._step + 1)

    def _width(self, step: int | None = None) -> int:
        return STEPS_SECONDS[self._step if step is None else step] * 1000

    def _coarsen(self, step: int) -> None:
        ratio = self._width(step) // self._width()
        self._grants = _regroup(self._grants, ratio)
        self._denials = _regroup(self._denials, ratio)
        self._step = step

    def finish(self) -> Timeline:
        """The buckets over the period widened to the data (a request of the period may be
        issued after it ends), at most MAX_BARS of them unless even weeks need more."""
        span = self._span()
        if span is None:
            return Timeline(STEPS_SECONDS[self._step], ())
        start, end = span
        while self._step < len(STEPS_SECONDS) - 1 and (end - start) > MAX_BARS * self._width():
            self._coarsen(self._step + 1)
        width = self._width()
        keys: Sequence[int] = range(start // width, (end - 1) // width + 1)
        if len(keys) > _MAX_BUCKETS:
            # Times centuries apart (a damaged or forged export): only the buckets with data.
            keys = sorted(set(self._grants) | set(self._denials))
        buckets = tuple(
            Bucket(iso(key * width), self._grants[key], self._denials[key]) for key in keys
        )
        return Timeline(width // 1000, buckets)

    def _span(self) -> tuple[int, int] | None:
        """[start, end) in milliseconds, or None with neither data nor a whole period."""
        keys = set(self._grants) | set(self._denials)
        width = self._width()
        starts = [min(keys) * width] if keys else []
        ends = [(max(keys) + 1) * width] if keys else []
        starts += [] if self._since is None else [self._since]
        ends += [] if self._until is None else [self._until]
        if not starts or not ends:
            return None
        return min(starts), max(*ends, min(starts) + 1)


def _regroup(series: Counter[int], ratio: int) -> Counter[int]:
    regrouped: Counter[int] = Counter()
    for key, count in series.items():
        regrouped[key // ratio] += count
    return regrouped
