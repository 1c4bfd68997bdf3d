"""Settings of the contact-center connectors, taken from `GatewaySettings`.

The variables (`CALLPILOT_TWILIO_AUTH_TOKEN`, `CALLPILOT_PUBLIC_URL`,
`CALLPILOT_AUDIOHOOK_CLIENT_SECRET`) are gateway settings, declared and
checked in `callpilot.gateway.config` and listed in docs/configuration.md;
this is the connectors' view of them (the secret decoded to bytes).

Policies:

* The Twilio connector is off unless `CALLPILOT_TWILIO_AUTH_TOKEN` is set:
  without the token no request can be proven to come from Twilio, and an
  unverifiable stream is refused rather than trusted.
* `CALLPILOT_PUBLIC_URL` is the address Twilio and Genesys reach the gateway
  at (``https://callpilot.example.com``). Twilio signs the exact URL it
  requested, so behind a TLS-terminating proxy the gateway must know it; when
  unset the URL is rebuilt from the request (`X-Forwarded-Proto`, `Host`).
* AudioHook request signatures are verified when a request carries one and
  `CALLPILOT_AUDIOHOOK_CLIENT_SECRET` (base64, from the Genesys integration) is
  set; a signed request without a configured secret is refused.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from callpilot.gateway.config import GatewayConfigError, GatewaySettings


class ConnectorConfigError(ValueError):
    """A bad connector setting, reported at start-up."""


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    twilio_auth_token: str = ""
    public_url: str = ""
    audiohook_client_secret: bytes = b""
    # How long a new call waits for the server to accept its StreamCall.
    start_timeout_s: float = 15.0
    # How long a finished call waits for the server's `call_ended` (its last finals).
    finish_timeout_s: float = 60.0

    @classmethod
    def from_gateway(cls, settings: GatewaySettings) -> ConnectorSettings:
        """The connectors' view of checked gateway settings (the secret is valid base64 there)."""
        secret = settings.audiohook_client_secret
        return cls(
            twilio_auth_token=settings.twilio_auth_token,
            public_url=settings.public_url,
            audiohook_client_secret=base64.b64decode(secret, validate=True) if secret else b"",
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConnectorSettings:
        """Read from the environment through `GatewaySettings` (raises ConnectorConfigError)."""
        try:
            return cls.from_gateway(GatewaySettings.from_env(env))
        except GatewayConfigError as exc:
            raise ConnectorConfigError(str(exc)) from None
