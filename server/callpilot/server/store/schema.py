"""Table definitions shared by the store's queries and Alembic's autogenerate.

The migrations in `migrations/versions/` are the source of truth for what a
database looks like; this module must describe the same schema so queries
and `compare_metadata` (run by the tests on both backends) agree with it.

Design choices that hold across tables:

- Every table is keyed by `tenant_id` first, so one database can hold many
  tenants and every index serves tenant-scoped queries.
- Enum values from the contract are stored as their proto numbers, which
  never change, rather than their names, which may be renamed.
- Money is stored as integer hundredths so sums are exact on SQLite too
  (SQLite has no decimal type and would round through floats).
- Call-side records keep the serialized proto next to a few queryable
  columns, so reading a record back returns exactly what was written even
  when the contract grows new fields.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID_LENGTH = 64
POLICY_TYPES = ("return", "refund", "warranty", "sla")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL keeps the zone (timestamptz) but SQLite stores text without
    one, so values are converted to UTC on the way in and stamped as UTC on
    the way out; comparisons and keyset pagination then behave the same on
    both, because SQLite's fixed-width text sorts chronologically.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _tenant() -> Column[str]:
    return Column("tenant_id", String(ID_LENGTH), nullable=False)


customers = Table(
    "customers",
    metadata,
    _tenant(),
    Column("customer_id", String(ID_LENGTH), nullable=False),
    Column("name", Text, nullable=False),
    # Case- and accent-folded name, so "jose" finds "José" with a plain LIKE.
    Column("name_folded", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("email_lower", Text, nullable=False),
    Column("phone", String(32), nullable=False),
    # Digits only, so any caller-id format matches.
    Column("phone_digits", String(32), nullable=False),
    Column("tier", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "customer_id"),
    Index("ix_customers_email", "tenant_id", "email_lower"),
    Index("ix_customers_phone", "tenant_id", "phone_digits"),
)

orders = Table(
    "orders",
    metadata,
    _tenant(),
    Column("order_number", String(32), nullable=False),
    Column("customer_id", String(ID_LENGTH), nullable=False),
    Column("status", String(32), nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("order_time", UtcDateTime, nullable=False),
    Column("delivered_time", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "order_number"),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.customer_id"]),
    Index("ix_orders_customer", "tenant_id", "customer_id", "order_time"),
)

order_items = Table(
    "order_items",
    metadata,
    _tenant(),
    Column("order_number", String(32), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("name", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "order_number", "line_no"),
    ForeignKeyConstraint(
        ["tenant_id", "order_number"],
        ["orders.tenant_id", "orders.order_number"],
        ondelete="CASCADE",
    ),
)

tickets = Table(
    "tickets",
    metadata,
    _tenant(),
    Column("ticket_id", String(ID_LENGTH), nullable=False),
    Column("customer_id", String(ID_LENGTH), nullable=False),
    Column("subject", Text, nullable=False),
    Column("status", String(32), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "ticket_id"),
    ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.customer_id"]),
    Index("ix_tickets_customer", "tenant_id", "customer_id", "create_time"),
)

policies = Table(
    "policies",
    metadata,
    _tenant(),
    Column("policy_type", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "policy_type"),
    CheckConstraint("policy_type IN ('return', 'refund', 'warranty', 'sla')", name="policy_type"),
)

articles = Table(
    "articles",
    metadata,
    _tenant(),
    Column("article_id", String(ID_LENGTH), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    # Lets a search notice, with one cheap query, that its cached index is stale.
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("tenant_id", "article_id"),
)

calls = Table(
    "calls",
    metadata,
    _tenant(),
    Column("call_id", String(ID_LENGTH), nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("customer_id", String(ID_LENGTH), nullable=False),
    Column("config", LargeBinary, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("end_time", UtcDateTime, nullable=True),
    Column("end_reason", SmallInteger, nullable=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("summary", Text, nullable=False),
    PrimaryKeyConstraint("tenant_id", "call_id"),
    # Keyset pagination, newest first, with and without a state filter.
    Index("ix_calls_created", "tenant_id", "create_time", "call_id"),
    Index("ix_calls_state_created", "tenant_id", "state", "create_time", "call_id"),
)

call_events = Table(
    "call_events",
    metadata,
    _tenant(),
    Column("call_id", String(ID_LENGTH), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("event_time", UtcDateTime, nullable=False),
    Column("data", LargeBinary, nullable=False),
    # The primary key is what makes a sequence impossible to write twice.
    PrimaryKeyConstraint("tenant_id", "call_id", "sequence"),
    ForeignKeyConstraint(["tenant_id", "call_id"], ["calls.tenant_id", "calls.call_id"], ondelete="CASCADE"),
)


def _from_event() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "call_id", "sequence"],
        ["call_events.tenant_id", "call_events.call_id", "call_events.sequence"],
        ondelete="CASCADE",
    )


transcript_segments = Table(
    "transcript_segments",
    metadata,
    _tenant(),
    Column("call_id", String(ID_LENGTH), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("segment_id", Text, nullable=False),
    Column("role", SmallInteger, nullable=False),
    Column("text", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("tenant_id", "call_id", "sequence"),
    _from_event(),
)

tool_calls = Table(
    "tool_calls",
    metadata,
    _tenant(),
    Column("call_id", String(ID_LENGTH), nullable=False),
    Column("tool_call_id", String(128), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("tool_name", String(128), nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("tenant_id", "call_id", "tool_call_id"),
    _from_event(),
    Index("ix_tool_calls_sequence", "tenant_id", "call_id", "sequence"),
)

suggestions = Table(
    "suggestions",
    metadata,
    _tenant(),
    Column("call_id", String(ID_LENGTH), nullable=False),
    Column("suggestion_id", String(128), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("superseded", Boolean, nullable=False),
    Column("text", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("tenant_id", "call_id", "suggestion_id"),
    _from_event(),
    Index("ix_suggestions_sequence", "tenant_id", "call_id", "sequence"),
)

suggestion_feedback = Table(
    "suggestion_feedback",
    metadata,
    # SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
    Column("feedback_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    _tenant(),
    Column("call_id", String(ID_LENGTH), nullable=False),
    Column("suggestion_id", String(128), nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("rating", SmallInteger, nullable=False),
    Column("comment", Text, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("feedback_id"),
    ForeignKeyConstraint(
        ["tenant_id", "call_id", "suggestion_id"],
        ["suggestions.tenant_id", "suggestions.call_id", "suggestions.suggestion_id"],
        ondelete="CASCADE",
    ),
    Index("ix_suggestion_feedback_suggestion", "tenant_id", "call_id", "suggestion_id", "feedback_id"),
)

call_contexts = Table(
    "call_contexts",
    metadata,
    _tenant(),
    Column("call_id", String(ID_LENGTH), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("tenant_id", "call_id"),
    ForeignKeyConstraint(["tenant_id", "call_id"], ["calls.tenant_id", "calls.call_id"], ondelete="CASCADE"),
)

DIRECTORY_TABLES = (customers, orders, order_items, tickets, policies, articles)

api_keys = Table(
    "api_keys",
    metadata,
    # The public half of a key (`cp_<key_id>_<secret>`): safe to show and log.
    Column("key_id", String(32), nullable=False),
    _tenant(),
    Column("role", String(16), nullable=False),
    Column("name", Text, nullable=False),
    # SHA-256 of the whole key. Keys carry 256 bits of randomness, so a fast
    # hash is enough (nothing to brute-force) and checking one costs microseconds.
    Column("secret_sha256", String(64), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("last_used_time", UtcDateTime, nullable=True),
    Column("revoke_time", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("key_id"),
    Index("ix_api_keys_tenant", "tenant_id", "create_time"),
)

join_tokens = Table(
    "join_tokens",
    metadata,
    # SHA-256 of the token: a leaked database does not let anyone join a call.
    Column("token_sha256", String(64), nullable=False),
    _tenant(),
    Column("call_id", String(ID_LENGTH), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("expire_time", UtcDateTime, nullable=False),
    Column("used_time", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("token_sha256"),
    Index("ix_join_tokens_expiry", "expire_time"),
)

# --- outbound webhooks (migration 0003; queries in callpilot.server.webhooks.outbox) ---

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("endpoint_id", String(40), nullable=False),
    _tenant(),
    Column("url", Text, nullable=False),
    # The Standard Webhooks signing secret ("whsec_" + base64). It must be
    # readable to sign, so it is stored as is: protect the database accordingly.
    Column("secret", Text, nullable=False),
    # Comma-separated event types, e.g. "call.ended,tool.decided".
    Column("event_types", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    # Start of the current run of failed attempts; NULL after a success.
    Column("failing_since", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("endpoint_id"),
    Index("ix_webhook_endpoints_tenant", "tenant_id", "create_time"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    # Sent as the `webhook-id` header on every attempt: receivers deduplicate by it.
    Column("delivery_id", String(40), nullable=False),
    _tenant(),
    Column("endpoint_id", String(40), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("call_id", String(ID_LENGTH), nullable=False),
    # The exact JSON body, built from stored (redacted) data when the event was written.
    Column("payload", Text, nullable=False),
    # 1 pending, 2 delivered, 3 failed (WebhookDeliveryState numbers).
    Column("state", SmallInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    # When the row may next be claimed. A claim moves it a lease ahead, so a
    # worker that dies mid-delivery leaves the row due again once the lease ends.
    Column("next_attempt_time", UtcDateTime, nullable=True),
    Column("delivered_time", UtcDateTime, nullable=True),
    Column("lease_owner", String(64), nullable=False),
    Column("last_error", Text, nullable=False),
    PrimaryKeyConstraint("delivery_id"),
    ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.endpoint_id"], ondelete="CASCADE"),
    Index("ix_webhook_deliveries_due", "state", "next_attempt_time"),
    Index("ix_webhook_deliveries_endpoint", "endpoint_id", "create_time"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("attempt_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    _tenant(),
    Column("delivery_id", String(40), nullable=False),
    Column("attempt_time", UtcDateTime, nullable=False),
    # 0 when no HTTP response came back (timeout, refused connection).
    Column("http_status", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    PrimaryKeyConstraint("attempt_id"),
    ForeignKeyConstraint(["delivery_id"], ["webhook_deliveries.delivery_id"], ondelete="CASCADE"),
    Index("ix_webhook_attempts_delivery", "delivery_id", "attempt_id"),
)

# --- call wrap-ups (migration 0004; queries in store/wrapups.py) ---

wrapups = Table(
    "wrapups",
    metadata,
    _tenant(),
    Column("call_id", String(ID_LENGTH), nullable=False),
    # DISPOSITION_* number, queryable for analytics; `data` holds the whole WrapUp.
    Column("disposition", SmallInteger, nullable=False),
    # The principal's subject (key id or token `sub`) of the last save.
    Column("updated_by", Text, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("tenant_id", "call_id"),
    ForeignKeyConstraint(["tenant_id", "call_id"], ["calls.tenant_id", "calls.call_id"], ondelete="CASCADE"),
)
