"""Building the server's credential checks and TLS from its settings."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
from callpilot.server.auth.interceptor import Authenticator, AuthInterceptor
from callpilot.server.auth.join_tokens import JoinTokens
from callpilot.server.auth.jwt_tokens import JwtSettings, JwtVerifier
from callpilot.server.auth.keys import ApiKeys
from callpilot.server.auth.limits import RateLimiter
from callpilot.server.auth.principal import Principal, Role
from callpilot.server.config import Settings
from callpilot.server.errors import ConfigError
from callpilot.server.store.base import StoreBase

log = logging.getLogger("callpilot.auth")


def build_auth(settings: Settings, store: StoreBase) -> tuple[AuthInterceptor, JoinTokens]:
    """The interceptor every RPC passes, and the join-token issuer CreateCall uses."""
    join = JoinTokens(store, ttl_s=settings.join_token_ttl_s)
    limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    if not settings.auth_enabled:
        anonymous = Principal(tenant_id=settings.tenant_id, role=Role.ADMIN, subject="anonymous")
        if settings.loopback_only:
            log.warning(
                "authentication is OFF: listening on %s without API keys (loopback development mode)",
                settings.host,
            )
        else:
            log.critical(
                "authentication is OFF on a non-loopback address (%s): ANYONE who can reach this port "
                "can read and write every call of tenant %r (CALLPILOT_AUTH=off was set explicitly)",
                settings.host,
                settings.tenant_id,
            )
        return AuthInterceptor(Authenticator(anonymous=anonymous), limiter), join
    jwt: JwtVerifier | None = None
    if settings.jwt_jwks_url or settings.jwt_public_key:
        try:
            jwt = JwtVerifier(
                JwtSettings(
                    audience=settings.jwt_audience,
                    issuer=settings.jwt_issuer,
                    jwks_url=settings.jwt_jwks_url,
                    public_key_pem=_pem(settings.jwt_public_key),
                    tenant_claim=settings.jwt_tenant_claim,
                    role_claim=settings.jwt_role_claim,
                )
            )
        except ValueError as exc:
            raise ConfigError(f"invalid JWT configuration: {exc}") from None
    log.info("authentication is ON (API keys%s, join tokens)", ", JWTs" if jwt else "")
    return AuthInterceptor(Authenticator(keys=ApiKeys(store), jwt=jwt, join=join), limiter), join


def _pem(value: str) -> str:
    """CALLPILOT_JWT_PUBLIC_KEY holds the PEM itself, or the path of a PEM file."""
    if not value or value.lstrip().startswith("-----BEGIN"):
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"CALLPILOT_JWT_PUBLIC_KEY is neither a PEM key nor a readable file: {value}")
    return path.read_text()


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS (and mutual TLS) for the gRPC port; None for plaintext."""
    if not settings.tls_cert:
        return None
    cert = Path(settings.tls_cert).expanduser().read_bytes()
    key = Path(settings.tls_key).expanduser().read_bytes()
    client_ca = Path(settings.tls_client_ca).expanduser().read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
