"""Secrets and signatures, the Standard Webhooks way.

A secret is ``whsec_`` followed by the base64 of 32 random bytes. Each
attempt is signed over ``{webhook-id}.{webhook-timestamp}.{body}`` with
HMAC-SHA256 by the `standardwebhooks` library, the same code receivers use
to verify, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def signed_headers(secret: str, delivery_id: str, when: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt sent at `when`."""
    signature = Webhook(secret).sign(msg_id=delivery_id, timestamp=when, data=body)
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }
