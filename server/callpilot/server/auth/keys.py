"""API keys: creation, listing, revocation and verification.

A key reads ``cp_<key_id>_<secret>``. The key id is public (it names the key
in listings and logs); the secret is shown once, at creation, and only its
SHA-256 is stored. A verified key is cached for `CACHE_TTL_S` so a busy
integration does not cost a database round trip per RPC; revocation
therefore takes effect within that many seconds on every instance.
`last_used_time` is written at most once per `LAST_USED_RESOLUTION_S` per key
for the same reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from callpilot.server.auth.errors import CredentialRejected
from callpilot.server.auth.principal import Principal, Role
from callpilot.server.store import schema
from callpilot.server.store.base import StoreBase
from sqlalchemy import select, update

KEY_PREFIX = "cp_"
KEY_RE = re.compile(r"^cp_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
CACHE_TTL_S = 5.0
LAST_USED_RESOLUTION_S = 60.0
TENANT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as listed: never its secret."""

    key_id: str
    tenant_id: str
    role: Role
    name: str
    create_time: datetime
    last_used_time: datetime | None
    revoke_time: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


@dataclass(slots=True)
class _Cached:
    principal: Principal
    until: float


class ApiKeys:
    """Keys on the Callpilot database (the same one as the calls)."""

    def __init__(self, store: StoreBase) -> None:
        self._store = store
        self._cache: dict[str, _Cached] = {}
        self._last_used_written: dict[str, float] = {}

    async def create(self, *, tenant_id: str, role: Role, name: str = "") -> tuple[ApiKey, str]:
        """A new key and its secret; the secret is not recoverable afterwards."""
        if not TENANT_RE.match(tenant_id):
            raise ValueError("tenant ids are 1 to 64 characters of letters, digits, '_' and '-'")
        if len(name) > 200:
            raise ValueError("a key's name is at most 200 characters")
        key_id = secrets.token_hex(6)
        secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        now = datetime.now(UTC)
        async with self._store.writing() as conn:
            await conn.execute(
                schema.api_keys.insert().values(
                    key_id=key_id,
                    tenant_id=tenant_id,
                    role=role.value,
                    name=name,
                    secret_sha256=_digest(secret),
                    create_time=now,
                )
            )
        return ApiKey(key_id, tenant_id, role, name, now, None, None), secret

    async def list(self, tenant_id: str | None = None) -> list[ApiKey]:
        k = schema.api_keys.c
        stmt = select(schema.api_keys).order_by(k.tenant_id, k.create_time)
        if tenant_id is not None:
            stmt = stmt.where(k.tenant_id == tenant_id)
        async with self._store.reading() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            ApiKey(
                r.key_id, r.tenant_id, Role(r.role), r.name, r.create_time, r.last_used_time, r.revoke_time
            )
            for r in rows
        ]

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; False if no such key. Idempotent."""
        k = schema.api_keys.c
        async with self._store.writing() as conn:
            found = (await conn.execute(select(k.revoke_time).where(k.key_id == key_id))).first()
            if found is None:
                return False
            if found.revoke_time is None:
                await conn.execute(
                    update(schema.api_keys).where(k.key_id == key_id).values(revoke_time=datetime.now(UTC))
                )
        self._cache = {s: c for s, c in self._cache.items() if c.principal.subject != f"key:{key_id}"}
        return True

    async def verify(self, key: str) -> Principal:
        """The principal a key stands for; raises CredentialRejected otherwise."""
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached.until > now:
            return cached.principal
        match = KEY_RE.match(key)
        if match is None:
            raise CredentialRejected(
                "MALFORMED_API_KEY", "the API key is malformed; keys look like cp_<id>_<secret>"
            )
        key_id = match.group(1)
        k = schema.api_keys.c
        async with self._store.reading() as conn:
            row = (await conn.execute(select(schema.api_keys).where(k.key_id == key_id))).first()
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(key)):
            raise CredentialRejected("INVALID_API_KEY", "the API key is not valid")
        if row.revoke_time is not None:
            raise CredentialRejected("API_KEY_REVOKED", f"the API key {key_id} was revoked")
        principal = Principal(tenant_id=row.tenant_id, role=Role(row.role), subject=f"key:{key_id}")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = _Cached(principal, now + CACHE_TTL_S)
        if now - self._last_used_written.get(key_id, -LAST_USED_RESOLUTION_S) >= LAST_USED_RESOLUTION_S:
            self._last_used_written[key_id] = now
            await self._touch(key_id)
        return principal

    async def _touch(self, key_id: str) -> None:
        k = schema.api_keys.c
        try:
            async with self._store.writing() as conn:
                await conn.execute(
                    update(schema.api_keys).where(k.key_id == key_id).values(last_used_time=datetime.now(UTC))
                )
        except asyncio.CancelledError:
            raise
        except Exception:  # last-used is informational: never fail an RPC over it
            pass
