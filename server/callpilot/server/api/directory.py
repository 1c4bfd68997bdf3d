"""DirectoryService: the same lookups the assistant's tools make."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from callpilot.server.api.status import unary
from callpilot.server.directory import Directory
from callpilot.server.errors import InvalidArgument, NotFound, Violation
from callpilot.v1 import directory_pb2
from callpilot.v1 import directory_service_pb2 as pb
from callpilot.v1 import directory_service_pb2_grpc as pb_grpc

Ctx = grpc.aio.ServicerContext[Any, Any]


def _page_size(value: int, default: int, maximum: int) -> int:
    if value == 0:
        return default
    if not 1 <= value <= maximum:
        raise InvalidArgument(
            Violation("page_size", f"must be 1 to {maximum} (0 means {default})", "OUT_OF_RANGE")
        )
    return value


def _required(value: str, field: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(Violation(field, f"{what} is required", "REQUIRED"))
    if len(value) > 500:
        raise InvalidArgument(Violation(field, "at most 500 characters", "TOO_LONG"))
    return value


class DirectoryServicer(pb_grpc.DirectoryServiceServicer):
    """Lookups in the caller's tenant's directory only (`directory_for` reads the credential)."""

    def __init__(self, directory_for: Callable[[], Directory]) -> None:
        self._directory_for = directory_for

    @property
    def _directory(self) -> Directory:
        return self._directory_for()

    @unary
    async def SearchCustomers(
        self, request: pb.SearchCustomersRequest, context: Ctx
    ) -> pb.SearchCustomersResponse:
        query = _required(request.query, "query", "a name, email or phone to search for")
        limit = _page_size(request.page_size, 10, 50)
        return pb.SearchCustomersResponse(customers=await self._directory.search_customers(query, limit))

    @unary
    async def GetCustomer(self, request: pb.GetCustomerRequest, context: Ctx) -> pb.GetCustomerResponse:
        customer_id = _required(request.customer_id, "customer_id", "customer_id")
        customer = await self._directory.get_customer(customer_id)
        if customer is None:
            raise NotFound(
                f"no customer with id {customer_id!r}; SearchCustomers finds customers by name, email or phone",
                reason="CUSTOMER_NOT_FOUND",
                metadata={"customer_id": customer_id},
            )
        return pb.GetCustomerResponse(
            customer=customer,
            orders=await self._directory.customer_orders(customer_id, 10),
            tickets=await self._directory.customer_tickets(customer_id, 10),
        )

    @unary
    async def GetOrder(self, request: pb.GetOrderRequest, context: Ctx) -> pb.GetOrderResponse:
        number = _required(request.order_number, "order_number", "order_number")
        order = await self._directory.get_order(number)
        if order is None:
            raise NotFound(
                f"no order numbered {number!r}", reason="ORDER_NOT_FOUND", metadata={"order_number": number}
            )
        return pb.GetOrderResponse(order=order)

    @unary
    async def GetPolicy(self, request: pb.GetPolicyRequest, context: Ctx) -> pb.GetPolicyResponse:
        if (
            request.type not in directory_pb2.PolicyType.values()
            or request.type == directory_pb2.POLICY_TYPE_UNSPECIFIED
        ):
            raise InvalidArgument(
                Violation("type", "set type to POLICY_TYPE_RETURN, _REFUND, _WARRANTY or _SLA", "REQUIRED")
            )
        policy = await self._directory.get_policy(request.type)
        if policy is None:
            name = directory_pb2.PolicyType.Name(request.type)
            raise NotFound(
                f"no {name} policy has been loaded", reason="POLICY_NOT_FOUND", metadata={"type": name}
            )
        return pb.GetPolicyResponse(policy=policy)

    @unary
    async def SearchKnowledge(
        self, request: pb.SearchKnowledgeRequest, context: Ctx
    ) -> pb.SearchKnowledgeResponse:
        query = _required(request.query, "query", "a query")
        limit = _page_size(request.page_size, 5, 20)
        return pb.SearchKnowledgeResponse(hits=await self._directory.search_knowledge(query, limit))
