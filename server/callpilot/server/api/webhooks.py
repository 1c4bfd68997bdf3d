"""WebhookService: a tenant's webhook endpoints and their deliveries.

The tenant is the authenticated caller's (`current_principal`), or the
server's own tenant when authentication is off.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import grpc
from callpilot.server.api.status import unary
from callpilot.server.auth.principal import current_principal
from callpilot.server.errors import InvalidArgument, NotFound, Violation
from callpilot.server.store import convert
from callpilot.server.webhooks import outbox, payloads
from callpilot.server.webhooks.signing import new_secret
from callpilot.v1 import webhook_service_pb2 as pb
from callpilot.v1 import webhook_service_pb2_grpc as pb_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

Ctx = grpc.aio.ServicerContext[Any, Any]

MAX_URL = 2000
MAX_DESCRIPTION = 500
UPDATABLE = ("url", "event_types", "enabled", "description")


def _url(value: str, field: str = "url") -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(Violation(field, "the URL to POST events to is required", "REQUIRED"))
    if len(value) > MAX_URL:
        raise InvalidArgument(Violation(field, f"at most {MAX_URL} characters", "TOO_LONG"))
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            Violation(field, f"must be an http:// or https:// URL with a host, got {value!r}", "INVALID_URL")
        )
    return value


def _event_types(values: list[str], field: str = "event_types") -> list[str]:
    cleaned = list(dict.fromkeys(v.strip() for v in values if v.strip()))
    if not cleaned:
        raise InvalidArgument(
            Violation(field, f"name at least one event type: {', '.join(payloads.EVENT_TYPES)}", "REQUIRED")
        )
    unknown = [v for v in cleaned if v not in payloads.EVENT_TYPES]
    if unknown:
        raise InvalidArgument(
            Violation(
                field,
                f"unknown event type {unknown[0]!r}; use {', '.join(payloads.EVENT_TYPES)}",
                "UNKNOWN_EVENT_TYPE",
            )
        )
    return cleaned


def _description(value: str) -> str:
    if len(value) > MAX_DESCRIPTION:
        raise InvalidArgument(Violation("description", f"at most {MAX_DESCRIPTION} characters", "TOO_LONG"))
    return value


def _endpoint_id(value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(Violation("endpoint_id", "endpoint_id is required", "REQUIRED"))
    if len(value) > 40:
        raise InvalidArgument(Violation("endpoint_id", "at most 40 characters", "TOO_LONG"))
    return value


def _not_found(endpoint_id: str) -> NotFound:
    return NotFound(
        f"no webhook endpoint {endpoint_id!r}; ListWebhookEndpoints shows this tenant's endpoints",
        reason="WEBHOOK_ENDPOINT_NOT_FOUND",
        metadata={"endpoint_id": endpoint_id},
    )


def endpoint_pb(e: outbox.Endpoint) -> pb.WebhookEndpoint:
    return pb.WebhookEndpoint(
        endpoint_id=e.endpoint_id,
        url=e.url,
        event_types=list(e.event_types),
        enabled=e.enabled,
        disabled_reason=e.disabled_reason,
        description=e.description,
        create_time=convert.to_timestamp(e.create_time),
    )


def delivery_pb(d: outbox.Delivery) -> pb.WebhookDelivery:
    message = pb.WebhookDelivery(
        delivery_id=d.delivery_id,
        endpoint_id=d.endpoint_id,
        event_type=d.event_type,
        call_id=d.call_id,
        state=d.state,  # type: ignore[arg-type]
        create_time=convert.to_timestamp(d.create_time),
        attempts=[
            pb.WebhookAttempt(
                time=convert.to_timestamp(a.time),
                http_status=a.http_status,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in d.attempts
        ],
    )
    if d.next_attempt_time is not None:
        message.next_attempt_time.CopyFrom(convert.to_timestamp(d.next_attempt_time))
    return message


class WebhookServicer(pb_grpc.WebhookServiceServicer):
    def __init__(self, engine: AsyncEngine, default_tenant: str) -> None:
        self._engine = engine
        self._default_tenant = default_tenant

    def _tenant(self) -> str:
        principal = current_principal.get()
        return principal.tenant_id if principal is not None else self._default_tenant

    @unary
    async def CreateWebhookEndpoint(
        self, request: pb.CreateWebhookEndpointRequest, context: Ctx
    ) -> pb.CreateWebhookEndpointResponse:
        url = _url(request.url)
        types = _event_types(list(request.event_types))
        description = _description(request.description)
        secret = new_secret()
        endpoint = await outbox.create_endpoint(self._engine, self._tenant(), url, types, description, secret)
        return pb.CreateWebhookEndpointResponse(endpoint=endpoint_pb(endpoint), secret=secret)

    @unary
    async def ListWebhookEndpoints(
        self, request: pb.ListWebhookEndpointsRequest, context: Ctx
    ) -> pb.ListWebhookEndpointsResponse:
        endpoints = await outbox.list_endpoints(self._engine, self._tenant())
        return pb.ListWebhookEndpointsResponse(endpoints=[endpoint_pb(e) for e in endpoints])

    @unary
    async def UpdateWebhookEndpoint(
        self, request: pb.UpdateWebhookEndpointRequest, context: Ctx
    ) -> pb.UpdateWebhookEndpointResponse:
        endpoint_id = _endpoint_id(request.endpoint_id)
        fields = list(dict.fromkeys(request.update_fields))
        if not fields:
            raise InvalidArgument(
                Violation("update_fields", f"name what to change: {', '.join(UPDATABLE)}", "REQUIRED")
            )
        changes: dict[str, object] = {}
        for name in fields:
            if name == "url":
                changes["url"] = _url(request.url)
            elif name == "event_types":
                changes["event_types"] = _event_types(list(request.event_types))
            elif name == "enabled":
                changes["enabled"] = request.enabled
            elif name == "description":
                changes["description"] = _description(request.description)
            else:
                raise InvalidArgument(
                    Violation(
                        "update_fields",
                        f"{name!r} cannot be changed; use {', '.join(UPDATABLE)}",
                        "UNKNOWN_FIELD",
                    )
                )
        endpoint = await outbox.update_endpoint(self._engine, self._tenant(), endpoint_id, changes)
        if endpoint is None:
            raise _not_found(endpoint_id)
        return pb.UpdateWebhookEndpointResponse(endpoint=endpoint_pb(endpoint))

    @unary
    async def DeleteWebhookEndpoint(
        self, request: pb.DeleteWebhookEndpointRequest, context: Ctx
    ) -> pb.DeleteWebhookEndpointResponse:
        endpoint_id = _endpoint_id(request.endpoint_id)
        if not await outbox.delete_endpoint(self._engine, self._tenant(), endpoint_id):
            raise _not_found(endpoint_id)
        return pb.DeleteWebhookEndpointResponse()

    @unary
    async def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: Ctx
    ) -> pb.ListWebhookDeliveriesResponse:
        endpoint_id = _endpoint_id(request.endpoint_id)
        size = request.page_size or 50
        if not 1 <= size <= 200:
            raise InvalidArgument(Violation("page_size", "must be 1 to 200 (0 means 50)", "OUT_OF_RANGE"))
        if await outbox.get_endpoint(self._engine, self._tenant(), endpoint_id) is None:
            raise _not_found(endpoint_id)
        deliveries = await outbox.list_deliveries(self._engine, endpoint_id, size)
        return pb.ListWebhookDeliveriesResponse(deliveries=[delivery_pb(d) for d in deliveries])
