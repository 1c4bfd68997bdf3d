"""The one place every RPC is authenticated and authorised.

Order of checks, each with its status and an ErrorInfo reason:

1. health and reflection pass untouched (load balancers, grpcurl);
2. no or an unusable ``authorization: Bearer …`` header → UNAUTHENTICATED;
3. a credential whose role may not call the method → PERMISSION_DENIED;
3b. a tenant over its request rate → RESOURCE_EXHAUSTED with a RetryInfo;
4. otherwise the handler runs with `current_principal` set, and everything
   it does (store queries, bus subscriptions, directory lookups) is scoped
   to that principal's tenant.

The check runs once per RPC, before the handler, so a StreamCall pays it once
for the whole call and nothing per audio message.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from callpilot.server.api.status import abort
from callpilot.server.auth.errors import CredentialRejected, PermissionDenied, RateLimited, Unauthenticated
from callpilot.server.auth.join_tokens import JoinTokens, looks_like_join_token
from callpilot.server.auth.jwt_tokens import JwtVerifier
from callpilot.server.auth.keys import ApiKeys, looks_like_key
from callpilot.server.auth.limits import RateLimiter
from callpilot.server.auth.principal import Principal, current_principal, is_public
from callpilot.server.errors import CallpilotError

log = logging.getLogger("callpilot.auth")

REJECT_READ_S = 2.0

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    Ctx = grpc.aio.ServicerContext[Any, Any]


def bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of the first ``authorization: Bearer <token>`` header, if any."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode() if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise CredentialRejected(
            "MALFORMED_AUTHORIZATION", "the authorization header must read 'Bearer <API key or token>'"
        )
    return None


class Authenticator:
    """Turns a request's metadata into a Principal.

    With `anonymous` set (auth off), every caller is that principal and
    credentials are not looked at: the mode for a loopback development server.
    """

    def __init__(
        self,
        *,
        keys: ApiKeys | None = None,
        jwt: JwtVerifier | None = None,
        join: JoinTokens | None = None,
        anonymous: Principal | None = None,
    ) -> None:
        self._keys = keys
        self._jwt = jwt
        self._join = join
        self._anonymous = anonymous

    @property
    def enabled(self) -> bool:
        return self._anonymous is None

    async def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal:
        if self._anonymous is not None:
            return self._anonymous
        token = bearer(metadata)
        if token is None:
            raise CredentialRejected(
                "MISSING_CREDENTIALS",
                "this server requires authentication: send 'authorization: Bearer <API key or token>'",
            )
        if looks_like_join_token(token):
            if self._join is None:
                raise CredentialRejected("INVALID_JOIN_TOKEN", "this server does not accept join tokens")
            return await self._join.redeem(token)
        if looks_like_key(token):
            if self._keys is None:
                raise CredentialRejected("INVALID_API_KEY", "this server does not accept API keys")
            return await self._keys.verify(token)
        if self._jwt is None:
            raise CredentialRejected(
                "INVALID_TOKEN", "the bearer token is not an API key and this server accepts no JWTs"
            )
        return await self._jwt.verify(token)


def _rejecting(handler: Handler, err: CallpilotError) -> Handler:
    """`handler` with its behaviour replaced by aborting with `err` (same RPC shape)."""

    async def unary(request: Any, context: Ctx) -> Any:
        await abort(context, err)

    async def streaming(request: Any, context: Ctx) -> AsyncIterator[Any]:
        await abort(context, err)
        yield  # pragma: no cover - makes this an async generator

    async def after_first(requests: Any, context: Ctx) -> AsyncIterator[Any]:
        # Read the client's first message before refusing: grpcio's asyncio client
        # reports INTERNAL instead of our status when its first write races an
        # early end of the RPC (grpc/grpc#36066). Bounded, so a silent client
        # is refused all the same.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(REJECT_READ_S):
                async for _ in requests:
                    break
        await abort(context, err)
        yield  # pragma: no cover - makes this an async generator

    async def unary_after_first(requests: Any, context: Ctx) -> Any:
        async for _ in after_first(requests, context):
            pass  # pragma: no cover - aborts before yielding

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            after_first, handler.request_deserializer, handler.response_serializer
        )
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(
            unary_after_first, handler.request_deserializer, handler.response_serializer
        )
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            streaming, handler.request_deserializer, handler.response_serializer
        )
    return grpc.unary_unary_rpc_method_handler(
        unary, handler.request_deserializer, handler.response_serializer
    )


def _with_principal(behaviour: Callable[..., Any], principal: Principal) -> Callable[..., Any]:
    """Wrap a handler so it runs with `current_principal` set, in its own task."""
    if inspect.isasyncgenfunction(behaviour):

        async def gen(request: Any, context: Ctx) -> AsyncIterator[Any]:
            current_principal.set(principal)
            async for item in behaviour(request, context):
                yield item

        return gen

    async def call(request: Any, context: Ctx) -> Any:
        current_principal.set(principal)
        return await behaviour(request, context)

    return call


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, authenticator: Authenticator, limiter: RateLimiter | None = None) -> None:
        self._auth = authenticator
        self._limiter = limiter

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is None or is_public(method):
            return handler
        try:
            principal = await self._auth.authenticate(handler_call_details.invocation_metadata)
        except CredentialRejected as rejected:
            log.info("refused %s: %s (%s)", method, rejected.reason, rejected.message)
            return _rejecting(handler, Unauthenticated(rejected.reason, rejected.message))
        if not principal.may_call(method):
            log.info("refused %s to %s (role %s)", method, principal.subject, principal.role.value)
            short = method.rsplit("/", 1)[-1]
            return _rejecting(
                handler,
                PermissionDenied(
                    "ROLE_NOT_ALLOWED",
                    f"the {principal.role.value} role may not call {short}; use a key with a role that may",
                    {"role": principal.role.value, "method": short},
                ),
            )
        if self._limiter is not None:
            wait = self._limiter.take(principal.tenant_id)
            if wait > 0:
                return _rejecting(handler, RateLimited(wait, self._limiter.rate))
        replacements: dict[str, Any] = {}
        for field in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behaviour = getattr(handler, field)
            if behaviour is not None:
                replacements[field] = _with_principal(behaviour, principal)
        return handler._replace(**replacements)  # type: ignore[attr-defined,no-any-return]
