"""Identifying the caller and their order from what was heard, against the
real SQL store seeded with the demo data (names and numbers as STT gets them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from callpilot.server.assist.base import AssistRequest, Turn
from callpilot.server.assist.local import LocalAssistant
from callpilot.server.context.engine import ContextEngine
from callpilot.server.context.matching import name_score, near_miss, one_edit_variants
from callpilot.server.directory import FuzzyDirectory
from callpilot.server.store import Store
from callpilot.v1 import call_pb2, common_pb2, events_pb2

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}", seed_demo=True)
    try:
        yield s
    finally:
        await s.close()


def said(i: int, text: str) -> Turn:
    return Turn(segment_id=f"s{i}", role=CUSTOMER, text=text)


async def run_call(
    store: Store, lines: list[str], hint: call_pb2.CustomerHint | None = None
) -> ContextEngine:
    engine = ContextEngine(store, call_id="call-1")
    await engine.start(hint)
    for i, line in enumerate(lines):
        await engine.on_final(said(i, line))
    return engine


def test_name_scores_and_near_misses() -> None:
    assert name_score("Maria Garcia", "María García").score == 100.0
    garsha = name_score("Maria Garsha", "Maria Garcia")
    assert garsha.how == "sounds like" and 88 <= garsha.score < 100
    assert name_score("Maria Garsha", "Sofia Rossi").score < 60
    assert near_miss("7891", "78901") == "one digit dropped"
    assert near_miss("789011", "78901") == "one digit added"
    assert near_miss("78991", "78901") == "one digit changed"
    assert near_miss("78910", "78901") == "two digits swapped"
    assert near_miss("12345", "78901") == "" and near_miss("78901", "78901") == ""
    assert "78901" in one_edit_variants("7891") and "7891" not in one_edit_variants("7891")


async def test_store_is_a_fuzzy_directory(store: Store) -> None:
    assert isinstance(store, FuzzyDirectory)
    names = dict(await store.customer_names())
    assert names["C-1001"] == "Maria Garcia"
    assert [o.order_number for o in await store.find_orders(["78901", "00000"])] == ["78901"]


async def test_caller_id_prefetches_customer_orders_and_open_tickets(store: Store) -> None:
    engine = ContextEngine(store, call_id="call-1")
    update = await engine.start(call_pb2.CustomerHint(phone="(555) 010-0119"))
    assert update is not None and update.customer.customer_id == "C-1019"
    assert update.identified_by == "caller id"
    orders = await store.customer_orders("C-1019", limit=10)
    assert [o.order_number for o in update.orders] == [o.order_number for o in orders] != []
    tickets = await store.customer_tickets("C-1019", limit=10)
    open_tickets = [t.ticket_id for t in tickets if t.status not in ("closed", "resolved")]
    assert [t.ticket_id for t in update.tickets] == open_tickets != []
    assert engine.state.orders == list(update.orders)


async def test_misheard_surname_is_offered_not_taken(store: Store) -> None:
    engine = await run_call(store, ["Hi, my name is Maria Garsha."])
    state = engine.state
    assert state.customer is None
    assert [c.customer.customer_id for c in state.candidates] == ["C-1001"]
    assert state.candidates[0].reason == 'name "Maria Garsha" sounds like "Maria Garcia"'
    update = engine.snapshot()
    assert update.candidates[0].customer.name == "Maria Garcia" and not update.HasField("customer")


async def test_misheard_surname_and_dropped_digit_identify_caller_and_offer_the_order(store: Store) -> None:
    engine = await run_call(
        store,
        [
            "Hi, my name is Maria Garsha.",
            "The headphones I bought arrived broken.",
            "The order number is 7891.",
        ],
    )
    state = engine.state
    assert state.customer is not None and state.customer.customer_id == "C-1001"
    assert "sounds like" in state.identified_by and "one digit dropped" in state.identified_by
    assert state.order is None
    assert [(c.order.order_number, c.heard) for c in state.order_candidates] == [("78901", "7891")]
    assert state.order_candidates[0].reason.startswith("one digit dropped")

    now = datetime.now(UTC)
    assistant = LocalAssistant(store, now=lambda: now)
    outputs = [o async for o in assistant.respond(AssistRequest("sg", state, state.turns[-1]))]
    completed = outputs[-1]
    assert isinstance(completed, events_pb2.SuggestionCompleted)
    assert (
        "Order 7891 is not on file; did they mean 78901, the Wireless Headphones delivered" in completed.text
    )
    assert "(one digit dropped)? Confirm with the customer." in completed.text
    assert (events_pb2.SOURCE_KIND_ORDER, "78901") in {(s.kind, s.id) for s in completed.sources}


async def test_exact_name_is_taken_with_why(store: Store) -> None:
    engine = await run_call(store, ["this is Kwame Mensah"])
    assert engine.state.customer is not None and engine.state.customer.customer_id == "C-1008"
    assert engine.state.identified_by == 'name "Kwame Mensah" matches "Kwame Mensah"'


async def test_spelled_surname_and_email(store: Store) -> None:
    engine = await run_call(store, ["my last name is w h i t a k e r"])
    assert [c.customer.customer_id for c in engine.state.candidates] == ["C-1002"]
    engine = await run_call(store, ["my email is j a m e s dot whitaker at example dot com"])
    assert engine.state.customer is not None and engine.state.customer.customer_id == "C-1002"


async def test_swapped_digits_with_a_known_customer(store: Store) -> None:
    engine = await run_call(
        store, ["I want to return order 78910"], hint=call_pb2.CustomerHint(customer_id="C-1001")
    )
    assert [c.order.order_number for c in engine.state.order_candidates] == ["78901"]
    assert engine.state.order_candidates[0].reason == "two digits swapped; one of the customer\u2019s orders"


async def test_another_customers_order_is_never_offered(store: Store) -> None:
    other = (await store.customer_orders("C-1013", limit=1))[0].order_number
    engine = await run_call(store, [f"my order is {other}"], hint=call_pb2.CustomerHint(customer_id="C-1001"))
    assert engine.state.order is None and engine.state.order_candidates == []


async def test_wrong_number_then_corrected(store: Store) -> None:
    engine = await run_call(
        store,
        ["my order number is 78991", "sorry, I misread it, it's order 78901"],
        hint=call_pb2.CustomerHint(customer_id="C-1001"),
    )
    assert engine.state.order is not None and engine.state.order.order_number == "78901"
    assert engine.state.order_candidates == []


async def test_a_name_nobody_has_is_looked_up_once(store: Store) -> None:
    engine = ContextEngine(store, call_id="call-1")
    calls = 0
    real = store.customer_names

    async def counting(limit: int = 20000) -> list[tuple[str, str]]:
        nonlocal calls
        calls += 1
        return await real(limit)

    store.customer_names = counting  # type: ignore[method-assign]
    for i, line in enumerate(["my name is Zebedee Quux", "hello?", "it's about my refund", "still there?"]):
        await engine.on_final(said(i, line))
    assert engine.state.customer is None and engine.state.candidates == []
    assert calls == 1


async def suggest(
    assistant: LocalAssistant, engine: ContextEngine, n: int
) -> tuple[list[events_pb2.ToolCall], str]:
    outputs = [
        o async for o in assistant.respond(AssistRequest(f"sg{n}", engine.state, engine.state.turns[-1]))
    ]
    completed = outputs[-1]
    assert isinstance(completed, events_pb2.SuggestionCompleted)
    return [o for o in outputs if isinstance(o, events_pb2.ToolCall)], completed.text


async def test_candidate_offered_once_and_failed_lookups_not_repeated(store: Store) -> None:
    engine = ContextEngine(store, call_id="call-1")
    assistant = LocalAssistant(store)
    await engine.on_final(said(0, "Hi, my name is Maria Garsha."))
    tools, text = await suggest(assistant, engine, 0)
    assert [(t.tool_name, dict(t.arguments)) for t in tools] == [
        ("lookup_customer", {"customer_id": "C-1001"})
    ]
    assert text.startswith("Maria Garsha? The closest customer on file is Maria Garcia (C-1001)")
    assert "ask the caller for the email address on the account" in text

    await engine.on_final(said(1, "I want a refund for order 12121"))
    tools, text = await suggest(assistant, engine, 1)
    assert [t.tool_name for t in tools if t.tool_name != "check_policy"] == ["get_order_details"]
    assert "Order 12121 is not in the system" in text
    await engine.on_final(said(2, "I really want my refund for order 12121"))
    tools, text = await suggest(assistant, engine, 2)
    # Neither the candidate nor the missing order is looked up again.
    assert [t.tool_name for t in tools] == ["check_policy"]
    assert "Maria Garsha?" not in text and "12121" not in text


async def test_email_heard_without_its_at(store: Store) -> None:
    """Whisper writes "maria dot garcia at example dot com" as "Maria.Garcia.example.com"."""
    engine = await run_call(store, ["My email is Maria.Garcia.example.com"])
    assert engine.state.customer is not None and engine.state.customer.customer_id == "C-1001"
    assert engine.state.identified_by == "email maria.garcia.example.com is on their account"
