"""ICE server list for browsers, with short-lived TURN credentials.

A TURN server is an open relay unless it authenticates its users, and a
browser page cannot keep a long-lived secret. coturn's `use-auth-secret`
scheme (the "TURN REST API" draft) solves both: the gateway and coturn share
one secret, and the gateway mints per-request credentials that coturn can
verify on its own and that stop working at a time written into the username:

    username   = "<unix expiry time>:<opaque user id>"
    credential = base64(HMAC-SHA1(secret, username))

No state is shared between the gateway and coturn beyond the secret, so any
number of gateways can mint credentials for any number of coturn servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from callpilot.gateway.config import GatewaySettings


@dataclass(frozen=True, slots=True)
class TurnCredential:
    username: str
    credential: str
    expires_at: int


def turn_credential(secret: str, ttl_s: int, *, user: str = "", now: float | None = None) -> TurnCredential:
    """Mint a coturn `use-auth-secret` credential valid for `ttl_s` seconds from `now`."""
    expires_at = int(now if now is not None else time.time()) + ttl_s
    username = f"{expires_at}:{user}" if user else str(expires_at)
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode("ascii"), expires_at)


def browser_ice_servers(settings: GatewaySettings, *, now: float | None = None) -> dict[str, Any]:
    """The body of `GET /api/webrtc/ice-servers`: RTCConfiguration.iceServers plus the expiry.

    Each request gets its own opaque user id so coturn's logs can tell
    sessions apart without the gateway revealing anything about the caller.
    """
    servers: list[dict[str, Any]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    body: dict[str, Any] = {"iceServers": servers}
    if settings.turn_urls:
        cred = turn_credential(settings.turn_secret, settings.turn_ttl_s, user=secrets.token_hex(8), now=now)
        servers.append(
            {"urls": list(settings.turn_urls), "username": cred.username, "credential": cred.credential}
        )
        body["expiresAt"] = cred.expires_at
        body["ttlSeconds"] = settings.turn_ttl_s
    return body
