"""API keys: shown once, stored hashed, verified, revoked, listed with last use."""

from __future__ import annotations

import pytest
from callpilot.server.auth import Role
from callpilot.server.auth.errors import CredentialRejected
from callpilot.server.auth.keys import ApiKeys
from callpilot.server.store import schema
from sqlalchemy import select


async def test_create_verify_and_store_only_the_hash(keys: ApiKeys) -> None:
    record, secret = await keys.create(tenant_id="acme", role=Role.AGENT, name="desk")
    assert secret.startswith("cp_") and record.key_id in secret
    principal = await keys.verify(secret)
    assert (principal.tenant_id, principal.role, principal.subject) == (
        "acme",
        Role.AGENT,
        f"key:{record.key_id}",
    )
    async with keys._store.reading() as conn:
        rows = (await conn.execute(select(schema.api_keys))).all()
    stored = " ".join(str(v) for row in rows for v in row)
    assert secret not in stored
    assert secret.rsplit("_", 1)[1] not in stored


async def test_wrong_malformed_and_revoked_keys_are_refused(keys: ApiKeys) -> None:
    record, secret = await keys.create(tenant_id="acme", role=Role.INTEGRATOR)
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    with pytest.raises(CredentialRejected) as bad:
        await keys.verify(forged)
    assert bad.value.reason == "INVALID_API_KEY"
    with pytest.raises(CredentialRejected) as malformed:
        await keys.verify("cp_nope")
    assert malformed.value.reason == "MALFORMED_API_KEY"
    assert await keys.revoke(record.key_id)
    assert await keys.revoke(record.key_id)  # idempotent
    assert not await keys.revoke("000000000000")
    with pytest.raises(CredentialRejected) as revoked:
        await keys.verify(secret)
    assert revoked.value.reason == "API_KEY_REVOKED"


async def test_list_by_tenant_shows_last_use_and_never_secrets(keys: ApiKeys) -> None:
    used, secret = await keys.create(tenant_id="t1", role=Role.ADMIN, name="ops")
    await keys.create(tenant_id="t2", role=Role.AGENT)
    await keys.verify(secret)
    listed = await keys.list("t1")
    assert [k.key_id for k in listed] == [used.key_id]
    assert listed[0].last_used_time is not None
    assert not hasattr(listed[0], "secret")
    assert {k.tenant_id for k in await keys.list()} >= {"t1", "t2"}


async def test_bad_tenant_or_name_is_refused(keys: ApiKeys) -> None:
    with pytest.raises(ValueError, match="tenant ids"):
        await keys.create(tenant_id="a b", role=Role.AGENT)
    with pytest.raises(ValueError, match="name"):
        await keys.create(tenant_id="acme", role=Role.AGENT, name="x" * 201)
