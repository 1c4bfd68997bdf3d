"""Join tokens: how a customer's browser may start exactly one call.

The public `/call` page must not let anyone on the internet open calls on a
tenant. An integrator (who holds a real key) gets a join token with the call
it creates (CreateCall) and hands it to the customer, e.g. in a link. The
token:

- names one call of one tenant, and allows only StreamCall on that call;
- expires (`DEFAULT_TTL_S` unless the server is configured otherwise);
- is single use: the first StreamCall that presents it consumes it, so a
  token copied from a browser's history cannot start or hijack a call later.

Only the token's SHA-256 is stored. Tokens read ``cpj_<43 url-safe chars>``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from callpilot.server.auth.errors import CredentialRejected
from callpilot.server.auth.principal import Principal, Role
from callpilot.server.store import schema
from callpilot.server.store.base import StoreBase
from sqlalchemy import delete, select, update

JOIN_PREFIX = "cpj_"
JOIN_RE = re.compile(r"^cpj_[A-Za-z0-9_-]{43}$")
DEFAULT_TTL_S = 600


def looks_like_join_token(token: str) -> bool:
    return token.startswith(JOIN_PREFIX)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class JoinTokens:
    def __init__(self, store: StoreBase, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._store = store
        self.ttl_s = ttl_s

    async def mint(self, tenant_id: str, call_id: str) -> tuple[str, datetime]:
        """A new token for the call and when it expires."""
        token = JOIN_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=self.ttl_s)
        async with self._store.writing() as conn:
            await conn.execute(
                schema.join_tokens.insert().values(
                    token_sha256=_digest(token),
                    tenant_id=tenant_id,
                    call_id=call_id,
                    create_time=now,
                    expire_time=expires,
                )
            )
            # Housekeeping: expired tokens are useless; keep the table small.
            await conn.execute(
                delete(schema.join_tokens).where(schema.join_tokens.c.expire_time < now - timedelta(days=1))
            )
        return token, expires

    async def redeem(self, token: str) -> Principal:
        """Consume the token; the principal it stands for (StreamCall on its call only)."""
        if not JOIN_RE.match(token):
            raise CredentialRejected("MALFORMED_JOIN_TOKEN", "the join token is malformed")
        j = schema.join_tokens.c
        now = datetime.now(UTC)
        digest = _digest(token)
        async with self._store.writing() as conn:
            row = (await conn.execute(select(schema.join_tokens).where(j.token_sha256 == digest))).first()
            if row is None:
                raise CredentialRejected("INVALID_JOIN_TOKEN", "the join token is not valid")
            if row.expire_time <= now:
                raise CredentialRejected(
                    "JOIN_TOKEN_EXPIRED", "the join token has expired; ask for a new link"
                )
            # Compare-and-set: of two concurrent redeemers exactly one wins.
            result = await conn.execute(
                update(schema.join_tokens)
                .where(j.token_sha256 == digest, j.used_time.is_(None))
                .values(used_time=now)
            )
            if result.rowcount != 1:
                raise CredentialRejected("JOIN_TOKEN_USED", "the join token was already used")
        return Principal(
            tenant_id=row.tenant_id, role=Role.INTEGRATOR, subject=f"join:{row.call_id}", call_id=row.call_id
        )
