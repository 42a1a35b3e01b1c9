"""The Mann-Whitney U test (Wilcoxon rank-sum) and its effect size, in pure Python.

Kayenta judges canaries with it: it asks whether the canary's data points tend to be higher
(or lower) than the baseline's without assuming a distribution, which suits latencies and
error rates. ``U`` counts, over every (canary, baseline) pair, the pairs where the canary's
point is higher (a tie counts one half). The p-value is exact (the distribution of U over every
assignment of the ranks, by counting) when both samples have at most ``EXACT_MAX`` points and
no ties, as SciPy does; otherwise the normal approximation with the tie correction of the
variance and a continuity correction. The effect size is Vargha and Delaney's A = U / (n1 n2):
the chance that a canary point is higher than a baseline point (0.5: no difference; 0.56,
0.64 and 0.71 are the usual small, medium and large).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

EXACT_MAX = 8  # exact p-values up to this many points in each sample (and no ties)


@dataclass(frozen=True)
class MannWhitney:
    u: float  # U of the first sample (the canary)
    n1: int
    n2: int
    p_greater: float  # one-sided p-value: the first sample tends to be higher
    p_less: float  # one-sided p-value: the first sample tends to be lower
    method: str  # "exact" or "normal"

    @property
    def effect(self) -> float:
        """Vargha-Delaney A: P(first > second) + P(first = second) / 2."""
        return self.u / (self.n1 * self.n2)

    @property
    def p_two_sided(self) -> float:
        return min(1.0, 2 * min(self.p_greater, self.p_less))


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties given the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def mann_whitney(first: Sequence[float], second: Sequence[float]) -> MannWhitney:
    """The test of ``first`` (canary) against ``second`` (baseline); both need a point."""
    n1, n2 = len(first), len(second)
    if n1 == 0 or n2 == 0:
        raise ValueError("the Mann-Whitney test needs at least one point in each sample")
    pooled = [*first, *second]
    r = ranks(pooled)
    u = sum(r[:n1]) - n1 * (n1 + 1) / 2
    tied = len(set(pooled)) < len(pooled)
    if max(n1, n2) <= EXACT_MAX and not tied:
        total = math.comb(n1 + n2, n1)
        counts = _u_counts(n1, n2)
        k = round(u)
        p_greater = sum(counts[k:]) / total
        p_less = sum(counts[: k + 1]) / total
        return MannWhitney(u, n1, n2, min(1.0, p_greater), min(1.0, p_less), "exact")
    mean = n1 * n2 / 2
    n = n1 + n2
    ties = _tie_sizes(pooled)
    variance = n1 * n2 / 12 * ((n + 1) - sum(t**3 - t for t in ties) / (n * (n - 1)))
    if variance <= 0:  # every point equal: no evidence either way
        return MannWhitney(u, n1, n2, 1.0, 1.0, "normal")
    sd = math.sqrt(variance)
    p_greater = _upper_tail((u - mean - 0.5) / sd)
    p_less = _upper_tail((mean - u - 0.5) / sd)
    return MannWhitney(u, n1, n2, min(1.0, p_greater), min(1.0, p_less), "normal")


def _tie_sizes(values: Sequence[float]) -> list[int]:
    seen: dict[float, int] = {}
    for v in values:
        seen[v] = seen.get(v, 0) + 1
    return [t for t in seen.values() if t > 1]


def _upper_tail(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


@lru_cache(maxsize=256)
def _u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """How many assignments of ranks give U = 0, 1, ..., n1 n2 (no ties)."""
    if n1 == 0 or n2 == 0:
        return (1,)
    # The largest of the pooled values is either in the first sample (it beats all n2 of the
    # second: U grows by n2) or in the second (U unchanged).
    with_first = _u_counts(n1 - 1, n2)
    with_second = _u_counts(n1, n2 - 1)
    out = [0] * (n1 * n2 + 1)
    for u, c in enumerate(with_first):
        out[u + n2] += c
    for u, c in enumerate(with_second):
        out[u] += c
    return tuple(out)
