"""How the SDK reaches a server: the target's scheme, TLS, and the API key.

``https://host:port`` (or ``tls=True``) means TLS, verified against the
system's roots or `ca_file`; a client certificate (`cert_file`/`key_file`)
adds mutual TLS. A bare ``host:port`` or ``http://`` means plaintext, which
is what a loopback development server speaks.

The API key (or a JWT) rides on every RPC as ``authorization: Bearer …``,
added by a client interceptor so no call site can forget it. It comes from
`api_key=` or, when that is not given, from ``CALLPILOT_API_KEY``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

API_KEY_ENV = "CALLPILOT_API_KEY"


def split_target(target: str) -> tuple[str, bool | None]:
    """`target` without a URL scheme, and whether the scheme asked for TLS (None: no scheme)."""
    for scheme, tls in (("https://", True), ("grpcs://", True), ("http://", False), ("grpc://", False)):
        if target.startswith(scheme):
            return target[len(scheme) :].rstrip("/"), tls
    return target, None


def channel_credentials(
    *, ca_file: str | Path | None, cert_file: str | Path | None, key_file: str | Path | None
) -> grpc.ChannelCredentials:
    if (cert_file is None) != (key_file is None):
        raise ValueError("mutual TLS needs both cert_file and key_file")
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca_file).read_bytes() if ca_file else None,
        private_key=Path(key_file).read_bytes() if key_file else None,
        certificate_chain=Path(cert_file).read_bytes() if cert_file else None,
    )


def resolve_api_key(api_key: str | None) -> str | None:
    if api_key is not None:
        return api_key or None
    return os.environ.get(API_KEY_ENV) or None


class _Metadata:
    """Adds fixed metadata (the authorization header) to every RPC."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._metadata = tuple(metadata)

    def _details(self, details: Any) -> Any:
        merged = tuple(details.metadata or ()) + self._metadata
        return details._replace(metadata=grpc.aio.Metadata(*merged))


class _UnaryUnary(_Metadata, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _UnaryStream(_Metadata, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _StreamUnary(_Metadata, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class _StreamStream(_Metadata, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def metadata_interceptors(metadata: Sequence[tuple[str, str]]) -> Any:
    """Interceptors for `grpc.aio.*_channel(interceptors=...)` (typed Any: grpc-stubs' list type is partial)."""
    if not metadata:
        return None
    return [_UnaryUnary(metadata), _UnaryStream(metadata), _StreamUnary(metadata), _StreamStream(metadata)]
