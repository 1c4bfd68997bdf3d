"""The SQL store: directory lookups, call records and the durable event log.

One class serves both backends (SQLite through aiosqlite, PostgreSQL through
asyncpg), so everything above it is written once. All I/O goes through the
async drivers; the only CPU work of note, building the knowledge index, runs
in a worker thread.

Every row belongs to a tenant. A Store object is bound to one tenant, and
`for_tenant` hands out siblings that share its connection pool, so a
multi-tenant server opens the database once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from types import TracebackType
from typing import TYPE_CHECKING, Any

from callpilot.server.errors import AlreadyExists, InvalidArgument, NotFound, Violation
from callpilot.server.store import convert, fuzzy, schema
from callpilot.server.store.demo_dates import date_demo_document
from callpilot.server.store.engine import (
    WRITE_OPTION,
    create_engine,
    is_single_connection,
    normalize_url,
    sqlite_file,
)
from callpilot.server.store.importer import (
    DataImportError,
    ImportReport,
    existing_keys,
    normalize_order_number,
    parse_json,
    phone_digits,
    referenced_customer_ids,
    validate_document,
    write_document,
)
from callpilot.server.store.knowledge import Document, KnowledgeIndex, fold
from callpilot.server.store.migrate import upgrade_to_head
from callpilot.v1 import assist_service_pb2, call_pb2, directory_pb2, events_pb2
from sqlalchemy import Row, and_, case, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from callpilot.server.directory import Directory

DEFAULT_TENANT = "default"
DEFAULT_PAGE_SIZE = 20
# Customer search ranks in Python, so bound how many SQL matches it ranks.
CUSTOMER_CANDIDATES = 200
DEMO_DATA = "demo_data.json"
# First half of the (key, hashtext(tenant)) advisory lock taken while seeding.
_PG_SEED_LOCK = 0x5345_4544  # "SEED"


def load_demo_document() -> object:
    """The packaged demo data set, parsed (blocking: call it in a thread)."""
    raw = resources.files("callpilot.server.store").joinpath(DEMO_DATA).read_text(encoding="utf-8")
    return json.loads(raw)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _check_id(value: str, field_path: str, max_len: int = schema.ID_LENGTH) -> None:
    # Checked up front so an oversized id is the caller's INVALID_ARGUMENT,
    # not a driver error from a column limit.
    if not value:
        raise InvalidArgument(Violation(field_path, "is required"))
    if len(value) > max_len:
        raise InvalidArgument(Violation(field_path, f"is longer than {max_len} characters"))


@dataclass
class _KnowledgeCache:
    version: tuple[int, datetime | None]
    index: KnowledgeIndex


@dataclass
class _Shared:
    """What sibling Stores of different tenants share: the pool and caches."""

    engine: AsyncEngine
    write_engine: AsyncEngine
    # In-memory SQLite has a single connection, which concurrent transactions
    # would trample; this lock takes turns instead. None for real databases.
    serial: asyncio.Lock | None = None
    knowledge: dict[str, _KnowledgeCache] = field(default_factory=dict)
    closed: bool = False


class Store:
    """Persistence for one tenant; create it with `await Store.open(url)`."""

    def __init__(self, shared: _Shared, tenant_id: str) -> None:
        """Internal: use `Store.open` or `for_tenant`."""
        _check_id(tenant_id, "tenant_id")
        self._shared = shared
        self._tenant = tenant_id

    # --- lifecycle ------------------------------------------------------------

    @classmethod
    async def open(cls, url: str, *, seed_demo: bool = False, tenant_id: str = DEFAULT_TENANT) -> Store:
        """Connect, migrate to the latest schema, and optionally seed demo data.

        Migrating at open means a new deployment or a new SQLite file is
        usable straight away; seeding only touches a tenant whose directory
        is empty, so it never overwrites real data.
        """
        parsed = normalize_url(url)
        path = sqlite_file(parsed)
        if path is not None:
            await asyncio.to_thread(path.expanduser().resolve().parent.mkdir, parents=True, exist_ok=True)
        engine = create_engine(parsed)
        try:
            await upgrade_to_head(engine)
            shared = _Shared(
                engine=engine,
                write_engine=engine.execution_options(**{WRITE_OPTION: True}),
                serial=asyncio.Lock() if is_single_connection(parsed) else None,
            )
            store = cls(shared, tenant_id)
            if seed_demo:
                await store.seed_demo_data()
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        """Close the connection pool (for every sibling Store of other tenants too)."""
        if not self._shared.closed:
            self._shared.closed = True
            await self._shared.engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def for_tenant(self, tenant_id: str) -> Store:
        """A Store for another tenant on the same pool; closing either closes both."""
        return Store(self._shared, tenant_id)

    @property
    def tenant_id(self) -> str:
        return self._tenant

    @property
    def backend(self) -> str:
        """The SQL dialect in use: "sqlite" or "postgresql"."""
        return self._shared.engine.dialect.name

    async def ping(self) -> None:
        """Round-trip to the database, for health checks; raises when it is unreachable."""
        async with self._read() as conn:
            await conn.execute(select(1))

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        if self._shared.serial is None:
            yield
        else:
            async with self._shared.serial:
                yield

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._turn(), self._shared.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        async with self._turn(), self._shared.write_engine.begin() as conn:
            yield conn

    # --- import and demo data -------------------------------------------------

    async def import_data(self, doc: object) -> ImportReport:
        """Validate and upsert a directory document (see docs/data-import.md).

        `doc` is the parsed JSON, or its text as str/bytes. Validation and
        writes happen in one transaction, so references to customers already
        in the database are checked against what is really there and a
        rejected file leaves nothing behind.
        """
        if isinstance(doc, str | bytes):
            doc = await asyncio.to_thread(parse_json, doc)
        async with self._write() as conn:
            return await self._import(conn, doc)

    async def _import(self, conn: AsyncConnection, doc: object) -> ImportReport:
        known = await existing_keys(
            conn, schema.customers, "customer_id", self._tenant, referenced_customer_ids(doc)
        )
        # Pure CPU work that grows with the file: keep it off the event loop.
        validated = await asyncio.to_thread(validate_document, doc, known_customer_ids=known)
        report = await write_document(conn, self._tenant, validated, convert.now_utc())
        self._shared.knowledge.pop(self._tenant, None)
        return report

    async def seed_demo_data(self) -> ImportReport | None:
        """Import the packaged demo data if this tenant's directory is empty,
        its orders and tickets dated relative to today (`store.demo_dates`).

        Returns what was imported, or None when the directory already had
        data. Two servers starting together must not both seed: SQLite's
        write lock (BEGIN IMMEDIATE) serialises them, and on PostgreSQL a
        per-tenant advisory lock does, so the second one finds data.
        """
        # Dated relative to today, so the demo call gives the same answer on any day.
        doc = date_demo_document(await asyncio.to_thread(load_demo_document), convert.now_utc().date())
        async with self._write() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key, hashtext(:tenant))"),
                    {"key": _PG_SEED_LOCK, "tenant": self._tenant},
                )
            for table in schema.DIRECTORY_TABLES:
                found = await conn.execute(select(1).where(table.c.tenant_id == self._tenant).limit(1))
                if found.first() is not None:
                    return None
            return await self._import(conn, doc)

    # --- directory --------------------------------------------------------------

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

    async def customer_names(self, limit: int = fuzzy.NAME_INDEX_LIMIT) -> list[tuple[str, str]]:
        """(customer_id, name) pairs for matching names as heard (see `store.fuzzy`)."""
        async with self._read() as conn:
            return await fuzzy.customer_names(conn, self._tenant, limit)

    async def find_orders(self, order_numbers: Sequence[str]) -> list[directory_pb2.Order]:
        """Orders with any of these numbers (see `store.fuzzy`)."""
        async with self._read() as conn:
            return await self._with_items(conn, await fuzzy.order_rows(conn, self._tenant, order_numbers))

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
        self._shared.knowledge[self._tenant] = _KnowledgeCache(version, index)
        return index

    # --- calls --------------------------------------------------------------------

    async def create_call(self, call: call_pb2.Call) -> None:
        """Insert a new call record; AlreadyExists if the id is taken.

        An unset create_time means "now"; an unset tenant means this Store's.
        """
        _check_id(call.call_id, "call.call_id")
        if call.tenant_id and call.tenant_id != self._tenant:
            raise InvalidArgument(
                Violation(
                    "call.tenant_id", f'is "{call.tenant_id}" but this store serves tenant "{self._tenant}"'
                )
            )
        created = (
            convert.from_timestamp(call.create_time) if call.HasField("create_time") else convert.now_utc()
        )
        values = {
            "tenant_id": self._tenant,
            "call_id": call.call_id,
            "create_time": created,
            "last_sequence": call.last_sequence,
            **self._mutable_call_fields(call),
        }
        try:
            async with self._write() as conn:
                await conn.execute(schema.calls.insert().values(**values))
        except IntegrityError as exc:
            raise AlreadyExists(
                f'call "{call.call_id}" already exists', metadata={"call_id": call.call_id}
            ) from exc

    @staticmethod
    def _mutable_call_fields(call: call_pb2.Call) -> dict[str, object]:
        return {
            "state": int(call.state),
            "customer_id": call.customer_id,
            "config": call.config.SerializeToString(deterministic=True),
            "end_time": convert.from_timestamp(call.end_time) if call.HasField("end_time") else None,
            "end_reason": int(call.end_reason),
            "summary": call.summary,
        }

    async def get_call(self, call_id: str) -> call_pb2.Call | None:
        c = schema.calls.c
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(schema.calls).where(c.tenant_id == self._tenant, c.call_id == call_id)
                )
            ).first()
        return convert.call(row) if row is not None else None

    async def list_calls(
        self,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str = "",
        state: call_pb2.CallState.ValueType = call_pb2.CALL_STATE_UNSPECIFIED,
    ) -> tuple[list[call_pb2.Call], str]:
        """A page of calls, newest first, and the token of the next page ("" on the last).

        CALL_STATE_UNSPECIFIED as `state` lists calls in every state.

        Keyset pagination on (create_time, call_id): unlike offsets, a page
        boundary does not shift when calls are created between requests, so
        no call is skipped or repeated.
        """
        size = page_size if page_size > 0 else DEFAULT_PAGE_SIZE
        c = schema.calls.c
        stmt = select(schema.calls).where(c.tenant_id == self._tenant)
        if state != call_pb2.CALL_STATE_UNSPECIFIED:
            stmt = stmt.where(c.state == int(state))
        if page_token:
            after_time, after_id = _decode_page_token(page_token)
            stmt = stmt.where(
                or_(c.create_time < after_time, and_(c.create_time == after_time, c.call_id < after_id))
            )
        stmt = stmt.order_by(c.create_time.desc(), c.call_id.desc()).limit(size + 1)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        page = rows[:size]
        token = _encode_page_token(page[-1].create_time, page[-1].call_id) if len(rows) > size else ""
        return [convert.call(r) for r in page], token

    async def update_call(self, call: call_pb2.Call) -> None:
        """Overwrite state, customer_id, end_time, end_reason, summary and config.

        create_time and last_sequence are not taken from `call`: the first
        never changes and the second belongs to the event log.
        """
        _check_id(call.call_id, "call.call_id")
        c = schema.calls.c
        async with self._write() as conn:
            result = await conn.execute(
                update(schema.calls)
                .where(c.tenant_id == self._tenant, c.call_id == call.call_id)
                .values(**self._mutable_call_fields(call))
            )
            if result.rowcount == 0:
                raise NotFound(f'call "{call.call_id}" not found', metadata={"call_id": call.call_id})

    # --- event log ------------------------------------------------------------------

    async def append_event(self, event: events_pb2.CallEvent) -> None:
        """Store one durable event and the record derived from it, atomically.

        Either the event, its derived row (transcript segment, tool call,
        suggestion, context snapshot, call end) and the call's last_sequence
        are all written, or none is. A sequence already written raises
        AlreadyExists, which is what makes replays and retries safe.
        """
        kind = event.WhichOneof("payload")
        _check_id(event.call_id, "event.call_id")
        if event.sequence < 1:
            raise InvalidArgument(Violation("event.sequence", f"must be 1 or more, got {event.sequence}"))
        if kind is None:
            raise InvalidArgument(Violation("event.payload", "is not set"))
        if kind == "suggestion_completed":
            _check_id(
                event.suggestion_completed.suggestion_id, "event.suggestion_completed.suggestion_id", 128
            )
        if kind == "tool_call":
            for name, value in (
                ("tool_call_id", event.tool_call.tool_call_id),
                ("tool_name", event.tool_call.tool_name),
            ):
                if len(value) > 128:
                    raise InvalidArgument(
                        Violation(f"event.tool_call.{name}", "is longer than 128 characters")
                    )
        when = convert.from_timestamp(event.time) if event.HasField("time") else convert.now_utc()
        call_id, seq = event.call_id, event.sequence
        c = schema.calls.c
        async with self._write() as conn:
            # Updating the call first also locks its row (PostgreSQL), which
            # serialises concurrent appends to one call.
            result = await conn.execute(
                update(schema.calls)
                .where(c.tenant_id == self._tenant, c.call_id == call_id)
                .values(last_sequence=case((c.last_sequence < seq, seq), else_=c.last_sequence))
            )
            if result.rowcount == 0:
                raise NotFound(f'call "{call_id}" not found', metadata={"call_id": call_id})
            try:
                await conn.execute(
                    schema.call_events.insert().values(
                        tenant_id=self._tenant,
                        call_id=call_id,
                        sequence=seq,
                        kind=kind,
                        event_time=when,
                        data=event.SerializeToString(deterministic=True),
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(
                    f'event {seq} of call "{call_id}" was already written',
                    metadata={"call_id": call_id, "sequence": str(seq)},
                ) from exc
            await self._derive(conn, event, kind, when)

    async def _derive(
        self, conn: AsyncConnection, event: events_pb2.CallEvent, kind: str, when: datetime
    ) -> None:
        key = {"tenant_id": self._tenant, "call_id": event.call_id, "sequence": event.sequence}
        c = schema.calls.c
        this_call = and_(c.tenant_id == self._tenant, c.call_id == event.call_id)
        if kind == "transcript" and event.transcript.is_final:
            segment = event.transcript
            await conn.execute(
                schema.transcript_segments.insert().values(
                    **key,
                    segment_id=segment.segment_id,
                    role=int(segment.role),
                    text=segment.text,
                    data=segment.SerializeToString(deterministic=True),
                )
            )
        elif kind == "tool_call":
            tool = event.tool_call
            tool_call_id = tool.tool_call_id or f"#{event.sequence}"
            t = schema.tool_calls.c
            where = and_(
                t.tenant_id == key["tenant_id"], t.call_id == event.call_id, t.tool_call_id == tool_call_id
            )
            existing = (await conn.execute(select(t.status).where(where))).scalar_one_or_none()
            pending = int(events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION)
            if existing is None:
                await conn.execute(
                    schema.tool_calls.insert().values(
                        **key,
                        tool_call_id=tool_call_id,
                        tool_name=tool.tool_name,
                        status=int(tool.status),
                        data=tool.SerializeToString(deterministic=True),
                    )
                )
            elif existing == pending and tool.status != events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION:
                # A proposed write tool is recorded again once the agent decides
                # it: the row keeps its place and takes the final state.
                await conn.execute(
                    update(schema.tool_calls)
                    .where(where)
                    .values(status=int(tool.status), data=tool.SerializeToString(deterministic=True))
                )
            else:
                raise AlreadyExists(
                    f'tool call "{tool_call_id}" of call "{event.call_id}" was already recorded'
                )
        elif kind == "suggestion_completed":
            suggestion = event.suggestion_completed
            try:
                await conn.execute(
                    schema.suggestions.insert().values(
                        **key,
                        suggestion_id=suggestion.suggestion_id,
                        create_time=when,
                        superseded=False,
                        text=suggestion.text,
                        data=suggestion.SerializeToString(deterministic=True),
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(
                    f'suggestion "{suggestion.suggestion_id}" of call "{event.call_id}" was already recorded'
                ) from exc
            if suggestion.supersedes_suggestion_id:
                s = schema.suggestions.c
                await conn.execute(
                    update(schema.suggestions)
                    .where(
                        s.tenant_id == self._tenant,
                        s.call_id == event.call_id,
                        s.suggestion_id == suggestion.supersedes_suggestion_id,
                    )
                    .values(superseded=True)
                )
        elif kind == "context":
            await self._upsert_context(conn, event)
            if event.context.customer.customer_id:
                await conn.execute(
                    update(schema.calls)
                    .where(this_call)
                    .values(customer_id=event.context.customer.customer_id)
                )
        elif kind == "call_ended":
            ended = event.call_ended
            await conn.execute(
                update(schema.calls)
                .where(this_call)
                .values(
                    state=int(call_pb2.CALL_STATE_ENDED),
                    end_reason=int(ended.reason),
                    end_time=when,
                    summary=ended.summary if ended.summary else c.summary,
                )
            )

    async def _upsert_context(self, conn: AsyncConnection, event: events_pb2.CallEvent) -> None:
        """Keep only the newest snapshot; an older one arriving late must not win."""
        table = schema.call_contexts
        row = {
            "tenant_id": self._tenant,
            "call_id": event.call_id,
            "sequence": event.sequence,
            "data": event.context.SerializeToString(deterministic=True),
        }
        keys = [table.c.tenant_id, table.c.call_id]
        if conn.dialect.name == "postgresql":
            pg = postgresql.insert(table).values(**row)
            await conn.execute(
                pg.on_conflict_do_update(
                    index_elements=keys,
                    set_={"sequence": pg.excluded.sequence, "data": pg.excluded.data},
                    where=table.c.sequence < pg.excluded.sequence,
                )
            )
        else:
            lite = sqlite.insert(table).values(**row)
            await conn.execute(
                lite.on_conflict_do_update(
                    index_elements=keys,
                    set_={"sequence": lite.excluded.sequence, "data": lite.excluded.data},
                    where=table.c.sequence < lite.excluded.sequence,
                )
            )

    async def read_events(
        self, call_id: str, from_sequence: int, limit: int | None = None
    ) -> list[events_pb2.CallEvent]:
        """Stored events with sequence >= from_sequence, ascending; [] for an unknown call."""
        e = schema.call_events.c
        stmt = (
            select(e.data)
            .where(e.tenant_id == self._tenant, e.call_id == call_id, e.sequence >= from_sequence)
            .order_by(e.sequence)
        )
        if limit is not None:
            stmt = stmt.limit(max(limit, 0))
        async with self._read() as conn:
            blobs = (await conn.execute(stmt)).scalars().all()
        return [events_pb2.CallEvent.FromString(blob) for blob in blobs]

    async def get_transcript(self, call_id: str) -> list[events_pb2.TranscriptUpdate]:
        """Final transcript segments in the order they were emitted."""
        t = schema.transcript_segments.c
        async with self._read() as conn:
            blobs = (
                (
                    await conn.execute(
                        select(t.data)
                        .where(t.tenant_id == self._tenant, t.call_id == call_id)
                        .order_by(t.sequence)
                    )
                )
                .scalars()
                .all()
            )
        return [events_pb2.TranscriptUpdate.FromString(blob) for blob in blobs]

    async def get_tool_calls(self, call_id: str) -> list[events_pb2.ToolCall]:
        t = schema.tool_calls.c
        async with self._read() as conn:
            blobs = (
                (
                    await conn.execute(
                        select(t.data)
                        .where(t.tenant_id == self._tenant, t.call_id == call_id)
                        .order_by(t.sequence)
                    )
                )
                .scalars()
                .all()
            )
        return [events_pb2.ToolCall.FromString(blob) for blob in blobs]

    async def get_suggestions(self, call_id: str) -> list[assist_service_pb2.Suggestion]:
        """Suggestions in order, each with its superseded flag and latest feedback."""
        s = schema.suggestions.c
        f = schema.suggestion_feedback.c
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(schema.suggestions)
                    .where(s.tenant_id == self._tenant, s.call_id == call_id)
                    .order_by(s.sequence)
                )
            ).all()
            feedback_rows = (
                await conn.execute(
                    select(schema.suggestion_feedback)
                    .where(f.tenant_id == self._tenant, f.call_id == call_id)
                    .order_by(f.feedback_id)
                )
            ).all()
        latest = {fb.suggestion_id: fb for fb in feedback_rows}  # later rows win
        return [_suggestion(row, latest.get(row.suggestion_id)) for row in rows]

    async def latest_context(self, call_id: str) -> events_pb2.ContextUpdate | None:
        x = schema.call_contexts.c
        async with self._read() as conn:
            blob = (
                await conn.execute(select(x.data).where(x.tenant_id == self._tenant, x.call_id == call_id))
            ).scalar_one_or_none()
        return events_pb2.ContextUpdate.FromString(blob) if blob is not None else None

    async def record_feedback(
        self, call_id: str, feedback: assist_service_pb2.SuggestionFeedback
    ) -> assist_service_pb2.Suggestion:
        """Append feedback to a suggestion's history and return the suggestion with it.

        Every submission is kept (agents change their mind; analytics wants
        the history); the Suggestion exposes the latest.
        """
        if not feedback.suggestion_id:
            raise InvalidArgument(Violation("feedback.suggestion_id", "is required"))
        if not 0 <= feedback.rating <= 5:
            raise InvalidArgument(
                Violation("feedback.rating", f"must be 1 to 5 (or 0), got {feedback.rating}")
            )
        c = schema.calls.c
        s = schema.suggestions.c
        async with self._write() as conn:
            exists = (
                await conn.execute(select(c.call_id).where(c.tenant_id == self._tenant, c.call_id == call_id))
            ).first()
            if exists is None:
                raise NotFound(f'call "{call_id}" not found', metadata={"call_id": call_id})
            row = (
                await conn.execute(
                    select(schema.suggestions).where(
                        s.tenant_id == self._tenant,
                        s.call_id == call_id,
                        s.suggestion_id == feedback.suggestion_id,
                    )
                )
            ).first()
            if row is None:
                raise NotFound(
                    f'suggestion "{feedback.suggestion_id}" not found in call "{call_id}"',
                    reason="SUGGESTION_NOT_FOUND",
                    metadata={"call_id": call_id, "suggestion_id": feedback.suggestion_id},
                )
            await conn.execute(
                schema.suggestion_feedback.insert().values(
                    tenant_id=self._tenant,
                    call_id=call_id,
                    suggestion_id=feedback.suggestion_id,
                    kind=int(feedback.kind),
                    rating=feedback.rating,
                    comment=feedback.comment,
                    create_time=convert.now_utc(),
                )
            )
        result = _suggestion(row, None)
        result.feedback.CopyFrom(feedback)
        return result

    async def get_feedback_history(
        self, call_id: str, suggestion_id: str
    ) -> list[assist_service_pb2.SuggestionFeedback]:
        """Every feedback submitted on a suggestion, oldest first."""
        f = schema.suggestion_feedback.c
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(schema.suggestion_feedback)
                    .where(
                        f.tenant_id == self._tenant, f.call_id == call_id, f.suggestion_id == suggestion_id
                    )
                    .order_by(f.feedback_id)
                )
            ).all()
        return [_feedback(row) for row in rows]


def _suggestion(row: Row[Any], feedback: Row[Any] | None) -> assist_service_pb2.Suggestion:
    message = assist_service_pb2.Suggestion(
        suggestion=events_pb2.SuggestionCompleted.FromString(row.data),
        create_time=convert.to_timestamp(row.create_time),
        superseded=bool(row.superseded),
    )
    if feedback is not None:
        message.feedback.CopyFrom(_feedback(feedback))
    return message


def _feedback(row: Row[Any]) -> assist_service_pb2.SuggestionFeedback:
    return assist_service_pb2.SuggestionFeedback(
        suggestion_id=row.suggestion_id, kind=row.kind, rating=row.rating, comment=row.comment
    )


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


def _encode_page_token(create_time: datetime, call_id: str) -> str:
    raw = json.dumps([create_time.isoformat(), call_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        when, call_id = json.loads(raw)
        parsed = datetime.fromisoformat(when)
        if parsed.tzinfo is None or not isinstance(call_id, str):
            raise ValueError("malformed")
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(Violation("page_token", "is not a token returned by ListCalls")) from exc
    return parsed, call_id


if TYPE_CHECKING:

    def _store_is_a_directory(store: Store) -> Directory:
        """Lets mypy prove Store satisfies the Directory protocol structurally."""
        return store


__all__ = ["DataImportError", "ImportReport", "Store", "load_demo_document"]
