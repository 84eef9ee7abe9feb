"""Small, dependency-free statistics for the benchmarks."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): always one of the measured values, never an interpolation."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


@dataclass(frozen=True)
class Spread:
    """Per-round ratios of two things measured side by side: their median and interquartile range.

    A ratio taken once can land anywhere the machine's mood puts it; the same pair measured in interleaved
    rounds gives one ratio per round, and their middle half says how far to trust the median.
    """

    median: float
    low: float
    high: float
    rounds: int

    @classmethod
    def of(cls, ratios: Sequence[float]) -> Spread:
        if not ratios:
            raise ValueError("a spread of no ratios")
        q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else (ratios[0],) * 3
        return cls(statistics.median(ratios), q1, q3, len(ratios))

    def text(self) -> str:
        return f"{self.median:.2f}x (IQR {self.low:.2f}-{self.high:.2f}, {self.rounds} rounds)"

    def verdict(self, target: float, *, at_least: bool = False) -> bool | None:
        """Whether `ratio <= target` (or `>= target`, `at_least`) holds (True), is missed (False), or cannot
        be told (None): the middle half of the rounds lies on both sides of the target."""
        good, bad = (self.low, self.high) if at_least else (self.high, self.low)
        if (good >= target) if at_least else (good <= target):
            return True
        if (bad < target) if at_least else (bad > target):
            return False
        return None


def per_round(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """The ratio of each round's pair, for rounds measured side by side."""
    return [n / d for n, d in zip(numerators, denominators, strict=True) if d > 0]
