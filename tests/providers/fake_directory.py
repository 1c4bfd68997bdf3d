"""An in-memory `Directory` with a handful of records, for provider tests.

It implements the `callpilot.server.directory.Directory` protocol exactly
(the SQL store is tested on its own); `calls` records what was asked, and
`delay` slows every lookup to exercise timeouts and cancellation.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from callpilot.v1 import directory_pb2
from google.protobuf.timestamp_pb2 import Timestamp


def _ts(year: int, month: int, day: int) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime(year, month, day, 12, tzinfo=UTC))
    return ts


CUSTOMERS = [
    directory_pb2.Customer(
        customer_id="C-1001",
        name="Jane Doe",
        email="jane@example.com",
        phone="+15551234567",
        tier="gold",
        status="active",
    ),
    directory_pb2.Customer(
        customer_id="C-1002",
        name="John Roe",
        email="john@example.com",
        phone="+15559876543",
        tier="standard",
        status="active",
    ),
]
ORDERS = [
    directory_pb2.Order(
        order_number="78901",
        customer_id="C-1001",
        status="delivered",
        total="129.99",
        currency_code="USD",
        order_time=_ts(2025, 3, 1),
        delivered_time=_ts(2025, 3, 5),
        items=[
            directory_pb2.OrderItem(sku="HP-01", name="Wireless headphones", quantity=1, unit_price="129.99")
        ],
    ),
    directory_pb2.Order(
        order_number="55555",
        customer_id="C-1002",
        status="shipped",
        total="19.99",
        currency_code="USD",
        order_time=_ts(2025, 3, 10),
    ),
]
TICKETS = [
    directory_pb2.Ticket(
        ticket_id="T-5001", customer_id="C-1001", subject="Headphones crackle", status="open"
    ),
]
POLICIES: dict[int, directory_pb2.Policy] = {
    directory_pb2.POLICY_TYPE_RETURN: directory_pb2.Policy(
        type=directory_pb2.POLICY_TYPE_RETURN,
        title="Return policy",
        body="Items can be returned within 30 days of delivery for a full refund.",
    ),
    directory_pb2.POLICY_TYPE_REFUND: directory_pb2.Policy(
        type=directory_pb2.POLICY_TYPE_REFUND,
        title="Refund policy",
        body="Refunds go to the original payment method within 5-7 business days.",
    ),
}
ARTICLES = [
    directory_pb2.Article(
        article_id="KB-001",
        title="Pairing wireless headphones",
        body="Hold the power button for five seconds until the light blinks blue.",
        tags=["headphones", "bluetooth"],
    ),
    directory_pb2.Article(
        article_id="KB-002",
        title="Tracking a shipment",
        body="Use the tracking link in the shipping email.",
        tags=["shipping", "tracking"],
    ),
]


class FakeDirectory:
    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[tuple[str, str]] = []

    async def _wait(self, what: str, arg: str) -> None:
        self.calls.append((what, arg))
        if self.delay:
            await asyncio.sleep(self.delay)

    async def search_customers(self, query: str, limit: int = 10) -> list[directory_pb2.Customer]:
        await self._wait("search_customers", query)
        q = query.lower()
        return [c for c in CUSTOMERS if q in c.name.lower() or q in c.email or q in c.phone][:limit]

    async def get_customer(self, customer_id: str) -> directory_pb2.Customer | None:
        await self._wait("get_customer", customer_id)
        return next((c for c in CUSTOMERS if c.customer_id == customer_id), None)

    async def find_customer(
        self, *, phone: str | None = None, email: str | None = None
    ) -> directory_pb2.Customer | None:
        await self._wait("find_customer", phone or email or "")
        if phone:
            digits = re.sub(r"\D", "", phone)
            return next((c for c in CUSTOMERS if re.sub(r"\D", "", c.phone).endswith(digits)), None)
        if email:
            return next((c for c in CUSTOMERS if c.email == email.lower()), None)
        return None

    async def customer_orders(self, customer_id: str, limit: int = 10) -> list[directory_pb2.Order]:
        await self._wait("customer_orders", customer_id)
        return [o for o in ORDERS if o.customer_id == customer_id][:limit]

    async def customer_tickets(self, customer_id: str, limit: int = 10) -> list[directory_pb2.Ticket]:
        await self._wait("customer_tickets", customer_id)
        return [t for t in TICKETS if t.customer_id == customer_id][:limit]

    async def get_order(self, order_number: str) -> directory_pb2.Order | None:
        await self._wait("get_order", order_number)
        number = re.sub(r"[\s#-]", "", order_number)
        return next((o for o in ORDERS if o.order_number == number), None)

    async def get_policy(self, policy_type: int) -> directory_pb2.Policy | None:
        await self._wait("get_policy", str(policy_type))
        return POLICIES.get(policy_type)

    async def search_knowledge(self, query: str, limit: int = 5) -> list[directory_pb2.KnowledgeHit]:
        await self._wait("search_knowledge", query)
        words = set(re.findall(r"[a-z]+", query.lower()))
        hits = []
        for a in ARTICLES:
            score = len(words & (set(a.tags) | set(re.findall(r"[a-z]+", a.title.lower()))))
            if score:
                hits.append(directory_pb2.KnowledgeHit(article=a, score=float(score), snippet=a.body[:80]))
        return sorted(hits, key=lambda h: -h.score)[:limit]
