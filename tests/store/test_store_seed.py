"""The packaged demo data: the records other tests rely on, and its consistency."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType

from callpilot.server.store import Store, load_demo_document, validate_document
from callpilot.v1 import directory_pb2

CountRows = Callable[[Store], Awaitable[dict[str, int]]]
OpenStore = Callable[..., Awaitable[Store]]

GENERATOR = Path(__file__).with_name("make_demo_data.py")
SHIPPED = Path(__file__).resolve().parents[2] / "server/callpilot/server/store/demo_data.json"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("callpilot_make_demo_data", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_json_is_what_the_generator_makes() -> None:
    generator = _generator()
    assert generator.render() == generator.render()  # deterministic
    assert SHIPPED.read_text(encoding="utf-8") == generator.render(), (
        "demo_data.json is stale: run .venv/bin/python tests/store/make_demo_data.py"
    )


def test_demo_document_is_valid_and_consistent() -> None:
    raw = load_demo_document()
    doc = validate_document(raw)
    assert len(doc.customers) >= 20
    assert len(doc.orders) >= 60
    assert len(doc.tickets) >= 30
    assert {p.policy_type for p in doc.policies} == {"return", "refund", "warranty", "sla"}
    assert len(doc.articles) >= 15 and all(a.tags for a in doc.articles)
    customer_ids = {c.customer_id for c in doc.customers}
    for order in doc.orders:
        assert re.fullmatch(r"\d{5}", order.order_number)
        assert order.customer_id in customer_ids
        assert order.total_cents == sum(i.quantity * i.unit_price_cents for i in order.items)
        if order.delivered_time is not None:
            assert order.delivered_time >= order.order_time
    for ticket in doc.tickets:
        assert ticket.customer_id in customer_ids
    # The raw JSON also keeps totals as two-decimal strings equal to the item sums.
    assert isinstance(raw, dict)
    for order in raw["orders"]:
        assert Decimal(order["total"]) == sum(
            Decimal(i["unit_price"]) * i["quantity"] for i in order["items"]
        )


async def test_seed_contains_maria_garcia_and_order_78901(store: Store) -> None:
    maria = await store.get_customer("C-1001")
    assert maria == directory_pb2.Customer(
        customer_id="C-1001",
        name="Maria Garcia",
        email="maria.garcia@example.com",
        phone="+15550100101",
        tier="gold",
        status="active",
    )
    order = await store.get_order("78901")
    assert order is not None
    assert (order.customer_id, order.status, order.total, order.currency_code) == (
        "C-1001",
        "delivered",
        "129.99",
        "USD",
    )
    assert list(order.items) == [
        directory_pb2.OrderItem(sku="WH-100", name="Wireless Headphones", quantity=1, unit_price="129.99")
    ]
    # Dated relative to the seeding day (store.demo_dates): delivered 21 days before it,
    # five days after it was ordered. (22 if the test crossed midnight after seeding.)
    delivered = order.delivered_time.ToDatetime(tzinfo=UTC)
    assert (datetime.now(UTC).date() - delivered.date()).days in (21, 22)
    assert delivered - order.order_time.ToDatetime(tzinfo=UTC) == timedelta(days=5)
    assert [o.order_number for o in await store.customer_orders("C-1001")] == ["78901"]


async def test_seeded_rows_match_the_document(store: Store, count_rows: CountRows) -> None:
    raw = load_demo_document()
    assert isinstance(raw, dict)
    counts = await count_rows(store)
    assert counts["customers"] == len(raw["customers"])
    assert counts["orders"] == len(raw["orders"])
    assert counts["order_items"] == sum(len(o["items"]) for o in raw["orders"])
    assert counts["tickets"] == len(raw["tickets"])
    assert counts["policies"] == 4
    assert counts["articles"] == len(raw["articles"])
    # Spot-check a stored order against the file, money and dates included.
    sample = raw["orders"][17]
    order = await store.get_order(sample["number"])
    assert order is not None and order.total == sample["total"]
    assert await store.get_customer(order.customer_id) is not None


async def test_seeding_happens_once_and_only_on_request(open_store: OpenStore, count_rows: CountRows) -> None:
    plain = await open_store()
    assert set((await count_rows(plain)).values()) == {0}
    seeded = await open_store(seed_demo=True)
    first = await count_rows(seeded)
    assert first["customers"] >= 20
    # Reopening with seeding asks again but finds data and leaves it alone.
    assert await seeded.seed_demo_data() is None
    again = await open_store(seed_demo=True)
    assert await count_rows(again) == first


async def test_no_seed_over_a_tenants_own_data(open_store: OpenStore, count_rows: CountRows) -> None:
    store = await open_store()
    await store.import_data(
        {"policies": [{"type": "sla", "title": "Our SLA", "body": "We answer in 1 hour."}]}
    )
    assert await store.seed_demo_data() is None
    counts = await count_rows(store)
    assert counts["policies"] == 1 and counts["customers"] == 0
