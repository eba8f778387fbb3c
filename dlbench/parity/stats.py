"""Statistics of raw samples that reports and compare share: the rank test."""

from __future__ import annotations

import math


def _average_ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in order[i:j + 1]:
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mann_whitney_u(a: list[float], b: list[float]) -> tuple[float, float]:
    """(U of ``a``, two-sided p): normal approximation with tie and continuity
    corrections (scipy's ``mannwhitneyu(a, b, method="asymptotic")``)."""
    n1, n2 = len(a), len(b)
    n = n1 + n2
    u = sum(_average_ranks(list(a) + list(b))[:n1]) - n1 * (n1 + 1) / 2
    ties = sum(t ** 3 - t for t in _counts(list(a) + list(b)))
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return u, 1.0
    z = (abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(variance)
    return u, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def _counts(values: list[float]) -> list[int]:
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return list(counts.values())


def smallest_p(n1: int, n2: int) -> float:
    """The smallest p the test can give for these sample sizes (complete separation)."""
    return mann_whitney_u(list(range(n1)), list(range(n1, n1 + n2)))[1] if n1 and n2 else 1.0
