"""Directory reads (and the one confirmed write, create_ticket) of the SQL store.

The `Directory` protocol (callpilot.server.directory) is what these
implement; they are a mixin of `Store` so that they share its tenant and
connection plumbing (store/base.py) without restating it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from callpilot.server.errors import InvalidArgument, NotFound, Violation
from callpilot.server.store import convert, schema
from callpilot.server.store.base import KnowledgeCache, StoreBase
from callpilot.server.store.importer.normalize import normalize_order_number, phone_digits
from callpilot.server.store.knowledge import Document, KnowledgeIndex, fold
from callpilot.v1 import directory_pb2
from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

# Customer search ranks in Python, so bound how many SQL matches it ranks.
CUSTOMER_CANDIDATES = 200


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class DirectoryQueries(StoreBase):
    """Customers, orders, tickets, policies and knowledge search for one tenant."""

    async def search_customers(self, query: str, limit: int = 10) -> list[directory_pb2.Customer]:
        """Customers whose id, name, email or phone matches `query`, best first.

        Matching is case- and accent-insensitive on names (every word of the
        query must occur), substring on email, and digits-only on phone
        numbers, so "(555) 010-0101" finds "+15550100101".
        """
        needle = query.strip()
        if not needle or limit <= 0:
            return []
        folded = fold(needle)
        words = folded.split()
        digits = phone_digits(needle)
        c = schema.customers.c
        conditions = [
            c.customer_id == needle,
            c.email_lower.like(f"%{_escape_like(needle.lower())}%", escape="\\"),
            and_(*[c.name_folded.like(f"%{_escape_like(w)}%", escape="\\") for w in words]),
        ]
        if len(digits) >= 4 and not any(ch.isalpha() for ch in needle):
            conditions.append(c.phone_digits.like(f"%{digits}%"))
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(schema.customers)
                    .where(c.tenant_id == self._tenant, or_(*conditions))
                    .order_by(c.customer_id)
                    .limit(CUSTOMER_CANDIDATES)
                )
            ).all()
        ranked = sorted(
            rows, key=lambda r: (-_customer_rank(r, needle, folded, words, digits), r.name, r.customer_id)
        )
        return [convert.customer(r) for r in ranked[:limit]]

    async def get_customer(self, customer_id: str) -> directory_pb2.Customer | None:
        c = schema.customers.c
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(schema.customers).where(
                        c.tenant_id == self._tenant, c.customer_id == customer_id.strip()
                    )
                )
            ).first()
        return convert.customer(row) if row is not None else None

    async def find_customer(
        self, *, phone: str | None = None, email: str | None = None
    ) -> directory_pb2.Customer | None:
        """Exact lookup by phone (digits compared, any format) or email (case-insensitive).

        Phone is tried first (caller id is what telephony gives us). A number
        without its country code ("555-010-0101") matches when exactly one
        customer's number ends with it; two matches would be a guess, so
        that returns None.
        """
        c = schema.customers.c
        async with self._read() as conn:
            digits = phone_digits(phone or "")
            if len(digits) >= 7:
                candidates = [digits]
                for prefix in ("011", "00"):  # international dialling prefixes
                    if digits.startswith(prefix) and len(digits) - len(prefix) >= 8:
                        candidates.append(digits[len(prefix) :])
                row = (
                    await conn.execute(
                        select(schema.customers)
                        .where(c.tenant_id == self._tenant, c.phone_digits.in_(candidates))
                        .order_by(c.customer_id)
                        .limit(1)
                    )
                ).first()
                if row is None and len(digits) <= 12:
                    suffix = (
                        await conn.execute(
                            select(schema.customers)
                            .where(c.tenant_id == self._tenant, c.phone_digits.like(f"%{digits}"))
                            .limit(2)
                        )
                    ).all()
                    row = suffix[0] if len(suffix) == 1 else None
                if row is not None:
                    return convert.customer(row)
            address = (email or "").strip().lower()
            if address:
                row = (
                    await conn.execute(
                        select(schema.customers)
                        .where(c.tenant_id == self._tenant, c.email_lower == address)
                        .order_by(c.customer_id)
                        .limit(1)
                    )
                ).first()
                if row is not None:
                    return convert.customer(row)
        return None

    async def customer_orders(self, customer_id: str, limit: int = 10) -> list[directory_pb2.Order]:
        """Newest first."""
        o = schema.orders.c
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(schema.orders)
                    .where(o.tenant_id == self._tenant, o.customer_id == customer_id.strip())
                    .order_by(o.order_time.desc(), o.order_number.desc())
                    .limit(max(limit, 0))
                )
            ).all()
            return await self._with_items(conn, rows)

    async def _with_items(self, conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[directory_pb2.Order]:
        if not rows:
            return []
        i = schema.order_items.c
        items = (
            await conn.execute(
                select(schema.order_items)
                .where(i.tenant_id == self._tenant, i.order_number.in_([r.order_number for r in rows]))
                .order_by(i.order_number, i.line_no)
            )
        ).all()
        by_order: dict[str, list[Row[Any]]] = {}
        for item in items:
            by_order.setdefault(item.order_number, []).append(item)
        return [convert.order(r, by_order.get(r.order_number, [])) for r in rows]

    async def customer_tickets(self, customer_id: str, limit: int = 10) -> list[directory_pb2.Ticket]:
        """Newest first."""
        t = schema.tickets.c
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(schema.tickets)
                    .where(t.tenant_id == self._tenant, t.customer_id == customer_id.strip())
                    .order_by(t.create_time.desc(), t.ticket_id.desc())
                    .limit(max(limit, 0))
                )
            ).all()
        return [convert.ticket(r) for r in rows]

    async def create_ticket(self, customer_id: str, subject: str) -> directory_pb2.Ticket:
        """Open a support ticket: the write behind the assistant's create_ticket tool,
        which runs only after the agent confirms it."""
        customer_id, subject = customer_id.strip(), " ".join(subject.split())
        if not subject:
            raise InvalidArgument(Violation("subject", "a ticket needs a subject"))
        if len(subject) > 500:
            raise InvalidArgument(Violation("subject", "at most 500 characters"))
        if await self.get_customer(customer_id) is None:
            raise NotFound(f"no customer with id {customer_id!r}", reason="CUSTOMER_NOT_FOUND")
        now = datetime.now(UTC)
        ticket_id = f"T-{uuid.uuid4().hex[:8].upper()}"
        async with self._write() as conn:
            await conn.execute(
                schema.tickets.insert().values(
                    tenant_id=self._tenant,
                    ticket_id=ticket_id,
                    customer_id=customer_id,
                    subject=subject,
                    status="open",
                    create_time=now,
                    updated_at=now,
                )
            )
        ticket = directory_pb2.Ticket(
            ticket_id=ticket_id, customer_id=customer_id, subject=subject, status="open"
        )
        ticket.create_time.FromDatetime(now)
        return ticket

    async def get_order(self, order_number: str) -> directory_pb2.Order | None:
        """`order_number` with spaces, dashes and a leading '#' ignored."""
        number = normalize_order_number(order_number)
        if not number:
            return None
        o = schema.orders.c
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(schema.orders).where(o.tenant_id == self._tenant, o.order_number == number)
                )
            ).first()
            if row is None:
                return None
            return (await self._with_items(conn, [row]))[0]

    async def get_policy(
        self, policy_type: directory_pb2.PolicyType.ValueType
    ) -> directory_pb2.Policy | None:
        """The policy of a type; None if the tenant has none or the type is UNSPECIFIED."""
        name = convert.POLICY_TYPE_NAMES.get(policy_type)
        if name is None:
            return None
        p = schema.policies.c
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(schema.policies).where(p.tenant_id == self._tenant, p.policy_type == name)
                )
            ).first()
        return convert.policy(row) if row is not None else None

    async def search_knowledge(self, query: str, limit: int = 5) -> list[directory_pb2.KnowledgeHit]:
        """Articles ranked by BM25 over title, tags and body; see knowledge.py."""
        if not query.strip() or limit <= 0:
            return []
        index = await self._knowledge_index()
        return [
            directory_pb2.KnowledgeHit(
                article=directory_pb2.Article(
                    article_id=hit.doc.doc_id, title=hit.doc.title, body=hit.doc.body, tags=list(hit.doc.tags)
                ),
                score=hit.score,
                snippet=hit.snippet,
            )
            for hit in index.search(query, limit)
        ]

    async def _knowledge_index(self) -> KnowledgeIndex:
        """The tenant's index, rebuilt only when its articles changed.

        The (count, newest update) probe is one indexed query, and it also
        notices imports made by other server processes.
        """
        a = schema.articles.c
        async with self._read() as conn:
            probe = (
                await conn.execute(
                    select(func.count(), func.max(a.updated_at)).where(a.tenant_id == self._tenant)
                )
            ).one()
            newest = probe[1]
            if isinstance(newest, str):  # SQLite returns max() of the raw text
                newest = datetime.fromisoformat(newest)
            version = (int(probe[0]), newest)
            cached = self._shared.knowledge.get(self._tenant)
            if cached is not None and cached.version == version:
                return cached.index
            rows = (
                await conn.execute(
                    select(a.article_id, a.title, a.body, a.tags).where(a.tenant_id == self._tenant)
                )
            ).all()
        docs = [Document(r.article_id, r.title, r.body, tuple(r.tags or ())) for r in rows]
        index = await asyncio.to_thread(KnowledgeIndex, docs)
        self._shared.knowledge[self._tenant] = KnowledgeCache(version, index)
        return index


def _customer_rank(row: Row[Any], needle: str, folded: str, words: list[str], digits: str) -> int:
    """How good a customer-search match is; higher is better.

    Identifiers beat names: an exact id, email or phone says who it is,
    a name may be shared.
    """
    if row.customer_id == needle:
        return 100
    if row.email_lower == needle.lower():
        return 95
    if (
        digits
        and not any(ch.isalpha() for ch in needle)
        and len(digits) >= 7
        and row.phone_digits.endswith(digits)
    ):
        return 90
    name: str = row.name_folded
    if name == folded:
        return 80
    name_words = name.split()
    if words and all(any(nw.startswith(w) for nw in name_words) for w in words):
        return 60
    if needle.lower() in row.email_lower:
        return 40
    if words and all(w in name for w in words):
        return 30
    return 10
