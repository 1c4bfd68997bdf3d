"""The import document as pydantic models: the one statement of the format.

Validation (validate.py) runs these models, and docs/data-import.md and
docs/data-import.schema.json are generated from them (docgen.py), so the
documented rules are the enforced ones. Each field's `description` is its
row in the documentation's table; a model's docstring is its section's text.

Field values are checked by the rules in rules.py (which give the messages
a person reads); the `Field` constraints repeat the limits so that the
JSON Schema states them too. Rules that span records (unique ids, orders
and tickets of a known customer) are in validate.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from callpilot.server.store import schema
from callpilot.server.store.importer import rules
from callpilot.server.store.importer.normalize import format_cents
from callpilot.server.store.importer.rules import MAX_QUANTITY, day_or_time, problem
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

_MONEY_SCHEMA = WithJsonSchema(
    {"type": ["string", "number"], "pattern": r"^\d+(\.\d{1,2})?$", "examples": ["129.99"]}
)
_DATE_SCHEMA = WithJsonSchema(
    {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}], "examples": ["2026-10-28"]}
)

Id = Annotated[
    str,
    BeforeValidator(rules.ident),
    Field(json_schema_extra={"pattern": rules.ID_PATTERN}, description="id, unique in the file"),
]
CustomerRef = Annotated[
    str,
    BeforeValidator(rules.text(64)),
    Field(max_length=64, description="a customer in this file or already in the database"),
]
Money = Annotated[int, BeforeValidator(rules.money), _MONEY_SCHEMA]
Date = Annotated[datetime, BeforeValidator(rules.when), _DATE_SCHEMA]


def _text(max_len: int, **kwargs: Any) -> BeforeValidator:
    return BeforeValidator(rules.text(max_len, **kwargs))


class _Record(BaseModel):
    # Unknown fields are errors so that a typo ("emial") cannot silently drop data.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class Customer(_Record):
    """A customer: who calls. Phone and email are how a caller is recognised."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "C-1001",
                    "name": "Maria Garcia",
                    "email": "maria.garcia@example.com",
                    "phone": "+15550100101",
                    "tier": "gold",
                    "status": "active",
                }
            ]
        }
    )

    id: Id
    name: Annotated[str, _text(200), Field(max_length=200, description="at most 200 characters")]
    email: Annotated[
        str,
        BeforeValidator(rules.email),
        Field(max_length=320, description="an email address; lookups ignore case"),
    ] = ""
    phone: Annotated[
        str,
        BeforeValidator(rules.phone),
        Field(
            max_length=32,
            description='international E.164 form, e.g. `"+15550100101"`. Spaces, dashes, dots and '
            "parentheses are removed. Lookups compare digits only, so callers may use any format",
        ),
    ] = ""
    tier: Annotated[
        str,
        _text(32, required=False, default="standard", lower=True),
        Field(max_length=32, description="e.g. `standard`, `gold`, `platinum`; stored in lower case"),
    ] = "standard"
    status: Annotated[
        str,
        _text(32, required=False, default="active", lower=True),
        Field(max_length=32, description="e.g. `active`, `suspended`, `closed`; stored in lower case"),
    ] = "active"

    # The names of the stored columns, as the validated records exposed them before the models.
    @property
    def customer_id(self) -> str:
        return self.id


class OrderItem(_Record):
    """One line of an order."""

    sku: Annotated[str, _text(64), Field(max_length=64, description="at most 64 characters")]
    name: Annotated[str, _text(200), Field(max_length=200, description="at most 200 characters")]
    quantity: Annotated[
        int,
        BeforeValidator(rules.quantity),
        Field(ge=1, le=MAX_QUANTITY, description=f"whole number, 1 to {MAX_QUANTITY:,}"),
    ]
    unit_price: Annotated[Money, Field(description="money")]

    @property
    def unit_price_cents(self) -> int:
        return self.unit_price


class Order(_Record):
    """An order and its items. An order that is imported again has its items replaced, not merged."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "number": "78901",
                    "customer_id": "C-1001",
                    "status": "delivered",
                    "items": [
                        {
                            "sku": "WH-100",
                            "name": "Wireless Headphones",
                            "quantity": 1,
                            "unit_price": "129.99",
                        }
                    ],
                    "total": "129.99",
                    "currency": "USD",
                    "order_date": "2026-10-28",
                    "delivered_date": "2026-11-02",
                }
            ]
        }
    )

    number: Annotated[
        str,
        BeforeValidator(rules.order_number),
        WithJsonSchema({"type": ["string", "integer"]}),
        Field(
            description="the number customers quote. Spaces, dashes and a leading `#` are removed and "
            'letters are upper-cased, so `"#78-901"` is stored as `"78901"`. Must then be 1 to 32 '
            "letters or digits, unique in the file. A JSON number is accepted too"
        ),
    ]
    customer_id: CustomerRef
    status: Annotated[
        str,
        _text(32, lower=True),
        Field(
            max_length=32,
            description="e.g. `processing`, `shipped`, `delivered`, `cancelled`, `refunded` (lower-cased)",
        ),
    ]
    # Before `total`, which is checked against them.
    items: Annotated[
        list[OrderItem],
        BeforeValidator(rules.items_list),
        Field(min_length=1, description="a non-empty list of items"),
    ]
    total: Annotated[
        Money, Field(description="money; must equal the sum of `quantity * unit_price` over `items`")
    ]
    currency: Annotated[
        str,
        BeforeValidator(rules.currency),
        Field(
            json_schema_extra={"pattern": "^[A-Za-z]{3}$"},
            description="ISO 4217 code, e.g. `USD` (upper-cased)",
        ),
    ]
    order_date: Annotated[Date, Field(description="date")]
    delivered_date: Annotated[
        datetime | None,
        BeforeValidator(rules.optional_when),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "format": "date"},
                    {"type": "string", "format": "date-time"},
                    {"type": "null"},
                ]
            }
        ),
        Field(
            description="date or `null`. Must not be before `order_date`; a date-only value is compared by day"
        ),
    ] = None

    @field_validator("total")
    @classmethod
    def _total_is_sum_of_items(cls, total: int, info: ValidationInfo) -> int:
        items: list[OrderItem] | None = info.data.get("items")
        if items is not None:
            items_sum = sum(it.quantity * it.unit_price for it in items)
            if items_sum != total:
                raise problem(
                    f"{format_cents(total)} is not the sum of its items ({format_cents(items_sum)})"
                )
        return total

    @field_validator("delivered_date", mode="wrap")
    @classmethod
    def _delivered_after_order(cls, raw: object, handler: Any, info: ValidationInfo) -> datetime | None:
        delivered: datetime | None = handler(raw)
        ordered: datetime | None = info.data.get("order_date")
        if delivered is None or ordered is None:
            return delivered
        # A date-only delivery means "some time that day", so compare days.
        date_only = isinstance(raw, str) and len(raw.strip()) == 10
        if (delivered.date() < ordered.date()) if date_only else (delivered < ordered):
            raise problem(f"{raw} is before order_date {day_or_time(ordered)}")
        return delivered

    @property
    def order_number(self) -> str:
        return self.number

    @property
    def total_cents(self) -> int:
        return self.total

    @property
    def currency_code(self) -> str:
        return self.currency

    @property
    def order_time(self) -> datetime:
        return self.order_date

    @property
    def delivered_time(self) -> datetime | None:
        return self.delivered_date


class Ticket(_Record):
    """A support ticket of a customer."""

    id: Id
    customer_id: CustomerRef
    subject: Annotated[str, _text(500), Field(max_length=500, description="at most 500 characters")]
    status: Annotated[
        str,
        _text(32, lower=True),
        Field(max_length=32, description="e.g. `open`, `pending`, `closed` (lower-cased)"),
    ]
    created_at: Annotated[Date, Field(description="date")]

    @property
    def ticket_id(self) -> str:
        return self.id

    @property
    def create_time(self) -> datetime:
        return self.created_at


class Policy(_Record):
    """A policy the assistant quotes to agents as written.

    Write policies with concrete numbers ("within 30 days of delivery", "5-7
    business days").
    """

    type: Annotated[
        str,
        BeforeValidator(rules.policy_type),
        Field(
            json_schema_extra={"enum": list(schema.POLICY_TYPES)},
            description=f"one of {', '.join(f'`{t}`' for t in schema.POLICY_TYPES)}; unique in the file",
        ),
    ]
    title: Annotated[str, _text(300), Field(max_length=300, description="at most 300 characters")]
    body: Annotated[
        str,
        _text(100_000),
        Field(max_length=100_000, description="the full text, at most 100,000 characters"),
    ]

    @property
    def policy_type(self) -> str:
        return self.type


Tag = Annotated[str, BeforeValidator(rules.tag), Field(min_length=1, max_length=64)]


class Article(_Record):
    """A knowledge-base article.

    Knowledge search ranks articles with BM25 over the title, tags and body.
    Words in the title and tags count three times as much as words in the
    body. Each hit's snippet is the body sentence that best matches the
    query. So give every article a title that says what it answers, a few
    tags with the words callers use, and short sentences.
    """

    id: Id
    title: Annotated[str, _text(300), Field(max_length=300, description="at most 300 characters")]
    body: Annotated[str, _text(100_000), Field(max_length=100_000, description="at most 100,000 characters")]
    tags: Annotated[
        tuple[Tag, ...],
        BeforeValidator(rules.tag_list),
        Field(description="list of strings, each at most 64 characters; lower-cased, duplicates removed"),
    ] = ()

    @property
    def article_id(self) -> str:
        return self.id

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(tags))


class ImportDocument(BaseModel):
    """A directory import: up to five lists, every one optional.

    Any other top-level key is rejected, and so is any unknown field in a
    record, so that a typo cannot silently drop data.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, title="Callpilot data import"
    )

    customers: Annotated[list[Customer], BeforeValidator(rules.section)] = Field(default_factory=list)
    orders: Annotated[list[Order], BeforeValidator(rules.section)] = Field(default_factory=list)
    tickets: Annotated[list[Ticket], BeforeValidator(rules.section)] = Field(default_factory=list)
    policies: Annotated[list[Policy], BeforeValidator(rules.section)] = Field(default_factory=list)
    articles: Annotated[list[Article], BeforeValidator(rules.section)] = Field(default_factory=list)


#: The sections in document (and report) order, with the model of their records.
SECTIONS: dict[str, type[_Record]] = {
    "customers": Customer,
    "orders": Order,
    "tickets": Ticket,
    "policies": Policy,
    "articles": Article,
}
