"""The local assistant end to end: tools, streamed grounded suggestions, summary."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from callpilot.server.assist.base import AssistOutput, AssistRequest, ConversationState, Turn
from callpilot.server.assist.local import LocalAssistant
from callpilot.server.context.engine import ContextEngine
from callpilot.v1 import call_pb2, common_pb2, directory_pb2
from callpilot.v1 import events_pb2 as ev
from fakes.directory import NOW, FakeDirectory

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
AGENT = common_pb2.SPEAKER_ROLE_AGENT


async def converse(
    directory: FakeDirectory, lines: list[tuple[int, str]], hint: call_pb2.CustomerHint | None = None
) -> tuple[ContextEngine, Turn]:
    engine = ContextEngine(directory, call_id="call-1")
    await engine.start(hint)
    turn = Turn("", CUSTOMER, "")
    for i, (role, text) in enumerate(lines):
        turn = Turn(f"seg-{i}", role, text)  # type: ignore[arg-type]
        await engine.on_final(turn)
    return engine, turn


async def collect(assistant: LocalAssistant, request: AssistRequest) -> list[AssistOutput]:
    return [out async for out in assistant.respond(request)]


def split(
    outputs: list[AssistOutput],
) -> tuple[list[ev.ToolCall], list[ev.SuggestionDelta], ev.SuggestionCompleted]:
    tools = [o for o in outputs if isinstance(o, ev.ToolCall)]
    deltas = [o for o in outputs if isinstance(o, ev.SuggestionDelta)]
    completed = [o for o in outputs if isinstance(o, ev.SuggestionCompleted)]
    assert len(completed) == 1 and outputs[-1] is completed[0]
    # Tool calls first, then deltas, then the completed suggestion.
    kinds = [type(o).__name__ for o in outputs]
    assert kinds == sorted(kinds, key=["ToolCall", "SuggestionDelta", "SuggestionCompleted"].index)
    return tools, deltas, completed[0]


def sources(completed: ev.SuggestionCompleted) -> set[tuple[int, str]]:
    return {(s.kind, s.id) for s in completed.sources}


async def test_refund_request_for_order_78901(directory: FakeDirectory) -> None:
    engine, trigger = await converse(
        directory,
        [
            (CUSTOMER, "Hi, my name is Maria Garcia."),
            (CUSTOMER, "I am calling about my order seven eight nine oh one."),
            (CUSTOMER, "The headphones arrived broken and I would like a refund please."),
        ],
    )
    assistant = LocalAssistant(directory, now=lambda: NOW)
    assert assistant.wants_to_respond(trigger, engine.state)
    outputs = await collect(assistant, AssistRequest("sugg-1", engine.state, trigger))
    tools, deltas, completed = split(outputs)

    assert [(t.tool_name, dict(t.arguments)) for t in tools] == [
        ("get_order_details", {"order_number": "78901"}),
        ("check_policy", {"policy_type": "return"}),
        ("check_policy", {"policy_type": "refund"}),
    ]
    assert all(t.status == ev.TOOL_CALL_STATUS_SUCCEEDED and t.trigger_segment_id == "seg-2" for t in tools)
    assert len(deltas) > 3 and all(d.suggestion_id == "sugg-1" for d in deltas)
    assert "".join(d.text for d in deltas) == completed.text
    assert completed.suggestion_id == "sugg-1" and completed.trigger_segment_id == "seg-2"
    assert completed.text == (
        "Order 78901 (Wireless Headphones, $129.99) was delivered on 2 Nov 2026; it is within the "
        "30-day return window (22 days since delivery), so you can offer a refund to the original "
        "payment method within 5\u20137 business days."
    )
    assert sources(completed) == {
        (ev.SOURCE_KIND_ORDER, "78901"),
        (ev.SOURCE_KIND_POLICY, "return"),
        (ev.SOURCE_KIND_POLICY, "refund"),
    }
    assert {s.title for s in completed.sources} == {"Order 78901", "Return policy", "Refund policy"}


async def test_outside_the_return_window(directory: FakeDirectory) -> None:
    engine, trigger = await converse(directory, [(CUSTOMER, "I want a refund for order 78901")])
    late = datetime(2026, 12, 20, tzinfo=UTC)
    _, _, completed = split(
        await collect(LocalAssistant(directory, now=lambda: late), AssistRequest("s", engine.state, trigger))
    )
    assert "48 days ago, which is outside the 30-day return window" in completed.text
    assert (ev.SOURCE_KIND_POLICY, "return") in sources(completed)


@pytest.mark.parametrize(
    "said",
    [
        "uh-huh",
        "Okay.",
        "yes",
        "Yeah, thanks!",
        "Thank you so much.",
        "mm-hmm",
        "hmm",
        "ok great",
        "um",
        "right, I see",
    ],
)
async def test_backchannels_are_ignored(directory: FakeDirectory, said: str) -> None:
    assistant = LocalAssistant(directory)
    assert not assistant.wants_to_respond(Turn("s1", CUSTOMER, said), ConversationState(call_id="c"))


async def test_agent_turns_are_ignored_and_questions_are_not(directory: FakeDirectory) -> None:
    assistant = LocalAssistant(directory)
    state = ConversationState(call_id="c")
    assert not assistant.wants_to_respond(Turn("a1", AGENT, "Where is the order from?"), state)
    assert assistant.wants_to_respond(Turn("s1", CUSTOMER, "yes, 78901"), state)
    assert assistant.wants_to_respond(Turn("s2", CUSTOMER, "Where is my package?"), state)


async def test_unknown_order_gives_a_failed_call_and_a_clarifying_question(directory: FakeDirectory) -> None:
    engine, trigger = await converse(directory, [(CUSTOMER, "Where is my order 12345?")])
    tools, _, completed = split(
        await collect(LocalAssistant(directory), AssistRequest("s", engine.state, trigger))
    )
    assert [(t.tool_name, t.status) for t in tools] == [("get_order_details", ev.TOOL_CALL_STATUS_FAILED)]
    assert "12345" in tools[0].error
    assert "Order 12345 is not in the system" in completed.text
    assert "order number" in completed.text
    assert not completed.sources


async def test_nothing_known_asks_for_an_identifier(directory: FakeDirectory) -> None:
    engine, trigger = await converse(directory, [(CUSTOMER, "Hello, I have a question")])
    tools, _, completed = split(
        await collect(LocalAssistant(directory), AssistRequest("s", engine.state, trigger))
    )
    assert tools == []
    assert completed.text.startswith("Ask for the order number or the email address")
    assert not completed.sources


async def test_customer_looked_up_by_name(directory: FakeDirectory) -> None:
    engine, trigger = await converse(directory, [(CUSTOMER, "Hi, this is James Chen")])
    tools, _, completed = split(
        await collect(LocalAssistant(directory), AssistRequest("s", engine.state, trigger))
    )
    assert [(t.tool_name, dict(t.arguments)) for t in tools] == [("lookup_customer", {"name": "James Chen"})]
    assert "James Chen (C-1002, standard tier, active account)" in completed.text
    assert sources(completed) == {(ev.SOURCE_KIND_CUSTOMER, "C-1002")}


async def test_a_caller_identified_by_the_tools_is_remembered(directory: FakeDirectory) -> None:
    engine, trigger = await converse(directory, [(CUSTOMER, "Hi, this is James Chen")])
    assistant = LocalAssistant(directory, now=lambda: NOW)
    await collect(assistant, AssistRequest("s1", engine.state, trigger))
    turn = Turn("seg-9", CUSTOMER, "I'd like to cancel my order")
    await engine.on_final(turn)
    assert engine.state.customer is None  # a name alone does not identify a caller for the engine
    tools, _, completed = split(await collect(assistant, AssistRequest("s2", engine.state, turn)))
    assert [(t.tool_name, dict(t.arguments)) for t in tools] == [
        ("lookup_customer", {"customer_id": "C-1002"})
    ]
    assert completed.text.startswith(
        "James's most recent order is 55555 (Charging Cable and 1 more item, $49.50)"
    )
    summary = await assistant.summarise(engine.state)
    assert summary.splitlines()[0] == "Customer: James Chen (C-1002)."


async def test_known_customer_without_an_order_number(directory: FakeDirectory) -> None:
    engine, trigger = await converse(
        directory, [(CUSTOMER, "I'd like a refund")], hint=call_pb2.CustomerHint(customer_id="C-1001")
    )
    tools, _, completed = split(
        await collect(LocalAssistant(directory, now=lambda: NOW), AssistRequest("s", engine.state, trigger))
    )
    assert [t.tool_name for t in tools] == ["lookup_customer", "check_policy"]
    assert dict(tools[0].arguments) == {"customer_id": "C-1001"}
    assert "Maria's most recent order is 78901 (Wireless Headphones, $129.99)" in completed.text
    assert {(ev.SOURCE_KIND_ORDER, "78901"), (ev.SOURCE_KIND_POLICY, "refund")} <= sources(completed)


async def test_how_to_question_searches_the_knowledge_base(directory: FakeDirectory) -> None:
    engine, trigger = await converse(directory, [(CUSTOMER, "How do I pair my headphones with Bluetooth?")])
    tools, _, completed = split(
        await collect(LocalAssistant(directory), AssistRequest("s", engine.state, trigger))
    )
    assert [t.tool_name for t in tools] == ["search_knowledge"]
    assert "Pairing wireless headphones" in completed.text and "five seconds" in completed.text
    assert sources(completed) == {(ev.SOURCE_KIND_ARTICLE, "KB-001")}


async def test_suggest_now_with_a_question(directory: FakeDirectory) -> None:
    engine, _ = await converse(
        directory,
        [(CUSTOMER, "Where is my order 78901? I want to return it.")],
        hint=call_pb2.CustomerHint(phone="(555) 010-0101"),
    )
    request = AssistRequest("s", engine.state, None, query="what is the warranty?")
    tools, _, completed = split(await collect(LocalAssistant(directory, now=lambda: NOW), request))
    assert ("check_policy", {"policy_type": "warranty"}) in [(t.tool_name, dict(t.arguments)) for t in tools]
    assert all(t.trigger_segment_id == "" for t in tools)
    assert completed.trigger_segment_id == ""
    assert "one-year limited warranty" in completed.text
    assert (ev.SOURCE_KIND_POLICY, "warranty") in sources(completed)


async def test_cancellation_mid_stream_is_safe(directory: FakeDirectory) -> None:
    engine, trigger = await converse(directory, [(CUSTOMER, "I want a refund for order 78901")])
    assistant = LocalAssistant(directory, delta_delay=0.05, now=lambda: NOW)
    seen: list[AssistOutput] = []
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for out in assistant.respond(AssistRequest("s1", engine.state, trigger)):
            seen.append(out)
            if isinstance(out, ev.SuggestionDelta):
                first_delta.set()

    task = asyncio.create_task(consume())
    await first_delta.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(isinstance(o, ev.SuggestionCompleted) for o in seen)
    # The assistant is still usable afterwards.
    _, _, completed = split(
        await collect(LocalAssistant(directory, now=lambda: NOW), AssistRequest("s2", engine.state, trigger))
    )
    assert "78901" in completed.text


async def test_summary(directory: FakeDirectory) -> None:
    engine, trigger = await converse(
        directory,
        [
            (AGENT, "Thanks for calling, how can I help?"),
            (CUSTOMER, "Hi, my order 78901 arrived broken. I want a refund, this is so frustrating."),
        ],
    )
    assistant = LocalAssistant(directory, now=lambda: NOW)
    outputs = await collect(assistant, AssistRequest("s1", engine.state, trigger))
    engine.state.suggestions.append(split(outputs)[2].text)
    for i, (role, text) in enumerate(
        [
            (AGENT, "I'm sorry about that. I've issued a refund to your original payment method."),
            (AGENT, "I'll email you a prepaid return label today."),
            (CUSTOMER, "Thank you so much."),
        ]
    ):
        await engine.on_final(Turn(f"late-{i}", role, text))
    summary = await assistant.summarise(engine.state)
    lines = summary.splitlines()
    assert lines[0] == "Customer: Maria Garcia (C-1001)."
    assert lines[1].startswith("Reason for contact: shipping, technical, refund")
    assert "order 78901 arrived broken" in lines[1]
    assert lines[2] == "Looked up: order 78901; return policy; refund policy."
    assert lines[3] == "Resolution offered: I've issued a refund to your original payment method."
    assert lines[4] == "Follow-ups: I'll email you a prepaid return label today."
    assert lines[5] == "Customer sentiment at the end: positive."


async def test_summary_of_an_empty_call(directory: FakeDirectory) -> None:
    summary = await LocalAssistant(directory).summarise(ConversationState(call_id="empty"))
    assert summary.splitlines()[:3] == [
        "Customer: not identified.",
        "Reason for contact: not stated.",
        "Looked up: nothing.",
    ]


async def test_policy_terms_are_read_from_the_policy_text(directory: FakeDirectory) -> None:
    refund = directory.policies[directory_pb2.POLICY_TYPE_REFUND]
    refund.body = "We refund to the original payment method in three to five business days."
    returns = directory.policies[directory_pb2.POLICY_TYPE_RETURN]
    returns.body = "Send items back within fourteen days of delivery."
    engine, trigger = await converse(directory, [(CUSTOMER, "refund for order 78901 please")])
    early = datetime(2026, 11, 10, tzinfo=UTC)
    _, _, completed = split(
        await collect(LocalAssistant(directory, now=lambda: early), AssistRequest("s", engine.state, trigger))
    )
    assert "within the 14-day return window (8 days since delivery)" in completed.text
    assert "original payment method within 3\u20135 business days" in completed.text
