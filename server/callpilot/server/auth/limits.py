"""Per-tenant request rate limits, so one tenant's flood cannot starve another.

A token bucket per tenant: `rate` requests per second on average, bursts of
up to `burst`. A request over the limit is refused at once with
RESOURCE_EXHAUSTED and a RetryInfo saying when a token will be there; it is
never queued (queueing would turn a flood into latency for everyone).

The buckets are per instance: with N instances behind a balancer a tenant
gets up to N times the rate in total. That is the stated trade-off for not putting
a Redis round trip in front of every RPC; concurrent-call limits, which
matter more for capacity, are enforced per tenant by the session manager.
A StreamCall counts as one request however long the call lasts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token for `key`: 0.0 if granted, else seconds until one is available."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate
