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


def test_auth_must_be_chosen_off_loopback() -> None:
    from callpilot.server.config import Settings
    from callpilot.server.errors import ConfigError

    assert not Settings.from_env({}).auth_enabled  # loopback: off by default
    with pytest.raises(ConfigError, match="CALLPILOT_AUTH=on"):
        Settings.from_env({"CALLPILOT_HOST": "0.0.0.0"})
    assert not Settings.from_env({"CALLPILOT_HOST": "0.0.0.0", "CALLPILOT_AUTH": "off"}).auth_enabled
    assert Settings.from_env({"CALLPILOT_HOST": "0.0.0.0", "CALLPILOT_AUTH": "on"}).auth_enabled
    assert Settings.from_env({"CALLPILOT_HOST": "::1"}).loopback_only
    with pytest.raises(ConfigError, match="CALLPILOT_AUTH must be on or off"):
        Settings.from_env({"CALLPILOT_AUTH": "maybe"})


def test_tls_and_jwt_settings_are_checked_together(tmp_path: object) -> None:
    from callpilot.server.config import Settings
    from callpilot.server.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        Settings.from_env(
            {
                "CALLPILOT_TLS_CERT": "/nonexistent/cert.pem",
                "CALLPILOT_JWT_JWKS_URL": "http://127.0.0.1:1/jwks",
                "CALLPILOT_REDIS_URL": "http://nope",
            }
        )
    text = str(err.value)
    assert "CALLPILOT_TLS_KEY" in text
    assert "not a readable file" in text
    assert "CALLPILOT_JWT_AUDIENCE" in text
    assert "CALLPILOT_REDIS_URL" in text
