"""The per-tenant token bucket."""

from __future__ import annotations

import pytest
from callpilot.server.auth.limits import RateLimiter


def test_bursts_then_refuses_with_the_wait_then_refills() -> None:
    limiter = RateLimiter(rate=10, burst=3)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a", now=0.0)
    assert wait == pytest.approx(0.1)
    assert limiter.take("a", now=0.1) == 0.0


def test_one_tenant_does_not_use_another_tenants_tokens() -> None:
    limiter = RateLimiter(rate=1, burst=1)
    assert limiter.take("flood", now=0.0) == 0.0
    assert limiter.take("flood", now=0.0) > 0
    assert limiter.take("quiet", now=0.0) == 0.0


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)
