"""Importing directory data (customers, orders, tickets, policies, articles).

The format is documented in docs/data-import.md. Validation is a pure
function over the whole document and runs before anything is written, so a
bad file is rejected whole with every problem named by record and field
(`orders[3].customer_id: unknown customer "C-9999"`), and the write itself
runs in one transaction so a failure half-way cannot leave half a file
behind either. The demo data ships in this same format and goes through
this same code, which keeps the format honest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from callpilot.server.errors import InvalidArgument, Violation
from callpilot.server.store import schema
from callpilot.server.store.knowledge import fold
from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

MAX_VIOLATIONS = 100
# Bounds that keep values inside the database's integer columns.
MAX_CENTS = 10**14
MAX_QUANTITY = 1_000_000
_CENT = Decimal("0.01")
# Keeps IN (...) lists well under SQLite's bound-parameter limit.
CHUNK = 500

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_ORDER_NUMBER_RE = re.compile(r"^[A-Z0-9]{1,32}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_PHONE_PUNCTUATION = str.maketrans("", "", " -().")

TOP_LEVEL_KEYS = ("customers", "orders", "tickets", "policies", "articles")
CUSTOMER_KEYS = ("id", "name", "email", "phone", "tier", "status")
ORDER_KEYS = ("number", "customer_id", "status", "total", "currency", "order_date", "delivered_date", "items")
ITEM_KEYS = ("sku", "name", "quantity", "unit_price")
TICKET_KEYS = ("id", "customer_id", "subject", "status", "created_at")
POLICY_KEYS = ("type", "title", "body")
ARTICLE_KEYS = ("id", "title", "body", "tags")


class DataImportError(InvalidArgument):
    """A data file was rejected; `violations` lists every problem found.

    It is an InvalidArgument so that an import reached through the API
    becomes INVALID_ARGUMENT with a BadRequest detail per bad field.
    """

    def __init__(self, violations: list[Violation]) -> None:
        first = f"{violations[0].field}: {violations[0].description}"
        more = len(violations) - 1
        message = first if more == 0 else f"{first} (and {more} more problem{'s' if more > 1 else ''})"
        super().__init__(violations, message)


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    customer_id: str
    name: str
    email: str
    phone: str
    tier: str
    status: str


@dataclass(frozen=True, slots=True)
class OrderItemRecord:
    sku: str
    name: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class OrderRecord:
    order_number: str
    customer_id: str
    status: str
    total_cents: int
    currency_code: str
    order_time: datetime
    delivered_time: datetime | None
    items: tuple[OrderItemRecord, ...]


@dataclass(frozen=True, slots=True)
class TicketRecord:
    ticket_id: str
    customer_id: str
    subject: str
    status: str
    create_time: datetime


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    policy_type: str
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class ArticleRecord:
    article_id: str
    title: str
    body: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DataDocument:
    """A validated import document, normalised and ready to write."""

    customers: tuple[CustomerRecord, ...]
    orders: tuple[OrderRecord, ...]
    tickets: tuple[TicketRecord, ...]
    policies: tuple[PolicyRecord, ...]
    articles: tuple[ArticleRecord, ...]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import wrote: records per kind, and how many were new vs. replaced."""

    customers: int = 0
    orders: int = 0
    tickets: int = 0
    policies: int = 0
    articles: int = 0
    created: int = 0
    updated: int = 0

    def __str__(self) -> str:
        return (
            f"{self.customers} customers, {self.orders} orders, {self.tickets} tickets, "
            f"{self.policies} policies, {self.articles} articles "
            f"({self.created} created, {self.updated} updated)"
        )


def format_cents(cents: int) -> str:
    """Hundredths as the contract's decimal string, e.g. 12999 -> "129.99"."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def phone_digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def normalize_order_number(value: str) -> str:
    """The form order numbers are stored and looked up in.

    Callers quote "#78901", "78-901" or "78 901"; all mean "78901".
    """
    return value.strip().lstrip("#").replace(" ", "").replace("-", "").upper()


class _Problems(Exception):
    """Raised internally once MAX_VIOLATIONS problems were found."""


class _Checker:
    """Walks a document, collecting violations instead of stopping at the first."""

    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def add(self, path: str, description: str) -> None:
        self.violations.append(Violation(field=path, description=description))
        if len(self.violations) >= MAX_VIOLATIONS:
            raise _Problems

    def record(self, value: object, path: str, allowed: Sequence[str]) -> Mapping[str, object] | None:
        if not isinstance(value, Mapping):
            self.add(path, f"must be an object, got {_describe(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.add(f"{path}.{key}", f"unknown field (expected one of: {', '.join(allowed)})")
        return value

    def text(
        self,
        rec: Mapping[str, object],
        path: str,
        key: str,
        *,
        max_len: int,
        required: bool = True,
        default: str = "",
    ) -> str | None:
        value = rec.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.add(f"{path}.{key}", "is required")
                return None
            return default
        if not isinstance(value, str):
            self.add(f"{path}.{key}", f"must be a string, got {_describe(value)}")
            return None
        value = value.strip()
        if len(value) > max_len:
            self.add(f"{path}.{key}", f"is {len(value)} characters long; at most {max_len} are allowed")
            return None
        return value

    def ident(self, rec: Mapping[str, object], path: str, key: str) -> str | None:
        value = self.text(rec, path, key, max_len=64)
        if value is not None and not _ID_RE.match(value):
            self.add(
                f"{path}.{key}",
                f'"{value}" is not a valid id: use letters, digits, "_", ".", ":" or "-", starting with '
                "a letter or digit",
            )
            return None
        return value

    def money(self, rec: Mapping[str, object], path: str, key: str) -> int | None:
        value = rec.get(key)
        if value is None:
            self.add(f"{path}.{key}", "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.add(f"{path}.{key}", f'must be a decimal amount like "129.99", got {_describe(value)}')
            return None
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite():
            self.add(f"{path}.{key}", f'"{value}" is not a decimal amount like "129.99"')
            return None
        if amount < 0:
            self.add(f"{path}.{key}", f"{value} is negative")
            return None
        # Bound the size first: arithmetic on an absurd exponent would overflow.
        if amount > Decimal(MAX_CENTS) / 100:
            self.add(f"{path}.{key}", f"{value} is larger than {format_cents(MAX_CENTS)}")
            return None
        if amount != amount.quantize(_CENT):
            self.add(f"{path}.{key}", f"{value} has more than two decimal places")
            return None
        return int(amount * 100)

    def when(
        self, rec: Mapping[str, object], path: str, key: str, *, required: bool = True
    ) -> datetime | None:
        value = rec.get(key)
        if value is None:
            if required:
                self.add(f"{path}.{key}", "is required")
            return None
        parsed = parse_iso8601(value)
        if parsed is None:
            self.add(f"{path}.{key}", f"{_describe(value)} is not an ISO 8601 date or date-time")
        return parsed


def parse_iso8601(value: object) -> datetime | None:
    """An ISO 8601 date ("2026-10-28", taken as midnight UTC) or date-time.

    Date-times without an offset are taken as UTC, because import files come
    from systems that almost always mean UTC and guessing the server's zone
    would make the same file import differently on different machines.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def referenced_customer_ids(doc: object) -> set[str]:
    """Customer ids that orders and tickets of a raw document point at.

    Tolerates any junk (it runs before validation): the importer uses it to
    ask the database which of them already exist.
    """
    found: set[str] = set()
    if not isinstance(doc, Mapping):
        return found
    for key in ("orders", "tickets"):
        records = doc.get(key)
        if isinstance(records, list):
            for rec in records:
                if isinstance(rec, Mapping) and isinstance(rec.get("customer_id"), str):
                    found.add(rec["customer_id"].strip())
    return found


def validate_document(doc: object, *, known_customer_ids: Collection[str] = frozenset()) -> DataDocument:
    """Check a whole import document and return it normalised.

    Pure: no I/O. `known_customer_ids` are customers already in the
    database, which orders and tickets may reference besides the document's
    own. Raises DataImportError listing every problem (up to a hundred).
    """
    checker = _Checker()
    try:
        result = _validate(checker, doc, known_customer_ids)
    except _Problems:
        result = None
    if checker.violations or result is None:
        raise DataImportError(checker.violations or [Violation("(document)", "is not valid")])
    return result


def _lists(checker: _Checker, doc: object) -> dict[str, list[object]]:
    if not isinstance(doc, Mapping):
        checker.add(
            "(document)",
            f"must be a JSON object with lists {', '.join(TOP_LEVEL_KEYS)}, got {_describe(doc)}",
        )
        return {}
    lists: dict[str, list[object]] = {}
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            checker.add(str(key), f"unknown section (expected: {', '.join(TOP_LEVEL_KEYS)})")
    for key in TOP_LEVEL_KEYS:
        value = doc.get(key)
        if value is None:
            lists[key] = []
        elif isinstance(value, list):
            lists[key] = value
        else:
            checker.add(key, f"must be a list, got {_describe(value)}")
            lists[key] = []
    return lists


def _validate(checker: _Checker, doc: object, known_customer_ids: Collection[str]) -> DataDocument:
    lists = _lists(checker, doc)
    defined: set[str] = set()
    customers = _customers(checker, lists.get("customers", []), defined)

    def customer_ref(rec: Mapping[str, object], path: str) -> str | None:
        customer_id = checker.text(rec, path, "customer_id", max_len=64)
        if customer_id is not None and customer_id not in defined and customer_id not in known_customer_ids:
            checker.add(f"{path}.customer_id", f'unknown customer "{customer_id}"')
            return None
        return customer_id

    orders = _orders(checker, lists.get("orders", []), customer_ref)
    tickets = _tickets(checker, lists.get("tickets", []), customer_ref)
    policies = _policies(checker, lists.get("policies", []))
    articles = _articles(checker, lists.get("articles", []))
    return DataDocument(
        customers=tuple(customers),
        orders=tuple(orders),
        tickets=tuple(tickets),
        policies=tuple(policies),
        articles=tuple(articles),
    )


_CustomerRef = Callable[[Mapping[str, object], str], str | None]


def _unique(checker: _Checker, seen: dict[str, str], key: str, path: str, what: str) -> bool:
    first = seen.get(key)
    if first is not None:
        checker.add(path, f'duplicate {what} "{key}" (first at {first})')
        return False
    seen[key] = path.rsplit(".", 1)[0]
    return True


def _customers(checker: _Checker, records: list[object], declared: set[str]) -> list[CustomerRecord]:
    """Valid customers; `declared` collects every well-formed id, even of records
    with other errors, so their orders are not also reported as orphans."""
    out: list[CustomerRecord] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(records):
        path = f"customers[{i}]"
        rec = checker.record(raw, path, CUSTOMER_KEYS)
        if rec is None:
            continue
        customer_id = checker.ident(rec, path, "id")
        name = checker.text(rec, path, "name", max_len=200)
        email = checker.text(rec, path, "email", max_len=320, required=False)
        if email and not _EMAIL_RE.match(email):
            checker.add(f"{path}.email", f'"{email}" is not an email address')
            email = None
        phone = checker.text(rec, path, "phone", max_len=32, required=False)
        if phone:
            compact = phone.translate(_PHONE_PUNCTUATION)
            digits = compact[1:]
            if not (compact.startswith("+") and digits.isdigit() and 8 <= len(digits) <= 15):
                checker.add(
                    f"{path}.phone",
                    f'"{phone}" is not an international number; use E.164 like "+15551234567"',
                )
                phone = None
            else:
                phone = compact
        tier = checker.text(rec, path, "tier", max_len=32, required=False, default="standard")
        status = checker.text(rec, path, "status", max_len=32, required=False, default="active")
        if customer_id is None or not _unique(checker, seen, customer_id, f"{path}.id", "id"):
            continue
        declared.add(customer_id)
        if name is None or email is None or phone is None or tier is None or status is None:
            continue
        out.append(CustomerRecord(customer_id, name, email, phone, tier.lower(), status.lower()))
    return out


def _items(checker: _Checker, raw: object, path: str) -> list[OrderItemRecord] | None:
    if not isinstance(raw, list) or not raw:
        checker.add(
            path,
            "must be a non-empty list of items"
            if isinstance(raw, list)
            else f"must be a list, got {_describe(raw)}",
        )
        return None
    items: list[OrderItemRecord] = []
    ok = True
    for j, raw_item in enumerate(raw):
        ipath = f"{path}[{j}]"
        item = checker.record(raw_item, ipath, ITEM_KEYS)
        if item is None:
            ok = False
            continue
        sku = checker.text(item, ipath, "sku", max_len=64)
        name = checker.text(item, ipath, "name", max_len=200)
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
            checker.add(
                f"{ipath}.quantity",
                f"must be a whole number from 1 to {MAX_QUANTITY}, got {_describe(quantity)}",
            )
            quantity = None
        unit_price = checker.money(item, ipath, "unit_price")
        if sku is None or name is None or quantity is None or unit_price is None:
            ok = False
            continue
        items.append(OrderItemRecord(sku, name, quantity, unit_price))
    return items if ok else None


def _orders(checker: _Checker, records: list[object], customer_ref: _CustomerRef) -> list[OrderRecord]:
    out: list[OrderRecord] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(records):
        path = f"orders[{i}]"
        rec = checker.record(raw, path, ORDER_KEYS)
        if rec is None:
            continue
        number_raw = rec.get("number")
        number: str | None = None
        if isinstance(number_raw, int) and not isinstance(number_raw, bool):
            number_raw = str(number_raw)
        if number_raw is None or number_raw == "":
            checker.add(f"{path}.number", "is required")
        elif not isinstance(number_raw, str):
            checker.add(f"{path}.number", f"must be a string, got {_describe(number_raw)}")
        else:
            number = normalize_order_number(number_raw)
            if not _ORDER_NUMBER_RE.match(number):
                checker.add(f"{path}.number", f'"{number_raw}" is not an order number (letters and digits)')
                number = None
        customer_id = customer_ref(rec, path)
        status = checker.text(rec, path, "status", max_len=32)
        total = checker.money(rec, path, "total")
        currency = checker.text(rec, path, "currency", max_len=64)
        if currency is not None:
            currency = currency.upper()
            if not _CURRENCY_RE.match(currency):
                checker.add(f"{path}.currency", f'"{currency}" is not an ISO 4217 code like "USD"')
                currency = None
        order_time = checker.when(rec, path, "order_date")
        delivered_time = checker.when(rec, path, "delivered_date", required=False)
        bad_delivery = rec.get("delivered_date") is not None and delivered_time is None
        if (
            order_time is not None
            and delivered_time is not None
            and _delivered_before(rec.get("delivered_date"), delivered_time, order_time)
        ):
            checker.add(
                f"{path}.delivered_date",
                f"{rec.get('delivered_date')} is before order_date {rec.get('order_date')}",
            )
            bad_delivery = True
        items = _items(checker, rec.get("items"), f"{path}.items")
        if items is not None and total is not None:
            items_sum = sum(it.quantity * it.unit_price_cents for it in items)
            if items_sum != total:
                checker.add(
                    f"{path}.total",
                    f"{format_cents(total)} is not the sum of its items ({format_cents(items_sum)})",
                )
                total = None
        if number is not None and not _unique(checker, seen, number, f"{path}.number", "order number"):
            continue
        if (
            number is None
            or customer_id is None
            or status is None
            or total is None
            or currency is None
            or order_time is None
            or bad_delivery
            or items is None
        ):
            continue
        out.append(
            OrderRecord(
                number, customer_id, status.lower(), total, currency, order_time, delivered_time, tuple(items)
            )
        )
    return out


def _delivered_before(raw: object, delivered: datetime, ordered: datetime) -> bool:
    # A date-only delivery means "some time that day", so compare days.
    if isinstance(raw, str) and len(raw.strip()) == 10:
        return delivered.date() < ordered.date()
    return delivered < ordered


def _tickets(checker: _Checker, records: list[object], customer_ref: _CustomerRef) -> list[TicketRecord]:
    out: list[TicketRecord] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(records):
        path = f"tickets[{i}]"
        rec = checker.record(raw, path, TICKET_KEYS)
        if rec is None:
            continue
        ticket_id = checker.ident(rec, path, "id")
        customer_id = customer_ref(rec, path)
        subject = checker.text(rec, path, "subject", max_len=500)
        status = checker.text(rec, path, "status", max_len=32)
        created = checker.when(rec, path, "created_at")
        if ticket_id is not None and not _unique(checker, seen, ticket_id, f"{path}.id", "id"):
            continue
        if ticket_id is None or customer_id is None or subject is None or status is None or created is None:
            continue
        out.append(TicketRecord(ticket_id, customer_id, subject, status.lower(), created))
    return out


def _policies(checker: _Checker, records: list[object]) -> list[PolicyRecord]:
    out: list[PolicyRecord] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(records):
        path = f"policies[{i}]"
        rec = checker.record(raw, path, POLICY_KEYS)
        if rec is None:
            continue
        policy_type = checker.text(rec, path, "type", max_len=16)
        if policy_type is not None:
            policy_type = policy_type.lower()
            if policy_type not in schema.POLICY_TYPES:
                checker.add(
                    f"{path}.type", f'"{policy_type}" is not one of: {", ".join(schema.POLICY_TYPES)}'
                )
                policy_type = None
        title = checker.text(rec, path, "title", max_len=300)
        body = checker.text(rec, path, "body", max_len=100_000)
        if policy_type is not None and not _unique(checker, seen, policy_type, f"{path}.type", "policy type"):
            continue
        if policy_type is None or title is None or body is None:
            continue
        out.append(PolicyRecord(policy_type, title, body))
    return out


def _articles(checker: _Checker, records: list[object]) -> list[ArticleRecord]:
    out: list[ArticleRecord] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(records):
        path = f"articles[{i}]"
        rec = checker.record(raw, path, ARTICLE_KEYS)
        if rec is None:
            continue
        article_id = checker.ident(rec, path, "id")
        title = checker.text(rec, path, "title", max_len=300)
        body = checker.text(rec, path, "body", max_len=100_000)
        raw_tags = rec.get("tags", [])
        tags: list[str] | None = []
        if raw_tags is None:
            raw_tags = []
        if not isinstance(raw_tags, list):
            checker.add(f"{path}.tags", f"must be a list of strings, got {_describe(raw_tags)}")
            tags = None
        else:
            for j, tag in enumerate(raw_tags):
                if not isinstance(tag, str) or not tag.strip() or len(tag.strip()) > 64:
                    checker.add(
                        f"{path}.tags[{j}]",
                        f"must be a non-empty string of at most 64 characters, got {_describe(tag)}",
                    )
                    tags = None
                elif tags is not None:
                    tags.append(tag.strip().lower())
        if article_id is not None and not _unique(checker, seen, article_id, f"{path}.id", "id"):
            continue
        if article_id is None or title is None or body is None or tags is None:
            continue
        out.append(ArticleRecord(article_id, title, body, tuple(dict.fromkeys(tags))))
    return out


# --- writing -----------------------------------------------------------------


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


async def existing_keys(
    conn: AsyncConnection, table: Table, key: str, tenant_id: str, keys: Collection[str]
) -> set[str]:
    """Which of `keys` already exist in `table` for the tenant."""
    found: set[str] = set()
    ordered = sorted(keys)
    column = table.c[key]
    for chunk in _chunks(ordered):
        rows = await conn.execute(select(column).where(table.c.tenant_id == tenant_id, column.in_(chunk)))
        found.update(str(value) for value in rows.scalars())
    return found


async def upsert(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, object]], keys: Sequence[str]
) -> None:
    """INSERT ... ON CONFLICT DO UPDATE in the dialect at hand (both spell it the same)."""
    if not rows:
        return
    key_columns = [table.c[k] for k in keys]
    if conn.dialect.name == "postgresql":
        pg_stmt = postgresql.insert(table)
        pg_stmt = pg_stmt.on_conflict_do_update(
            index_elements=key_columns,
            set_={c.name: pg_stmt.excluded[c.name] for c in table.c if c.name not in keys},
        )
        await conn.execute(pg_stmt, list(rows))
    else:
        lite_stmt = sqlite.insert(table)
        lite_stmt = lite_stmt.on_conflict_do_update(
            index_elements=key_columns,
            set_={c.name: lite_stmt.excluded[c.name] for c in table.c if c.name not in keys},
        )
        await conn.execute(lite_stmt, list(rows))


async def write_document(
    conn: AsyncConnection, tenant_id: str, doc: DataDocument, now: datetime
) -> ImportReport:
    """Upsert a validated document inside the caller's transaction."""
    created = updated = 0

    async def count(table: Table, key: str, ids: Collection[str]) -> None:
        nonlocal created, updated
        existing = await existing_keys(conn, table, key, tenant_id, ids)
        updated += len(existing)
        created += len(ids) - len(existing)

    await count(schema.customers, "customer_id", [c.customer_id for c in doc.customers])
    await upsert(
        conn,
        schema.customers,
        [
            {
                "tenant_id": tenant_id,
                "customer_id": c.customer_id,
                "name": c.name,
                "name_folded": fold(c.name),
                "email": c.email,
                "email_lower": c.email.lower(),
                "phone": c.phone,
                "phone_digits": phone_digits(c.phone),
                "tier": c.tier,
                "status": c.status,
                "updated_at": now,
            }
            for c in doc.customers
        ],
        ("tenant_id", "customer_id"),
    )

    order_numbers = [o.order_number for o in doc.orders]
    await count(schema.orders, "order_number", order_numbers)
    await upsert(
        conn,
        schema.orders,
        [
            {
                "tenant_id": tenant_id,
                "order_number": o.order_number,
                "customer_id": o.customer_id,
                "status": o.status,
                "total_cents": o.total_cents,
                "currency_code": o.currency_code,
                "order_time": o.order_time,
                "delivered_time": o.delivered_time,
                "updated_at": now,
            }
            for o in doc.orders
        ],
        ("tenant_id", "order_number"),
    )
    # An upserted order's lines are replaced, not merged: the file is the truth.
    for chunk in _chunks(order_numbers):
        await conn.execute(
            delete(schema.order_items).where(
                schema.order_items.c.tenant_id == tenant_id, schema.order_items.c.order_number.in_(chunk)
            )
        )
    item_rows = [
        {
            "tenant_id": tenant_id,
            "order_number": o.order_number,
            "line_no": line_no,
            "sku": it.sku,
            "name": it.name,
            "quantity": it.quantity,
            "unit_price_cents": it.unit_price_cents,
        }
        for o in doc.orders
        for line_no, it in enumerate(o.items, start=1)
    ]
    if item_rows:
        await conn.execute(schema.order_items.insert(), item_rows)

    await count(schema.tickets, "ticket_id", [t.ticket_id for t in doc.tickets])
    await upsert(
        conn,
        schema.tickets,
        [
            {
                "tenant_id": tenant_id,
                "ticket_id": t.ticket_id,
                "customer_id": t.customer_id,
                "subject": t.subject,
                "status": t.status,
                "create_time": t.create_time,
                "updated_at": now,
            }
            for t in doc.tickets
        ],
        ("tenant_id", "ticket_id"),
    )

    await count(schema.policies, "policy_type", [p.policy_type for p in doc.policies])
    await upsert(
        conn,
        schema.policies,
        [
            {
                "tenant_id": tenant_id,
                "policy_type": p.policy_type,
                "title": p.title,
                "body": p.body,
                "updated_at": now,
            }
            for p in doc.policies
        ],
        ("tenant_id", "policy_type"),
    )

    await count(schema.articles, "article_id", [a.article_id for a in doc.articles])
    await upsert(
        conn,
        schema.articles,
        [
            {
                "tenant_id": tenant_id,
                "article_id": a.article_id,
                "title": a.title,
                "body": a.body,
                "tags": list(a.tags),
                "updated_at": now,
            }
            for a in doc.articles
        ],
        ("tenant_id", "article_id"),
    )
    return ImportReport(
        customers=len(doc.customers),
        orders=len(doc.orders),
        tickets=len(doc.tickets),
        policies=len(doc.policies),
        articles=len(doc.articles),
        created=created,
        updated=updated,
    )


def parse_json(text: str | bytes) -> object:
    """Decode an import file, reporting a syntax error the way validation errors are reported."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataImportError(
            [
                Violation(
                    "(document)", f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
                )
            ]
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataImportError([Violation("(document)", f"is not UTF-8 text: {exc.reason}")]) from exc
