"""Importing directory data: good files, upserts, and bad files rejected whole."""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from callpilot.server.errors import InvalidArgument
from callpilot.server.store import DataImportError, Store, importer, validate_document
from callpilot.v1 import directory_pb2

CountRows = Callable[[Store], Awaitable[dict[str, int]]]


def good_document() -> dict[str, Any]:
    return {
        "customers": [
            {
                "id": "C-1",
                "name": "Ada Lovelace",
                "email": "Ada@Example.org",
                "phone": "+44 20 7946 0018",
                "tier": "platinum",
                "status": "active",
            },
            {"id": "C-2", "name": "Alan Turing", "email": "alan@example.org", "phone": "+442079460019"},
        ],
        "orders": [
            {
                "number": "10001",
                "customer_id": "C-1",
                "status": "delivered",
                "total": "59.97",
                "currency": "gbp",
                "order_date": "2026-09-01T10:30:00+01:00",
                "delivered_date": "2026-09-03",
                "items": [
                    {"sku": "CB-120", "name": "Cable", "quantity": 3, "unit_price": "14.99"},
                    {"sku": "ST-1", "name": "Sticker", "quantity": 1, "unit_price": 15.0},
                ],
            },
            {
                "number": "#10-002",
                "customer_id": "C-2",
                "status": "processing",
                "total": 10,
                "currency": "GBP",
                "order_date": "2026-11-20",
                "delivered_date": None,
                "items": [{"sku": "X", "name": "Thing", "quantity": 2, "unit_price": "5"}],
            },
        ],
        "tickets": [
            {
                "id": "T-1",
                "customer_id": "C-1",
                "subject": "Cable too short",
                "status": "open",
                "created_at": "2026-09-05T09:00:00Z",
            }
        ],
        "policies": [
            {"type": "RETURN", "title": "Returns", "body": "Return within 14 days of delivery."},
        ],
        "articles": [
            {
                "id": "KB-1",
                "title": "Cable lengths",
                "body": "Our cables come in 1 m and 2 m. Longer ones ship in 3 days.",
                "tags": ["Cables", "cables", "products"],
            }
        ],
    }


async def test_import_a_good_file(empty_store: Store) -> None:
    report = await empty_store.import_data(good_document())
    assert (report.customers, report.orders, report.tickets, report.policies, report.articles) == (
        2,
        2,
        1,
        1,
        1,
    )
    assert (report.created, report.updated) == (7, 0)
    ada = await empty_store.find_customer(email="ada@example.org")
    assert ada is not None and ada.phone == "+442079460018" and ada.tier == "platinum"
    alan = await empty_store.get_customer("C-2")
    assert alan is not None and (alan.tier, alan.status) == ("standard", "active")  # defaults
    order = await empty_store.get_order("10001")
    assert order is not None
    assert (order.total, order.currency_code) == ("59.97", "GBP")
    assert [(i.sku, i.quantity, i.unit_price) for i in order.items] == [
        ("CB-120", 3, "14.99"),
        ("ST-1", 1, "15.00"),
    ]
    assert order.order_time.ToJsonString() == "2026-09-01T09:30:00Z"
    normalised = await empty_store.get_order("10002")
    assert (
        normalised is not None and normalised.total == "10.00" and not normalised.HasField("delivered_time")
    )
    assert [t.ticket_id for t in await empty_store.customer_tickets("C-1")] == ["T-1"]
    policy = await empty_store.get_policy(directory_pb2.POLICY_TYPE_RETURN)
    assert policy is not None and policy.title == "Returns"
    (hit,) = await empty_store.search_knowledge("cable")
    assert list(hit.article.tags) == ["cables", "products"]


async def test_import_accepts_json_text(empty_store: Store) -> None:
    text = json.dumps(good_document())
    assert (await empty_store.import_data(text)).customers == 2
    assert (await empty_store.import_data(text.encode())).updated == 7


async def test_import_upserts_existing_records(empty_store: Store, count_rows: CountRows) -> None:
    await empty_store.import_data(good_document())
    doc = good_document()
    doc["customers"][0]["name"] = "Augusta Ada King"
    doc["orders"][0]["items"] = [{"sku": "CB-120", "name": "Cable", "quantity": 1, "unit_price": "14.99"}]
    doc["orders"][0]["total"] = "14.99"
    doc["customers"].append({"id": "C-3", "name": "Grace Hopper", "email": "grace@example.org", "phone": ""})
    report = await empty_store.import_data(doc)
    assert (report.created, report.updated) == (1, 7)
    ada = await empty_store.get_customer("C-1")
    assert ada is not None and ada.name == "Augusta Ada King"
    order = await empty_store.get_order("10001")
    assert order is not None and order.total == "14.99" and len(order.items) == 1
    counts = await count_rows(empty_store)
    assert counts["customers"] == 3 and counts["orders"] == 2 and counts["order_items"] == 2


async def test_import_may_reference_customers_already_stored(store: Store) -> None:
    report = await store.import_data(
        {
            "tickets": [
                {
                    "id": "T-9000",
                    "customer_id": "C-1001",
                    "subject": "Headphones crackle",
                    "status": "open",
                    "created_at": "2026-11-23",
                }
            ]
        }
    )
    assert report.tickets == 1
    assert (await store.customer_tickets("C-1001"))[0].ticket_id == "T-9000"


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last = keys[-1]
        if value is _DELETE:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return mutate


_DELETE = object()


def _append_order(**overrides: object) -> Callable[[dict[str, Any]], None]:
    """Adds a third order, last in the file, with a problem in it."""

    def mutate(doc: dict[str, Any]) -> None:
        order = copy.deepcopy(doc["orders"][0])
        order["number"] = "10003"
        order.update(overrides)
        doc["orders"].append(order)

    return mutate


BAD_FILES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    (
        "unknown customer",
        _append_order(customer_id="C-9999"),
        "orders[2].customer_id",
        'unknown customer "C-9999"',
    ),
    (
        "ticket customer",
        _set("tickets.0.customer_id", "C-404"),
        "tickets[0].customer_id",
        'unknown customer "C-404"',
    ),
    ("missing field", _set("customers.1.name", _DELETE), "customers[1].name", "is required"),
    ("wrong type", _set("orders.1.items.0.quantity", "two"), "orders[1].items[0].quantity", "whole number"),
    ("zero quantity", _set("orders.1.items.0.quantity", 0), "orders[1].items[0].quantity", "from 1 to"),
    ("bad date", _append_order(order_date="2026-13-01"), "orders[2].order_date", "not an ISO 8601"),
    (
        "delivered early",
        _append_order(delivered_date="2026-08-30"),
        "orders[2].delivered_date",
        "before order_date",
    ),
    ("total mismatch", _append_order(total="60.00"), "orders[2].total", "not the sum of its items (59.97)"),
    (
        "money precision",
        _set("orders.1.items.0.unit_price", "5.001"),
        "orders[1].items[0].unit_price",
        "two decimal",
    ),
    ("huge money", _set("orders.1.total", "1e20"), "orders[1].total", "larger than"),
    ("negative money", _set("orders.1.total", "-10"), "orders[1].total", "negative"),
    (
        "duplicate customer",
        _set("customers.1.id", "C-1"),
        "customers[1].id",
        'duplicate id "C-1" (first at customers[0])',
    ),
    (
        "duplicate order",
        _append_order(number="#10-001"),
        "orders[2].number",
        'duplicate order number "10001"',
    ),
    (
        "policy type",
        _set("policies.0.type", "privacy"),
        "policies[0].type",
        "not one of: return, refund, warranty, sla",
    ),
    ("unknown field", _set("customers.0.emial", "x@example.org"), "customers[0].emial", "unknown field"),
    ("bad email", _set("customers.1.email", "alan-at-example"), "customers[1].email", "not an email address"),
    ("bad phone", _set("customers.1.phone", "555-0101"), "customers[1].phone", "E.164"),
    (
        "bad currency",
        _set("orders.1.currency", "POUNDS"),
        "orders[1].currency",
        '"POUNDS" is not an ISO 4217 code',
    ),
    ("tags type", _set("articles.0.tags", "cables"), "articles[0].tags", "list of strings"),
    ("no items", _set("orders.1.items", []), "orders[1].items", "non-empty list"),
    ("bad id", _set("tickets.0.id", "T 1"), "tickets[0].id", "not a valid id"),
    ("record type", _set("articles.0", "KB-1"), "articles[0]", "must be an object"),
    ("section type", _set("orders", {"number": "1"}), "orders", "must be a list"),
    ("unknown section", _set("products", []), "products", "unknown section"),
]


@pytest.mark.parametrize(("case", "mutate", "field", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_validator_names_record_and_field(
    case: str, mutate: Callable[[dict[str, Any]], None], field: str, message: str
) -> None:
    doc = good_document()
    mutate(doc)
    with pytest.raises(DataImportError) as info:
        validate_document(doc)
    error = info.value
    assert isinstance(error, InvalidArgument)
    assert error.violations[0].field == field, error.message
    assert message in error.violations[0].description, error.message
    assert str(error).startswith(f"{field}: ")


ROLLBACK_CASES = [
    c
    for c in BAD_FILES
    if c[0] in {"unknown customer", "total mismatch", "duplicate order", "bad phone", "unknown section"}
]


@pytest.mark.parametrize(
    ("case", "mutate", "field", "message"), ROLLBACK_CASES, ids=[c[0] for c in ROLLBACK_CASES]
)
async def test_bad_file_imports_nothing(
    store: Store,
    count_rows: CountRows,
    case: str,
    mutate: Callable[[dict[str, Any]], None],
    field: str,
    message: str,
) -> None:
    before = await count_rows(store)
    doc = good_document()
    # Records that would update seeded data come first; the bad one is last.
    doc["customers"].insert(
        0, {"id": "C-1001", "name": "Not Maria", "email": "x@example.org", "phone": "+15550000000"}
    )
    mutate(doc)
    with pytest.raises(DataImportError, match=field.replace("[", r"\[").replace("]", r"\]")):
        await store.import_data(doc)
    assert await count_rows(store) == before
    maria = await store.get_customer("C-1001")
    assert maria is not None and maria.name == "Maria Garcia"


async def test_failure_while_writing_rolls_back_everything(
    empty_store: Store, count_rows: CountRows, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importer.write_document

    async def write_then_fail(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr("callpilot.server.store.loading.write_document", write_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        await empty_store.import_data(good_document())
    assert set((await count_rows(empty_store)).values()) == {0}


def test_every_problem_is_reported() -> None:
    doc = good_document()
    doc["customers"][0]["email"] = "nope"
    doc["orders"][1]["customer_id"] = "C-9"
    doc["articles"][0]["title"] = ""
    with pytest.raises(DataImportError) as info:
        validate_document(doc)
    assert [v.field for v in info.value.violations] == [
        "customers[0].email",
        "orders[1].customer_id",
        "articles[0].title",
    ]
    assert str(info.value).endswith("(and 2 more problems)")


def test_invalid_customer_is_not_also_reported_as_unknown() -> None:
    doc = good_document()
    doc["customers"][0]["email"] = "nope"
    with pytest.raises(DataImportError) as info:
        validate_document(doc)
    assert [v.field for v in info.value.violations] == ["customers[0].email"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "(document): must be a JSON object"),
        ("not json {", "(document): is not valid JSON"),
        (b"\xff\xfe", "(document): is not"),
    ],
)
async def test_whole_document_errors(empty_store: Store, doc: object, message: str) -> None:
    with pytest.raises(DataImportError) as info:
        await empty_store.import_data(doc)
    assert str(info.value).startswith(message)


def test_empty_document_is_valid() -> None:
    assert validate_document({}).customers == ()
