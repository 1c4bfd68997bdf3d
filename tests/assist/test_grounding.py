"""The grounding check: every figure in a suggestion comes from a cited tool
result or from what was said; both engines enforce it."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal

from callpilot.server.assist.base import AssistRequest, ConversationState, Turn
from callpilot.server.assist.grounding import (
    NOTICE_UNGROUNDED,
    UNVERIFIED,
    check,
    evidence_for,
    facts_in,
    ground,
)
from callpilot.server.assist.local import LocalAssistant
from callpilot.server.assist.openai_llm import OpenAIAssistant
from callpilot.server.assist.tools import ToolBox
from callpilot.server.context.engine import ContextEngine
from callpilot.v1 import common_pb2, events_pb2
from fakes.directory import NOW, FakeDirectory
from providers.fake_openai import FakeOpenAI, Stream, ToolCallSpec, text_stream

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
TODAY = NOW.date()


def test_facts_in_a_suggestion() -> None:
    facts = facts_in(
        "Order 78901 ($129.99) was delivered on 2 Nov 2026; 22 days since delivery, "
        "refund within 5\u20137 business days, by November 30."
    )
    assert [(f.kind, f.value) for f in facts] == [
        ("number", Decimal("78901")),
        ("money", Decimal("129.99")),
        ("date", (11, 2, 2026)),
        ("number", Decimal("22")),
        ("number", Decimal("5")),
        ("number", Decimal("7")),
        ("date", (11, 30, None)),
    ]


async def test_only_tool_results_and_what_was_said_ground_a_fact() -> None:
    directory = FakeDirectory()
    box = ToolBox(directory)
    order = await box.run("get_order_details", {"order_number": "78901"})
    policy = await box.run("check_policy", {"policy_type": "return"})
    state = ConversationState(call_id="c", turns=[Turn("s1", CUSTOMER, "I paid forty dollars extra")])
    evidence = evidence_for(state, [order, policy], TODAY)
    assert check("Order 78901 cost $129.99, delivered 2 Nov 2026 (22 days ago).", evidence, TODAY) == []
    assert check("The return window is 30 days; they paid $40 extra.", evidence, TODAY) == []
    bad = check("Offer a $15.00 credit and a refund by 9 Dec.", evidence, TODAY)
    assert [f.text for f in bad] == ["$15.00", "9 Dec"]
    # A failed tool call grounds nothing.
    missing = await box.run("get_order_details", {"order_number": "11111"})
    assert check("Order 11111 costs $129.99.", evidence_for(None, [missing], TODAY), TODAY) != []


async def test_ground_drops_or_flags_sentences() -> None:
    box = ToolBox(FakeDirectory())
    order = await box.run("get_order_details", {"order_number": "78901"})
    text = "Order 78901 was delivered on 2 Nov 2026. Offer a $20 voucher."
    dropped = ground(text, None, [order], TODAY)
    assert dropped.text == "Order 78901 was delivered on 2 Nov 2026." and dropped.dropped == [
        "Offer a $20 voucher."
    ]
    flagged = ground(text, None, [order], TODAY, flag=True)
    assert flagged.text == f"Order 78901 was delivered on 2 Nov 2026. Offer a {UNVERIFIED} voucher."


async def test_every_fact_of_local_suggestions_is_grounded_in_their_tool_calls() -> None:
    directory = FakeDirectory()
    assistant = LocalAssistant(directory, now=lambda: NOW)
    for lines in (
        ["Hi, my name is Maria Garcia.", "The headphones from order 78901 arrived broken, I want a refund."],
        ["I want to return order 78901"],
        ["my email is maria.garcia@example.com and I'd like a refund"],
        ["how do I pair my headphones?"],
        ["where is my order 55555?"],
    ):
        engine = ContextEngine(directory, call_id="c")
        for i, line in enumerate(lines):
            await engine.on_final(Turn(f"s{i}", CUSTOMER, line))
        outputs = [
            o async for o in assistant.respond(AssistRequest("sg", engine.state, engine.state.turns[-1]))
        ]
        tools = [o for o in outputs if isinstance(o, events_pb2.ToolCall)]
        completed = outputs[-1]
        assert isinstance(completed, events_pb2.SuggestionCompleted) and completed.text
        assert check(completed.text, evidence_for(engine.state, tools, TODAY), TODAY) == [], completed.text


async def test_llm_figures_no_tool_returned_are_flagged() -> None:
    script = [
        Stream(tool_calls=[ToolCallSpec("get_order_details", '{"order_number": "78901"}', id="call_A")]),
        text_stream("Order 78901 cost $129.99. Offer a $25 goodwill credit."),
    ]
    state = ConversationState(
        call_id="c",
        turns=[Turn("s1", CUSTOMER, "order 78901 arrived broken")],
        call_date=datetime(2026, 11, 24, tzinfo=UTC).date(),
    )
    async with FakeOpenAI(chat=script) as oa:
        llm = OpenAIAssistant(oa.api_key, oa.base_url, "gpt-test", ToolBox(FakeDirectory()))
        try:
            async with asyncio.timeout(30):
                out = [o async for o in llm.respond(AssistRequest("sg", state, state.turns[-1]))]
        finally:
            await llm.aclose()
    notices = [o for o in out if isinstance(o, events_pb2.Notice)]
    assert [n.code for n in notices] == [NOTICE_UNGROUNDED]
    completed = out[-1]
    assert isinstance(completed, events_pb2.SuggestionCompleted)
    assert completed.text == f"Order 78901 cost $129.99. Offer a {UNVERIFIED} goodwill credit."
    assert isinstance(state.call_date, date)
