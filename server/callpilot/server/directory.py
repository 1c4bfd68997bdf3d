"""The directory interface: the company's customers, orders, tickets,
policies and knowledge base.

The gRPC DirectoryService, the assistant's tools and the context engine's
customer identification all read through this one protocol, so a CRM sees
exactly what the assistant saw. The SQL store implements it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from callpilot.v1 import directory_pb2


class Directory(Protocol):
    async def search_customers(self, query: str, limit: int = 10) -> list[directory_pb2.Customer]:
        """Customers whose name, email or phone matches `query`, best first."""
        ...

    async def get_customer(self, customer_id: str) -> directory_pb2.Customer | None: ...

    async def find_customer(
        self, *, phone: str | None = None, email: str | None = None
    ) -> directory_pb2.Customer | None:
        """Exact lookup by phone (digits compared, any format) or email (case-insensitive)."""
        ...

    async def customer_orders(self, customer_id: str, limit: int = 10) -> list[directory_pb2.Order]:
        """Newest first."""
        ...

    async def customer_tickets(self, customer_id: str, limit: int = 10) -> list[directory_pb2.Ticket]:
        """Newest first."""
        ...

    async def get_order(self, order_number: str) -> directory_pb2.Order | None:
        """`order_number` with spaces, dashes and a leading '#' ignored."""
        ...

    async def get_policy(
        self, policy_type: directory_pb2.PolicyType.ValueType
    ) -> directory_pb2.Policy | None: ...

    async def search_knowledge(self, query: str, limit: int = 5) -> list[directory_pb2.KnowledgeHit]: ...


@runtime_checkable
class DirectoryWriter(Protocol):
    """The writes the assistant may propose; each runs only after the agent confirms it."""

    async def create_ticket(self, customer_id: str, subject: str) -> directory_pb2.Ticket: ...


@runtime_checkable
class FuzzyDirectory(Protocol):
    """Optional reads for matching what was heard rather than what was meant.

    Speech recognition gets surnames and digits slightly wrong; the context
    engine and `lookup_customer` match names phonetically and order numbers
    within one edit. A directory that implements this lets them consider
    every customer and every order; one that does not still gets matching
    among the customers its `search_customers` returns for parts of the name
    and among the identified customer's own orders.
    """

    async def customer_names(self, limit: int = 20000) -> list[tuple[str, str]]:
        """(customer_id, name) of the tenant's customers, at most `limit`, by id."""
        ...

    async def find_orders(self, order_numbers: Sequence[str]) -> list[directory_pb2.Order]:
        """The orders whose number is one of `order_numbers` (already normalised), any order."""
        ...
