"""Settings of the contact-center connectors, read from `CALLPILOT_*` variables.

Kept apart from the gateway's `GatewaySettings` on purpose (that file is being
converted to pydantic-settings); the coordinator will move these fields there.

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
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass


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
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConnectorSettings:
        env = os.environ if env is None else env
        public_url = env.get("CALLPILOT_PUBLIC_URL", "").strip().rstrip("/")
        if public_url and not public_url.startswith(("http://", "https://")):
            raise ConnectorConfigError(
                f"CALLPILOT_PUBLIC_URL={public_url!r} must look like https://host[:port]"
            )
        raw_secret = env.get("CALLPILOT_AUDIOHOOK_CLIENT_SECRET", "").strip()
        try:
            secret = base64.b64decode(raw_secret, validate=True) if raw_secret else b""
        except (binascii.Error, ValueError):
            raise ConnectorConfigError(
                "CALLPILOT_AUDIOHOOK_CLIENT_SECRET must be the base64 client secret of the "
                "Genesys AudioHook integration"
            ) from None
        return cls(
            twilio_auth_token=env.get("CALLPILOT_TWILIO_AUTH_TOKEN", "").strip(),
            public_url=public_url,
            audiohook_client_secret=secret,
        )
