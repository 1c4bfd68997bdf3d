"""Directory lookups over the demo data, as the assistant and CRMs make them."""

from __future__ import annotations

import pytest
from callpilot.server.store import Store
from callpilot.v1 import directory_pb2


@pytest.mark.parametrize(
    "phone",
    [
        "+15550100101",
        "+1 (555) 010-0101",
        "1-555-010-0101",
        "555.010.0101",
        "5550100101",
        "001 555 010 0101",
        "011 1 555 010 0101",
    ],
)
async def test_find_customer_by_phone_in_any_format(store: Store, phone: str) -> None:
    customer = await store.find_customer(phone=phone)
    assert customer is not None and customer.customer_id == "C-1001"


async def test_find_customer_misses(store: Store) -> None:
    assert await store.find_customer(phone="+15559999999") is None
    assert await store.find_customer(phone="0101") is None  # too short to mean anyone
    assert await store.find_customer(email="nobody@example.com") is None
    assert await store.find_customer() is None


@pytest.mark.parametrize(
    "email", ["maria.garcia@example.com", "Maria.Garcia@EXAMPLE.com", "  MARIA.GARCIA@example.com "]
)
async def test_find_customer_by_email_ignores_case(store: Store, email: str) -> None:
    customer = await store.find_customer(email=email)
    assert customer is not None and customer.name == "Maria Garcia"


async def test_find_customer_falls_back_from_phone_to_email(store: Store) -> None:
    customer = await store.find_customer(phone="+15559999999", email="luis.garcia@example.com")
    assert customer is not None and customer.customer_id == "C-1015"
    by_phone = await store.find_customer(phone="+15550100101", email="luis.garcia@example.com")
    assert by_phone is not None and by_phone.customer_id == "C-1001"


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("Maria Garcia", "C-1001"),
        ("maria", "C-1001"),
        ("MARIA GARCIA", "C-1001"),
        ("garcia maria", "C-1001"),
        ("maria.garcia@example.com", "C-1001"),
        ("Maria.Garcia@Example.com", "C-1001"),
        ("(555) 010-0101", "C-1001"),
        ("C-1001", "C-1001"),
        ("jose alvarez", "C-1013"),  # accents ignored
        ("Müller", "C-1010"),
        ("chloe", "C-1016"),
    ],
)
async def test_search_customers_best_match_first(store: Store, query: str, first: str) -> None:
    results = await store.search_customers(query)
    assert results, query
    assert results[0].customer_id == first


async def test_search_customers_finds_all_matches_within_limit(store: Store) -> None:
    garcias = await store.search_customers("garcia")
    assert {c.customer_id for c in garcias} == {"C-1001", "C-1015"}
    assert len(await store.search_customers("example.com", limit=5)) == 5
    assert await store.search_customers("") == []
    assert await store.search_customers("zzzz-nobody") == []
    # LIKE wildcards in the query are literal, not "match everything".
    assert await store.search_customers("%") == []
    assert await store.search_customers("_") == []


async def test_get_customer(store: Store) -> None:
    assert (await store.get_customer("C-1003")) is not None
    assert await store.get_customer("C-0000") is None


async def test_customer_orders_and_tickets_newest_first(store: Store) -> None:
    orders = await store.customer_orders("C-1024")
    assert len(orders) >= 2
    times = [o.order_time.ToDatetime() for o in orders]
    assert times == sorted(times, reverse=True)
    assert all(o.customer_id == "C-1024" and o.items for o in orders)
    assert len(await store.customer_orders("C-1024", limit=1)) == 1
    assert await store.customer_orders("C-0000") == []

    tickets_by_customer: dict[str, int] = {}
    for customer in await store.search_customers("example.com", limit=50):
        tickets = await store.customer_tickets(customer.customer_id)
        stamps = [t.create_time.ToDatetime() for t in tickets]
        assert stamps == sorted(stamps, reverse=True)
        tickets_by_customer[customer.customer_id] = len(tickets)
    assert sum(tickets_by_customer.values()) >= 30


@pytest.mark.parametrize("number", ["78901", "#78901", "78-901", " 78 901 ", "# 78901", "7-8-9-0-1"])
async def test_get_order_ignores_punctuation(store: Store, number: str) -> None:
    order = await store.get_order(number)
    assert order is not None and order.order_number == "78901"


async def test_get_order_misses(store: Store) -> None:
    assert await store.get_order("00000") is None
    assert await store.get_order("") is None
    assert await store.get_order("#") is None


@pytest.mark.parametrize(
    ("policy_type", "title", "fact"),
    [
        (directory_pb2.POLICY_TYPE_RETURN, "Return policy", "30 days of delivery"),
        (directory_pb2.POLICY_TYPE_REFUND, "Refund policy", "5-7 business days"),
        (directory_pb2.POLICY_TYPE_WARRANTY, "Warranty policy", "1-year"),
        (directory_pb2.POLICY_TYPE_SLA, "Service level agreement", "platinum within 1 hour"),
    ],
)
async def test_get_policy(
    store: Store, policy_type: directory_pb2.PolicyType.ValueType, title: str, fact: str
) -> None:
    policy = await store.get_policy(policy_type)
    assert policy is not None
    assert (policy.type, policy.title) == (policy_type, title)
    assert fact in policy.body


async def test_get_policy_unspecified_is_none(store: Store) -> None:
    assert await store.get_policy(directory_pb2.POLICY_TYPE_UNSPECIFIED) is None


@pytest.mark.parametrize(
    ("query", "article_id"),
    [
        ("refund to my card", "KB-002"),
        ("when will I get my money back on my credit card", "KB-002"),
        ("the package says delivered but I never received it", "KB-004"),
        ("how do I pair my headphones with bluetooth", "KB-011"),
        ("my headphones are not charging", "KB-012"),
        ("I want to make a warranty claim, it's defective", "KB-006"),
        ("cancel my order", "KB-008"),
        ("where is my shipment tracking", "KB-003"),
        ("forgot my password", "KB-009"),
    ],
)
async def test_search_knowledge_ranks_the_right_article_first(
    store: Store, query: str, article_id: str
) -> None:
    hits = await store.search_knowledge(query)
    assert hits, query
    assert hits[0].article.article_id == article_id, [(h.article.article_id, h.score) for h in hits]


async def test_search_knowledge_hits_are_well_formed(store: Store) -> None:
    hits = await store.search_knowledge("refund to my card", limit=3)
    assert len(hits) == 3
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    top = hits[0]
    assert top.article.tags and top.article.body
    # The snippet is the body sentence that best matches, not the whole body.
    assert top.snippet in top.article.body and top.snippet != top.article.body
    assert "refund" in top.snippet.lower() and "card" in top.snippet.lower()
    assert await store.search_knowledge("") == []
    assert await store.search_knowledge("xylophone quantum") == []


async def test_search_knowledge_sees_new_articles(store: Store) -> None:
    before = await store.search_knowledge("loyalty points")
    assert all(h.article.article_id != "KB-100" for h in before)
    await store.import_data(
        {
            "articles": [
                {
                    "id": "KB-100",
                    "title": "Loyalty points",
                    "body": "Members earn 1 loyalty point per dollar. Points expire after 12 months.",
                    "tags": ["loyalty", "points"],
                }
            ]
        }
    )
    after = await store.search_knowledge("loyalty points")
    assert after[0].article.article_id == "KB-100"
    assert after[0].snippet == "Members earn 1 loyalty point per dollar."


async def test_tenants_do_not_see_each_other(store: Store) -> None:
    other = store.for_tenant(store.tenant_id + "-other")
    assert await other.get_customer("C-1001") is None
    assert await other.get_order("78901") is None
    assert await other.search_knowledge("refund") == []
    assert await other.get_policy(directory_pb2.POLICY_TYPE_REFUND) is None
    assert (await store.get_customer("C-1001")) is not None
