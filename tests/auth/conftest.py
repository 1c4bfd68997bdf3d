"""Fixtures for credential tests: key stores on both backends, signing keys, a JWKS server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from callpilot.server.auth.keys import ApiKeys
from callpilot.server.store import Store
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def keys(db_url: str) -> AsyncIterator[ApiKeys]:
    store = await Store.open(db_url)
    try:
        yield ApiKeys(store)
    finally:
        await store.close()


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def jwks_url(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> AsyncIterator[str]:
    """A loopback identity provider serving its JWKS the standard way (RFC 7517)."""
    rsa_jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    rsa_jwk.update(kid="rsa-1", use="sig", alg="RS256")
    ec_jwk = json.loads(ECAlgorithm.to_jwk(ec_key.public_key()))
    ec_jwk.update(kid="ec-1", use="sig", alg="ES256")

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [rsa_jwk, ec_jwk]})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/.well-known/jwks.json"
    finally:
        await runner.cleanup()
