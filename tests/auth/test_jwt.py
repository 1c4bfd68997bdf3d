"""JWT verification: every way a token can be wrong is UNAUTHENTICATED with its reason."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from callpilot.server.auth import Role
from callpilot.server.auth.errors import CredentialRejected
from callpilot.server.auth.jwt_tokens import JwtSettings, JwtVerifier
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUD = "callpilot"
ISS = "https://idp.example"


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "agent-7",
        "aud": AUD,
        "iss": ISS,
        "exp": now + 300,
        "iat": now,
        "tenant": "acme",
        "role": "agent",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, alg: str, kid: str, **over: Any) -> str:
    return jwt.encode(claims(**over), key, algorithm=alg, headers={"kid": kid})


async def test_rs256_and_es256_from_jwks(
    jwks_url: str, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier = JwtVerifier(JwtSettings(audience=AUD, issuer=ISS, jwks_url=jwks_url))
    p = await verifier.verify(sign(rsa_key, "RS256", "rsa-1"))
    assert (p.tenant_id, p.role, p.subject) == ("acme", Role.AGENT, "jwt:agent-7")
    p2 = await verifier.verify(sign(ec_key, "ES256", "ec-1", role="admin", tenant="beta"))
    assert (p2.tenant_id, p2.role) == ("beta", Role.ADMIN)


async def test_pem_key(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = JwtVerifier(JwtSettings(audience=AUD, public_key_pem=public_pem(rsa_key)))
    assert (await verifier.verify(sign(rsa_key, "RS256", "any"))).tenant_id == "acme"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "TOKEN_EXPIRED"),
        ("not_yet_valid", "TOKEN_NOT_YET_VALID"),
        ("wrong_audience", "WRONG_AUDIENCE"),
        ("wrong_issuer", "WRONG_ISSUER"),
        ("no_exp", "INVALID_TOKEN"),
        ("alg_none", "INVALID_TOKEN"),
        ("hs256_with_public_key", "INVALID_TOKEN"),
        ("other_signer", "INVALID_TOKEN"),
        ("no_tenant", "INVALID_TOKEN"),
        ("bad_role", "INVALID_TOKEN"),
        ("garbage", "INVALID_TOKEN"),
    ],
)
async def test_bad_tokens(case: str, reason: str, rsa_key: rsa.RSAPrivateKey) -> None:
    pem = public_pem(rsa_key)
    verifier = JwtVerifier(JwtSettings(audience=AUD, issuer=ISS, public_key_pem=pem))
    now = int(time.time())
    if case == "expired":
        token = sign(rsa_key, "RS256", "k", exp=now - 120)
    elif case == "not_yet_valid":
        token = sign(rsa_key, "RS256", "k", nbf=now + 600)
    elif case == "wrong_audience":
        token = sign(rsa_key, "RS256", "k", aud="someone-else")
    elif case == "wrong_issuer":
        token = sign(rsa_key, "RS256", "k", iss="https://evil.example")
    elif case == "no_exp":
        token = sign(rsa_key, "RS256", "k", exp=None)
    elif case == "alg_none":
        header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        token = f"{header}.{_b64(json.dumps(claims()).encode())}."
    elif case == "hs256_with_public_key":
        # The classic confusion: HMAC "signed" with the server's public key as secret.
        import hashlib
        import hmac

        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims()).encode())
        mac = hmac.new(pem.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
        token = f"{header}.{body}.{_b64(mac)}"
    elif case == "other_signer":
        token = sign(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", "k")
    elif case == "no_tenant":
        token = sign(rsa_key, "RS256", "k", tenant=None)
    elif case == "bad_role":
        token = sign(rsa_key, "RS256", "k", role="superuser")
    else:
        token = "not.a.jwt"
    with pytest.raises(CredentialRejected) as rejected:
        await verifier.verify(token)
    assert rejected.value.reason == reason
    assert token not in rejected.value.message


def test_settings_need_audience_and_one_key_source() -> None:
    with pytest.raises(ValueError, match="audience"):
        JwtSettings(audience="", jwks_url="http://127.0.0.1:1/jwks")
    with pytest.raises(ValueError, match="exactly one"):
        JwtSettings(audience=AUD)
    with pytest.raises(ValueError, match="PEM"):
        JwtVerifier(JwtSettings(audience=AUD, public_key_pem="not a key"))
