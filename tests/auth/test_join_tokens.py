"""Join tokens: one call, single use, expiring, stored hashed."""

from __future__ import annotations

import asyncio

import pytest
from callpilot.server.auth.errors import CredentialRejected
from callpilot.server.auth.join_tokens import JoinTokens
from callpilot.server.auth.keys import ApiKeys
from callpilot.server.store import schema
from sqlalchemy import select


@pytest.fixture
async def tokens(keys: ApiKeys) -> JoinTokens:
    return JoinTokens(keys._store)


async def test_a_token_streams_its_call_once(tokens: JoinTokens) -> None:
    token, _ = await tokens.mint("acme", "call-1")
    principal = await tokens.redeem(token)
    assert (principal.tenant_id, principal.call_id) == ("acme", "call-1")
    assert principal.may_call("/callpilot.v1.AssistService/StreamCall")
    assert not principal.may_call("/callpilot.v1.AssistService/WatchCall")
    assert not principal.may_call("/callpilot.v1.DirectoryService/GetCustomer")
    with pytest.raises(CredentialRejected) as reused:
        await tokens.redeem(token)
    assert reused.value.reason == "JOIN_TOKEN_USED"
    async with tokens._store.reading() as conn:
        stored = " ".join(
            str(v) for row in (await conn.execute(select(schema.join_tokens))).all() for v in row
        )
    assert token not in stored


async def test_concurrent_redeems_have_one_winner(tokens: JoinTokens) -> None:
    token, _ = await tokens.mint("acme", "call-2")
    results = await asyncio.gather(*(tokens.redeem(token) for _ in range(5)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, CredentialRejected) for r in results if isinstance(r, BaseException))


async def test_expired_unknown_and_malformed_tokens(keys: ApiKeys) -> None:
    short = JoinTokens(keys._store, ttl_s=0)
    token, _ = await short.mint("acme", "call-3")
    with pytest.raises(CredentialRejected) as expired:
        await short.redeem(token)
    assert expired.value.reason == "JOIN_TOKEN_EXPIRED"
    with pytest.raises(CredentialRejected) as unknown:
        await short.redeem("cpj_" + "A" * 43)
    assert unknown.value.reason == "INVALID_JOIN_TOKEN"
    with pytest.raises(CredentialRejected) as malformed:
        await short.redeem("cpj_short")
    assert malformed.value.reason == "MALFORMED_JOIN_TOKEN"
