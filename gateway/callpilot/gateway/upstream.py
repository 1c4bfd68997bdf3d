"""How the gateway reaches the Callpilot server: its target and TLS, in one place.

Every SDK client the gateway opens (grpc-web, browser calls, connectors)
comes from `Upstream.client`, so a server behind TLS with a private CA, or
one that asks for a client certificate (mutual TLS), is configured once.
TLS is used for an ``https://`` target, or whenever a CA or a client
certificate is configured (a plain ``host:port`` with a CA file set means
TLS; silently falling back to plaintext would be the surprise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from callpilot.client import AsyncCallpilot


@dataclass(frozen=True, slots=True)
class Upstream:
    target: str
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def tls(self) -> bool | None:
        """True when TLS material is configured; None lets the target's scheme decide."""
        return True if (self.ca_file or self.cert_file) else None

    def client(self, api_key: str) -> AsyncCallpilot:
        """A client acting with `api_key` only ("" for none: never the environment's key)."""
        return AsyncCallpilot(
            self.target,
            api_key=api_key,
            tls=self.tls,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
        )
