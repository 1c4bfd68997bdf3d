"""The one in-memory `Directory` for tests that need a directory but not a database.

Unit tests of the context engine, the tools, the local assistant and the
LLM providers all use it (import it as `from fakes.directory import
FakeDirectory`; pytest puts tests/ on the path). One small dataset, so
that a customer, an order number or an article means the same thing in
every test: Maria Garcia (C-1001, gold) with order 78901, James Chen
(C-1002) with orders 55555 and 44444, three policies, two articles. The
SQL store is tested on its own, against the packaged demo data.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from callpilot.v1 import directory_pb2

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
"""A fixed "today" for tests: the demo order 78901 was delivered 22 days earlier."""


def _ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC)


def _order(
    number: str,
    customer_id: str,
    status: str,
    total: str,
    ordered: str,
    delivered: str | None,
    items: list[tuple[str, str, int, str]],
) -> directory_pb2.Order:
    order = directory_pb2.Order(
        order_number=number,
        customer_id=customer_id,
        status=status,
        total=total,
        currency_code="USD",
        items=[directory_pb2.OrderItem(sku=s, name=n, quantity=q, unit_price=p) for s, n, q, p in items],
    )
    order.order_time.FromDatetime(_ts(ordered))
    if delivered:
        order.delivered_time.FromDatetime(_ts(delivered))
    return order


class FakeDirectory:
    """Implements `callpilot.server.directory.Directory` over a few records.

    `calls` records every method called with its arguments; setting `fail`
    makes every method raise, `delay` makes every method sleep first.
    """

    def __init__(self, *, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.fail: Exception | None = None
        self.delay = delay
        self.customers = {
            "C-1001": directory_pb2.Customer(
                customer_id="C-1001",
                name="Maria Garcia",
                email="maria.garcia@example.com",
                phone="+15550100101",
                tier="gold",
                status="active",
            ),
            "C-1002": directory_pb2.Customer(
                customer_id="C-1002",
                name="James Chen",
                email="james.chen@example.com",
                phone="+15550100102",
                tier="standard",
                status="active",
            ),
        }
        self.orders = {
            "78901": _order(
                "78901",
                "C-1001",
                "delivered",
                "129.99",
                "2026-10-28T15:00:00",
                "2026-11-02T12:00:00",
                [("WH-100", "Wireless Headphones", 1, "129.99")],
            ),
            "55555": _order(
                "55555",
                "C-1002",
                "shipped",
                "49.50",
                "2026-11-20T09:00:00",
                None,
                [("CB-2", "Charging Cable", 2, "9.75"), ("PB-1", "Power Bank", 1, "30.00")],
            ),
            "44444": _order(
                "44444",
                "C-1002",
                "delivered",
                "89.00",
                "2026-08-20T09:00:00",
                "2026-08-25T09:00:00",
                [("SP-1", "Bluetooth Speaker", 1, "89.00")],
            ),
        }
        self.tickets = {
            "C-1001": [
                directory_pb2.Ticket(
                    ticket_id="T-5001", customer_id="C-1001", subject="Late delivery", status="closed"
                )
            ]
        }
        self.policies = {
            directory_pb2.POLICY_TYPE_RETURN: directory_pb2.Policy(
                type=directory_pb2.POLICY_TYPE_RETURN,
                title="Return policy",
                body="Items can be returned within 30 days of delivery in their original packaging.",
            ),
            directory_pb2.POLICY_TYPE_REFUND: directory_pb2.Policy(
                type=directory_pb2.POLICY_TYPE_REFUND,
                title="Refund policy",
                body="Approved refunds are paid to the original payment method within 5\u20137 business days.",
            ),
            directory_pb2.POLICY_TYPE_WARRANTY: directory_pb2.Policy(
                type=directory_pb2.POLICY_TYPE_WARRANTY,
                title="Warranty",
                body="Electronics carry a one-year limited warranty against manufacturing defects. "
                "Accidental damage is not covered.",
            ),
        }
        self.articles = [
            directory_pb2.Article(
                article_id="KB-001",
                title="Pairing wireless headphones",
                body="Hold the power button for five seconds until the light flashes blue, "
                "then choose the headphones in your phone's Bluetooth settings.",
                tags=["bluetooth", "pairing", "headphones", "connect"],
            ),
            directory_pb2.Article(
                article_id="KB-002",
                title="Tracking a shipment",
                body="Use the tracking link in the shipping email; it updates within a day of dispatch.",
                tags=["shipping", "tracking"],
            ),
        ]

    async def _enter(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail

    def called(self, name: str) -> list[tuple[object, ...]]:
        return [args for n, args in self.calls if n == name]

    async def search_customers(self, query: str, limit: int = 10) -> list[directory_pb2.Customer]:
        await self._enter("search_customers", query, limit)
        q = query.lower()
        digits = re.sub(r"\D", "", query)
        return [
            c
            for c in self.customers.values()
            if q in c.name.lower() or q in c.email.lower() or (len(digits) >= 4 and digits in c.phone)
        ][:limit]

    async def get_customer(self, customer_id: str) -> directory_pb2.Customer | None:
        await self._enter("get_customer", customer_id)
        return self.customers.get(customer_id)

    async def find_customer(
        self, *, phone: str | None = None, email: str | None = None
    ) -> directory_pb2.Customer | None:
        await self._enter("find_customer", phone, email)
        for c in self.customers.values():
            if phone and re.sub(r"\D", "", phone)[-10:] == re.sub(r"\D", "", c.phone)[-10:]:
                return c
            if email and email.lower() == c.email.lower():
                return c
        return None

    async def customer_orders(self, customer_id: str, limit: int = 10) -> list[directory_pb2.Order]:
        await self._enter("customer_orders", customer_id, limit)
        orders = [o for o in self.orders.values() if o.customer_id == customer_id]
        orders.sort(key=lambda o: o.order_time.seconds, reverse=True)
        return orders[:limit]

    async def customer_tickets(self, customer_id: str, limit: int = 10) -> list[directory_pb2.Ticket]:
        await self._enter("customer_tickets", customer_id, limit)
        return self.tickets.get(customer_id, [])[:limit]

    async def get_order(self, order_number: str) -> directory_pb2.Order | None:
        await self._enter("get_order", order_number)
        return self.orders.get(re.sub(r"[\s#-]", "", order_number))

    async def get_policy(
        self, policy_type: directory_pb2.PolicyType.ValueType
    ) -> directory_pb2.Policy | None:
        await self._enter("get_policy", policy_type)
        return self.policies.get(policy_type)

    async def search_knowledge(self, query: str, limit: int = 5) -> list[directory_pb2.KnowledgeHit]:
        await self._enter("search_knowledge", query, limit)
        words = set(re.findall(r"[a-z]+", query.lower()))
        hits = []
        for a in self.articles:
            vocab = set(re.findall(r"[a-z]+", f"{a.title} {a.body}".lower())) | set(a.tags)
            score = len(words & vocab)
            if score:
                hits.append(directory_pb2.KnowledgeHit(article=a, score=float(score), snippet=a.body))
        hits.sort(key=lambda h: -h.score)
        return hits[:limit]
