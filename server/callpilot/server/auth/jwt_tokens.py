"""JWTs from a company's identity provider, for agents who sign in there.

Verification is PyJWT's, never hand-written JOSE. Only asymmetric
algorithms are accepted (RS256, ES256): with them a leaked verification key
cannot mint tokens, and refusing HS256 outright closes the classic
"public key used as HMAC secret" confusion; ``alg: none`` is refused by the
same allow-list. `exp` and `aud` are required; `iss` is required when an
issuer is configured; `nbf`/`iat` are honoured when present. A small leeway
(`LEEWAY_S`) absorbs clock skew between the IdP and us.

Keys come from a JWKS URL (fetched off the event loop, cached by PyJWT's
client and refreshed when a token names an unknown `kid`) or from one PEM.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import jwt
from callpilot.server.auth.errors import CredentialRejected
from callpilot.server.auth.principal import Principal, Role

ALGORITHMS = ["RS256", "ES256"]
LEEWAY_S = 10
JWKS_CACHE_S = 300


@dataclass(frozen=True, slots=True)
class JwtSettings:
    audience: str
    issuer: str = ""
    jwks_url: str = ""
    public_key_pem: str = ""
    tenant_claim: str = "tenant"
    role_claim: str = "role"

    def __post_init__(self) -> None:
        if not self.audience:
            raise ValueError("JWT verification needs an audience (CALLPILOT_JWT_AUDIENCE)")
        if bool(self.jwks_url) == bool(self.public_key_pem):
            raise ValueError("set exactly one of CALLPILOT_JWT_JWKS_URL and CALLPILOT_JWT_PUBLIC_KEY")


class JwtVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self._s = settings
        self._jwks: jwt.PyJWKClient | None = None
        self._pem_key: object | None = None
        if settings.jwks_url:
            self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=JWKS_CACHE_S, timeout=5)
        else:
            try:
                self._pem_key = jwt.algorithms.get_default_algorithms()["RS256"].prepare_key(
                    settings.public_key_pem
                )
            except Exception:
                try:
                    self._pem_key = jwt.algorithms.get_default_algorithms()["ES256"].prepare_key(
                        settings.public_key_pem
                    )
                except Exception as exc:
                    raise ValueError("CALLPILOT_JWT_PUBLIC_KEY is not a PEM RSA or EC public key") from exc

    async def _key(self, token: str) -> object:
        if self._pem_key is not None:
            return self._pem_key
        assert self._jwks is not None
        try:
            # PyJWKClient fetches with urllib (blocking): keep it off the loop.
            signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise CredentialRejected(
                "JWKS_UNAVAILABLE", "the identity provider's keys could not be fetched; try again"
            ) from exc
        except jwt.PyJWKClientError as exc:
            raise CredentialRejected("INVALID_TOKEN", f"the token's signing key is unknown: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise CredentialRejected("INVALID_TOKEN", f"the token is malformed: {exc}") from exc
        return signing.key

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise CredentialRejected(
                "INVALID_TOKEN", "the bearer token is neither an API key nor a JWT"
            ) from exc
        if header.get("alg") not in ALGORITHMS:
            raise CredentialRejected(
                "INVALID_TOKEN",
                f"tokens signed with {header.get('alg')!r} are not accepted; use RS256 or ES256",
            )
        key = await self._key(token)
        options: dict[str, object] = {"require": ["exp", "aud"] + (["iss"] if self._s.issuer else [])}
        try:
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=ALGORITHMS,
                audience=self._s.audience,
                issuer=self._s.issuer or None,
                leeway=LEEWAY_S,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError as exc:
            raise CredentialRejected("TOKEN_EXPIRED", "the token has expired; sign in again") from exc
        except jwt.ImmatureSignatureError as exc:
            raise CredentialRejected("TOKEN_NOT_YET_VALID", "the token is not valid yet (nbf/iat)") from exc
        except jwt.InvalidAudienceError as exc:
            raise CredentialRejected("WRONG_AUDIENCE", "the token was issued for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise CredentialRejected("WRONG_ISSUER", "the token was issued by another issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise CredentialRejected("INVALID_TOKEN", f"the token lacks the {exc.claim!r} claim") from exc
        except jwt.PyJWTError as exc:
            raise CredentialRejected("INVALID_TOKEN", f"the token is not valid: {exc}") from exc
        tenant = claims.get(self._s.tenant_claim)
        role = claims.get(self._s.role_claim)
        if not isinstance(tenant, str) or not tenant:
            raise CredentialRejected("INVALID_TOKEN", f"the token has no {self._s.tenant_claim!r} claim")
        try:
            parsed_role = Role.parse(role) if isinstance(role, str) else None
        except ValueError:
            parsed_role = None
        if parsed_role is None:
            raise CredentialRejected(
                "INVALID_TOKEN", f"the token's {self._s.role_claim!r} claim is not integrator, agent or admin"
            )
        subject = claims.get("sub")
        return Principal(
            tenant_id=tenant,
            role=parsed_role,
            subject=f"jwt:{subject}" if isinstance(subject, str) else "jwt",
        )
