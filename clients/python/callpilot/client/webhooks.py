"""Typed client for WebhookService: a tenant's webhook endpoints and deliveries.

    async with AsyncCallpilot(target) as cp:
        hooks = Webhooks(cp)
        endpoint, secret = await hooks.create("https://crm.example/hooks", ["call.ended"])

The secret (``whsec_...``) is returned only by `create`; give it to the
receiver's Standard Webhooks verifier.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from callpilot.client import AsyncCallpilot, _rpc
from callpilot.v1 import webhook_service_pb2 as pb
from callpilot.v1 import webhook_service_pb2_grpc as pb_grpc

EVENT_TYPES = ("call.started", "call.ended", "suggestion.feedback", "tool.decided")


class Webhooks:
    """WebhookService over an open `AsyncCallpilot` connection (its credentials included)."""

    def __init__(self, client: AsyncCallpilot) -> None:
        self.stub = pb_grpc.WebhookServiceStub(client.channel)

    async def create(
        self, url: str, event_types: Sequence[str], *, description: str = ""
    ) -> tuple[pb.WebhookEndpoint, str]:
        """Register an endpoint; returns it and its signing secret (shown only now)."""
        request = pb.CreateWebhookEndpointRequest(
            url=url, event_types=list(event_types), description=description
        )
        response = await _rpc(self.stub.CreateWebhookEndpoint(request))
        return response.endpoint, response.secret

    async def list(self) -> list[pb.WebhookEndpoint]:
        response = await _rpc(self.stub.ListWebhookEndpoints(pb.ListWebhookEndpointsRequest()))
        return list(response.endpoints)

    async def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        enabled: bool | None = None,
        description: str | None = None,
    ) -> pb.WebhookEndpoint:
        """Change only the arguments given."""
        request = pb.UpdateWebhookEndpointRequest(endpoint_id=endpoint_id)
        if url is not None:
            request.url = url
            request.update_fields.append("url")
        if event_types is not None:
            request.event_types.extend(event_types)
            request.update_fields.append("event_types")
        if enabled is not None:
            request.enabled = enabled
            request.update_fields.append("enabled")
        if description is not None:
            request.description = description
            request.update_fields.append("description")
        return (await _rpc(self.stub.UpdateWebhookEndpoint(request))).endpoint

    async def delete(self, endpoint_id: str) -> None:
        await _rpc(self.stub.DeleteWebhookEndpoint(pb.DeleteWebhookEndpointRequest(endpoint_id=endpoint_id)))

    async def deliveries(self, endpoint_id: str, page_size: int = 0) -> builtins.list[pb.WebhookDelivery]:
        """The endpoint's newest deliveries, each with its attempts."""
        request = pb.ListWebhookDeliveriesRequest(endpoint_id=endpoint_id, page_size=page_size)
        return list((await _rpc(self.stub.ListWebhookDeliveries(request))).deliveries)
