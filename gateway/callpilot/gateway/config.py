"""Gateway settings from `CALLPILOT_*` variables and `callpilot gateway` flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path


class GatewayConfigError(ValueError):
    """A bad gateway configuration, reported at start-up."""


def _default_static_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "clients" / "agent-ui" / "dist"


def _bool(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise GatewayConfigError(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # gRPC target of the Callpilot server.
    server: str = "127.0.0.1:50051"
    # Exact origins allowed by CORS for grpc-web and the JSON API; the
    # gateway's own origin is always allowed.
    allowed_origins: tuple[str, ...] = ()
    # ICE: STUN URLs, and a TURN server with coturn's use-auth-secret REST scheme.
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl_s: int = 3600
    # Offer 127.0.0.1 as an ICE host candidate (development and tests only).
    ice_loopback: bool = False
    # A leg with no audio for this long is ended.
    silence_timeout_s: float = 60.0
    static_dir: Path = field(default_factory=_default_static_dir)

    @property
    def own_origins(self) -> tuple[str, ...]:
        hosts = {self.host, "localhost" if self.host in ("127.0.0.1", "0.0.0.0") else self.host}
        return tuple(f"http://{h}:{self.port}" for h in sorted(hosts))

    def origin_allowed(self, origin: str) -> bool:
        return origin in self.allowed_origins or origin in self.own_origins

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> GatewaySettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}

        def get(name: str) -> str | None:
            raw = env.get(name)
            return raw if raw not in (None, "") else None

        if (v := get("CALLPILOT_GATEWAY_HOST")) is not None:
            values["host"] = v
        if (v := get("CALLPILOT_GATEWAY_PORT")) is not None:
            values["port"] = _int(v, "CALLPILOT_GATEWAY_PORT")
        if (v := get("CALLPILOT_SERVER")) is not None:
            values["server"] = v
        if (v := get("CALLPILOT_ALLOWED_ORIGINS")) is not None:
            values["allowed_origins"] = tuple(o.strip().rstrip("/") for o in v.split(",") if o.strip())
        if (v := get("CALLPILOT_STUN_URLS")) is not None:
            values["stun_urls"] = tuple(u.strip() for u in v.split(",") if u.strip())
        if (v := get("CALLPILOT_TURN_URLS")) is not None:
            values["turn_urls"] = tuple(u.strip() for u in v.split(",") if u.strip())
        if (v := get("CALLPILOT_TURN_SECRET")) is not None:
            values["turn_secret"] = v
        if (v := get("CALLPILOT_TURN_TTL_S")) is not None:
            values["turn_ttl_s"] = _int(v, "CALLPILOT_TURN_TTL_S")
        if (v := get("CALLPILOT_ICE_LOOPBACK")) is not None:
            values["ice_loopback"] = _bool(v, "CALLPILOT_ICE_LOOPBACK")
        if (v := get("CALLPILOT_SILENCE_TIMEOUT_S")) is not None:
            values["silence_timeout_s"] = float(v)
        if (v := get("CALLPILOT_STATIC_DIR")) is not None:
            values["static_dir"] = Path(v)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 <= self.port < 65536:
            raise GatewayConfigError(f"the gateway port must be 0..65535, got {self.port}")
        if self.turn_urls and not self.turn_secret:
            raise GatewayConfigError(
                "CALLPILOT_TURN_URLS is set but CALLPILOT_TURN_SECRET is not (coturn use-auth-secret)"
            )
        if self.turn_ttl_s < 60:
            raise GatewayConfigError("CALLPILOT_TURN_TTL_S must be at least 60 seconds")
        for origin in self.allowed_origins:
            if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise GatewayConfigError(
                    f"allowed origin {origin!r} must look like https://host[:port] (no path)"
                )


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise GatewayConfigError(f"{name}={raw!r} is not a whole number") from None
