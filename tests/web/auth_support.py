"""A real `callpilot serve` with CALLPILOT_AUTH=on, keys made by `callpilot keys create` and
JWTs signed by a test identity provider (ES256), for the gateway's auth tests (grpc-web,
browser calls, the agent app)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from support import ServerProcess, create_key

JWT_AUDIENCE = "callpilot-desk"
JWT_ISSUER = "https://idp.example"


@dataclass
class AuthServer:
    proc: ServerProcess
    integrator: str
    agent: str
    admin: str
    other_agent: str  # an agent of another tenant ("acme")
    idp_key: ec.EllipticCurvePrivateKey  # the identity provider's signing key (ES256)

    def jwt(self, **claims: object) -> str:
        """A JWT for an agent of tenant "default", as an identity provider would sign it."""
        now = int(time.time())
        body: dict[str, object] = {
            "sub": "agent-42",
            "aud": JWT_AUDIENCE,
            "iss": JWT_ISSUER,
            "exp": now + 600,
            "iat": now,
            "tenant": "default",
            "role": "agent",
        }
        body.update(claims)
        return pyjwt.encode(body, self.idp_key, algorithm="ES256")


@contextmanager
def auth_server(tmp: Path, log: Path, **extra_env: str) -> Iterator[AuthServer]:
    idp_key = ec.generate_private_key(ec.SECP256R1())
    pem = idp_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp / "idp.pem").write_bytes(pem)
    env = {
        "CALLPILOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'auth.sqlite'}",
        "CALLPILOT_DATA_DIR": str(tmp),
        "CALLPILOT_STT": "null",
        "CALLPILOT_AUTH": "on",
        "CALLPILOT_JWT_PUBLIC_KEY": str(tmp / "idp.pem"),
        "CALLPILOT_JWT_AUDIENCE": JWT_AUDIENCE,
        "CALLPILOT_JWT_ISSUER": JWT_ISSUER,
        **extra_env,
    }
    proc = ServerProcess(env, log).start()
    try:
        yield AuthServer(
            proc,
            integrator=create_key(env, "default", "integrator"),
            agent=create_key(env, "default", "agent"),
            admin=create_key(env, "default", "admin"),
            other_agent=create_key(env, "acme", "agent"),
            idp_key=idp_key,
        )
    finally:
        proc.stop()
