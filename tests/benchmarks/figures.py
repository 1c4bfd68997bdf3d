"""Shared by the benchmark scripts: the support call they speak, and percentiles.

The scripts print figures (they are not tests); keeping the spoken script and
the percentile definition in one place keeps their tables comparable.
"""

from __future__ import annotations

# A customer asking about an order by number and for a refund (the demo data
# has order 78901 for Maria Garcia).
SUPPORT_CALL_LINES = [
    "Hi, my name is Maria Garcia.",
    "I am calling about my order seven eight nine oh one.",
    "The headphones arrived broken and I would like a refund please.",
]


def pct(values: list[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def row(name: str, values_s: list[float], *, width: int = 22, decimals: int = 1) -> str:
    """A markdown table row: n, then p50/p95/p99 in milliseconds of `values_s` (seconds)."""
    ms = [v * 1000 for v in values_s]
    cells = " | ".join(f"{pct(ms, q):>8.{decimals}f}" for q in (0.5, 0.95, 0.99))
    return f"| {name:<{width}} | {len(ms):>5} | {cells} |"
