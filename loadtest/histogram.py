"""A log-linear latency histogram: constant memory, mergeable, ~0.8% relative error.

The idea of HdrHistogram (Gil Tene) in a few lines: values (microseconds) are
grouped by their power of two and, inside it, into ``SUB`` linear
sub-buckets, so every bucket is at most 1/SUB of its value wide. Counts
live in a sparse dict (index -> count), so histograms of every process,
command and second merge by adding counts, and serialise to JSON as they
are. Percentiles are read from the cumulative counts (the bucket's upper
bound is reported, so a percentile never under-states a latency).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SUB_BITS = 7
SUB = 1 << SUB_BITS  # 128 sub-buckets per power of two


def bucket_of(value: int) -> int:
    """Bucket index of a non-negative integer value."""
    if value < SUB:
        return max(value, 0)
    shift = value.bit_length() - SUB_BITS
    return (shift << SUB_BITS) + (value >> shift)


def upper_bound(index: int) -> int:
    """Largest value that falls in bucket ``index``."""
    if index < SUB:
        return index
    shift = index >> SUB_BITS
    mantissa = index - (shift << SUB_BITS)
    return ((mantissa + 1) << shift) - 1


class Histogram:
    """Counts of integer values (microseconds) per log-linear bucket."""

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int) -> None:
        idx = bucket_of(value)
        counts = self.counts
        counts[idx] = counts.get(idx, 0) + 1
        if not self.count or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def merge(self, other: Histogram) -> None:
        for idx, n in other.counts.items():
            self.counts[idx] = self.counts.get(idx, 0) + n
        if other.count:
            self.min = other.min if not self.count else min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def percentile(self, pct: float) -> int:
        """The value below or at which ``pct`` percent of the records fall (0 if empty)."""
        if not self.count:
            return 0
        rank = max(1, -(-self.count * pct // 100))  # ceil, at least the first record
        seen = 0
        for idx in sorted(self.counts):
            seen += self.counts[idx]
            if seen >= rank:
                return min(upper_bound(idx), self.max)
        return self.max

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "count": self.count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "counts": {str(k): v for k, v in sorted(self.counts.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Histogram:
        h = cls()
        raw = data.get("counts") or {}
        assert isinstance(raw, Mapping)
        h.counts = {int(k): int(v) for k, v in raw.items()}
        h.count = int(str(data.get("count", 0)))
        h.total = int(str(data.get("total", 0)))
        h.min = int(str(data.get("min", 0)))
        h.max = int(str(data.get("max", 0)))
        return h

    def buckets(self) -> Iterable[tuple[int, int]]:
        """(upper bound, count) per non-empty bucket, ascending."""
        for idx in sorted(self.counts):
            yield upper_bound(idx), self.counts[idx]


def merged(histograms: Iterable[Histogram]) -> Histogram:
    out = Histogram()
    for h in histograms:
        out.merge(h)
    return out
