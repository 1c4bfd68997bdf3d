"""InsightsService: analytics over the tenant's stored calls (store/insights.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from callpilot.server.api.floor import tenant_store
from callpilot.server.api.status import unary
from callpilot.server.errors import InvalidArgument, Violation
from callpilot.server.store import convert
from callpilot.v1 import insights_service_pb2 as pb
from callpilot.v1 import insights_service_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from callpilot.server.store import Store

Ctx = grpc.aio.ServicerContext[Any, Any]


class InsightsServicer(pb_grpc.InsightsServiceServicer):
    """Figures of the caller's tenant."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @unary
    async def GetInsights(self, request: pb.GetInsightsRequest, context: Ctx) -> pb.GetInsightsResponse:
        missing = [
            Violation(name, "is required", "REQUIRED")
            for name in ("start_time", "end_time")
            if not request.HasField(name)
        ]
        if missing:
            raise InvalidArgument(missing)
        bucket = request.bucket.ToTimedelta() if request.HasField("bucket") else None
        return await tenant_store(self._store).insights(
            convert.from_timestamp(request.start_time), convert.from_timestamp(request.end_time), bucket
        )
