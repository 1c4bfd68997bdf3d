"""OpenAIAssistant through the real openai SDK against the loopback fake, with
the real ToolBox (over an in-memory directory); wrapped in a FallbackAssistant
with the real LocalAssistant where a test wants a fallback (as the providers
build it)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from callpilot.server.assist.base import (
    Assistant,
    AssistantUnavailable,
    AssistOutput,
    AssistRequest,
    ConversationState,
    Turn,
)
from callpilot.server.assist.fallback import NOTICE_DEGRADED, FallbackAssistant
from callpilot.server.assist.llm_prompt import SYSTEM_PROMPT, messages_tokens
from callpilot.server.assist.local import LocalAssistant
from callpilot.server.assist.openai_llm import OpenAIAssistant
from callpilot.server.assist.tools import ToolBox
from callpilot.v1 import common_pb2, directory_pb2, events_pb2
from fakes.directory import FakeDirectory
from providers.fake_openai import (
    Completion,
    Error,
    FakeOpenAI,
    Hang,
    Stream,
    ToolCallSpec,
    text_stream,
)

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
AGENT = common_pb2.SPEAKER_ROLE_AGENT


def state(**kw: Any) -> ConversationState:
    s = ConversationState(
        call_id="call-1",
        customer=directory_pb2.Customer(
            customer_id="C-1001",
            name="Jane Doe",
            email="jane@example.com",
            phone="+15551234567",
            tier="gold",
            status="active",
        ),
        topics=[events_pb2.TOPIC_REFUND],
        entities=[
            events_pb2.Entity(
                type=events_pb2.ENTITY_TYPE_ORDER_NUMBER,
                value="78901",
                text="seven eight nine oh one",
                segment_id="seg-0003",
            )
        ],
        sentiment=events_pb2.SENTIMENT_NEGATIVE,
        turns=[
            Turn("seg-0001", CUSTOMER, "Hi, my headphones crackle and I want a refund."),
            Turn("seg-0002", AGENT, "I'm sorry to hear that. What's the order number?"),
            Turn("seg-0003", CUSTOMER, "It's seven eight nine oh one."),
        ],
        suggestions=["Apologise and ask for the order number."],
    )
    for key, value in kw.items():
        setattr(s, key, value)
    return s


def request(st: ConversationState | None = None, *, query: str = "") -> AssistRequest:
    st = st or state()
    trigger = None if query else st.turns[-1]
    return AssistRequest(suggestion_id="sug-1", state=st, trigger=trigger, query=query)


_MADE: list[Assistant] = []


@pytest.fixture(autouse=True)
async def _close_assistants() -> AsyncIterator[None]:
    """Every assistant a test makes has its HTTP client closed at teardown."""
    yield
    while _MADE:
        await _MADE.pop().aclose()


def assistant(oa: FakeOpenAI, *, fallback: Assistant | None = None, **kw: Any) -> Assistant:
    """The model's assistant; with `fallback`, wrapped as `providers.build_assistant` does."""
    toolbox = ToolBox(FakeDirectory())
    made: Assistant = OpenAIAssistant(oa.api_key, oa.base_url, "gpt-test", toolbox, **kw)
    if fallback is not None:
        made = FallbackAssistant(made, fallback)
    _MADE.append(made)
    return made


def local() -> LocalAssistant:
    directory = FakeDirectory()
    return LocalAssistant(directory, ToolBox(directory))


async def run(a: Assistant, req: AssistRequest | None = None) -> list[AssistOutput]:
    out: list[AssistOutput] = []
    async with asyncio.timeout(30):
        async for item in a.respond(req or request()):
            out.append(item)
    return out


def deltas(out: Sequence[AssistOutput]) -> str:
    return "".join(o.text for o in out if isinstance(o, events_pb2.SuggestionDelta))


def completed(out: Sequence[AssistOutput]) -> events_pb2.SuggestionCompleted:
    assert isinstance(out[-1], events_pb2.SuggestionCompleted)
    return out[-1]


def tool_calls(out: Sequence[AssistOutput]) -> list[events_pb2.ToolCall]:
    return [o for o in out if isinstance(o, events_pb2.ToolCall)]


def sources(c: events_pb2.SuggestionCompleted) -> list[tuple[str, str]]:
    return [(events_pb2.SourceKind.Name(s.kind), s.id) for s in c.sources]


async def test_content_streams_as_deltas_then_one_completion() -> None:
    answer = "Apologise to the customer, then confirm the refund goes back to their original card."
    async with FakeOpenAI(chat=[text_stream(answer, pieces=5)]) as oa:
        out = await run(assistant(oa))
    assert [type(o) for o in out[:-1]] == [events_pb2.SuggestionDelta] * (len(out) - 1) and len(out) >= 6
    c = completed(out)
    assert c.text == deltas(out) == answer
    assert c.suggestion_id == "sug-1" and c.trigger_segment_id == "seg-0003" and not c.sources
    body = oa.log.chat[0]
    assert body["model"] == "gpt-test" and body["stream"] is True and body["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in body["tools"]] == [
        "lookup_customer",
        "get_order_details",
        "check_policy",
        "search_knowledge",
        "create_ticket",
    ]
    assert body["max_completion_tokens"] == 300 and body["temperature"] == 0.2
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    content = user["content"]
    assert "Customer: Jane Doe (C-1001), tier gold, active." in content
    assert "Topics so far: refund." in content and "order number 78901" in content
    assert "Customer: Hi, my headphones crackle" in content and "Agent: I'm sorry" in content
    assert content.endswith(
        "The customer just said: \"It's seven eight nine oh one.\". Suggest the agent's next step."
    )
    assert "jane@example.com" not in content and "5551234567" not in content
    assert oa.log.auth == ["Bearer sk-test"]


async def test_split_tool_call_arguments_are_assembled_and_run() -> None:
    script = [
        Stream(
            tool_calls=[ToolCallSpec("get_order_details", '{"order_number": "78901"}', id="call_A", pieces=6)]
        ),
        text_stream("Order 78901 was delivered on 2 November; offer a return."),
    ]
    async with FakeOpenAI(chat=script) as oa:
        out = await run(assistant(oa))
    calls = tool_calls(out)
    assert len(calls) == 1 and out[0] is calls[0], "tool calls come before the deltas"
    call = calls[0]
    assert call.tool_name == "get_order_details" and call.status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
    assert call.arguments["order_number"] == "78901" and call.trigger_segment_id == "seg-0003"
    c = completed(out)
    assert c.text == deltas(out) and sources(c) == [("SOURCE_KIND_ORDER", "78901")]
    # The second request replays the call and carries its result.
    follow = oa.log.chat[1]["messages"]
    assert follow[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_A",
                "type": "function",
                "function": {"name": "get_order_details", "arguments": '{"order_number": "78901"}'},
            }
        ],
    }
    assert follow[3]["role"] == "tool" and follow[3]["tool_call_id"] == "call_A"
    assert json.loads(follow[3]["content"])["order"]["status"] == "delivered"


async def test_two_interleaved_tool_calls_in_one_turn() -> None:
    script = [
        Stream(
            tool_calls=[
                ToolCallSpec("lookup_customer", '{"customer_id": "C-1001"}', pieces=4),
                ToolCallSpec("check_policy", '{"policy_type": "refund"}', pieces=4),
            ],
            interleave_tool_calls=True,
        ),
        text_stream(
            "Jane is a gold customer; refunds reach the original payment method in 5-7 business days."
        ),
    ]
    async with FakeOpenAI(chat=script) as oa:
        out = await run(assistant(oa))
    calls = tool_calls(out)
    assert [c.tool_name for c in calls] == ["lookup_customer", "check_policy"]
    assert all(c.status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED for c in calls)
    assert sources(completed(out)) == [("SOURCE_KIND_CUSTOMER", "C-1001"), ("SOURCE_KIND_POLICY", "refund")]
    follow = oa.log.chat[1]["messages"]
    ids = [tc["id"] for tc in follow[2]["tool_calls"]]
    assert [m["tool_call_id"] for m in follow[3:5]] == ids and len(set(ids)) == 2
    assert json.loads(follow[2]["tool_calls"][1]["function"]["arguments"]) == {"policy_type": "refund"}


async def test_bad_tool_arguments_go_back_to_the_model_as_an_error() -> None:
    script = [
        Stream(tool_calls=[ToolCallSpec("get_order_details", '{"order_number": 78901', pieces=2)]),
        Stream(tool_calls=[ToolCallSpec("search_knowledge", '{"query": "headphones crackle"}')]),
        text_stream("Ask the customer to re-pair the headphones: hold power for five seconds."),
    ]
    async with FakeOpenAI(chat=script) as oa:
        out = await run(assistant(oa))
    first, second = tool_calls(out)
    assert first.status == events_pb2.TOOL_CALL_STATUS_FAILED and "not valid JSON" in first.error
    assert second.status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
    assert json.loads(oa.log.chat[1]["messages"][3]["content"])["error"].startswith(
        "arguments are not valid JSON"
    )
    assert sources(completed(out)) == [("SOURCE_KIND_ARTICLE", "KB-001")]


async def test_the_model_cannot_show_another_customers_order_on_this_call() -> None:
    # The caller is C-1001; 55555 is C-1002's order (the model's guess from a misheard number).
    script = [
        Stream(tool_calls=[ToolCallSpec("get_order_details", '{"order_number": "55555"}')]),
        text_stream("Ask the customer to repeat the order number."),
    ]
    async with FakeOpenAI(chat=script) as oa:
        out = await run(assistant(oa))
    [call] = tool_calls(out)
    assert call.status == events_pb2.TOOL_CALL_STATUS_FAILED and not call.HasField("result")
    assert "not one of the caller's orders" in call.error
    told = json.loads(oa.log.chat[1]["messages"][-1]["content"])
    assert "not one of the caller's orders" in told["error"] and "C-1002" not in json.dumps(told)


async def test_tool_rounds_are_bounded() -> None:
    looping = Stream(tool_calls=[ToolCallSpec("search_knowledge", '{"query": "tracking"}')])
    script = [looping, Stream(content=["Share the tracking link from the shipping email."])]
    async with FakeOpenAI(chat=script) as oa:
        out = await run(assistant(oa, max_tool_rounds=1))
    assert len(tool_calls(out)) == 1
    assert [b["tool_choice"] for b in oa.log.chat] == ["auto", "none"]
    assert completed(out).text == "Share the tracking link from the shipping email."


@pytest.mark.parametrize(
    "reply",
    [
        Error(500),
        Error(429, "Rate limit reached", "requests", "rate_limit_exceeded"),
        Error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
        Stream(content=["Offer", " a", " refund"], error_after=2),
        Stream(content=["Offer", " a", " refund"], drop_after=2),
        Stream(content=[]),  # an empty answer
        Stream(content=["..."], finish_reason="content_filter"),
    ],
    ids=["500", "429", "401", "error-in-stream", "dropped", "empty", "filtered"],
)
async def test_provider_errors_fall_back_to_the_local_engine_with_a_notice(reply: Any) -> None:
    async with FakeOpenAI(chat=[reply]) as oa:
        out = await run(assistant(oa, fallback=local()))
    notices = [o for o in out if isinstance(o, events_pb2.Notice)]
    assert len(notices) == 1 and notices[0].code == NOTICE_DEGRADED
    assert notices[0].level == events_pb2.NOTICE_LEVEL_WARNING
    c = completed(out)
    assert c.suggestion_id == "sug-1" and c.text
    assert "78901" in c.text, "the local engine answered from the directory"
    after = out[out.index(notices[0]) + 1 :]
    assert "".join(o.text for o in after if isinstance(o, events_pb2.SuggestionDelta)) == c.text


async def test_a_hung_provider_times_out_and_falls_back() -> None:
    async with FakeOpenAI(chat=[Hang(5.0)]) as oa:
        out = await run(assistant(oa, fallback=local(), timeout=0.3))
    notice = next(o for o in out if isinstance(o, events_pb2.Notice))
    assert "did not answer in time" in notice.text
    assert completed(out).text


async def test_a_stream_that_stalls_mid_answer_falls_back() -> None:
    slow = Stream(content=["Offer", " a", " refund", " now."], delay=2.0)
    async with FakeOpenAI(chat=[slow]) as oa:
        out = await run(assistant(oa, fallback=local(), timeout=0.4))
    i = next(i for i, o in enumerate(out) if isinstance(o, events_pb2.Notice))
    assert deltas(out[:i]) == "Offer", "the abandoned draft"
    assert completed(out).text == deltas(out[i + 1 :]), "the fallback's text is authoritative"


async def test_the_turn_deadline_bounds_a_slow_but_steady_stream() -> None:
    steady = Stream(content=[" word"] * 20, delay=0.15)
    async with FakeOpenAI(chat=[steady]) as oa:
        out = await run(assistant(oa, fallback=local(), timeout=5.0, turn_timeout=0.6))
    notice = next(o for o in out if isinstance(o, events_pb2.Notice))
    assert "did not finish within 0.6 s" in notice.text
    await asyncio.wait_for(oa.log.disconnected.wait(), 5)


async def test_respond_carries_the_notice_and_no_fallback_raises() -> None:
    """The notice precedes the fallback's answer so the session can tell the agent."""
    async with FakeOpenAI(chat=[Error(503), Error(503)]) as oa:
        a = assistant(oa, fallback=local())
        out = [o async for o in a.respond(request())]
        notices = [o for o in out if isinstance(o, events_pb2.Notice)]
        assert [n.code for n in notices] == ["ASSISTANT_DEGRADED"] and out.index(notices[0]) == 0
        assert isinstance(out[-1], events_pb2.SuggestionCompleted)
        with pytest.raises(AssistantUnavailable, match="HTTP 503"):
            async for _ in assistant(oa).respond(request()):
                pass


async def test_cancelling_a_stale_suggestion_closes_the_upstream_stream() -> None:
    long = Stream(content=[" more"] * 200, delay=0.05)
    async with FakeOpenAI(chat=[long]) as oa:
        a = assistant(oa, fallback=local())
        first = asyncio.Event()

        async def consume() -> None:
            async for o in a.respond(request()):
                if isinstance(o, events_pb2.SuggestionDelta):
                    first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 5)
        task.cancel()  # what the session does when newer customer speech arrives
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(oa.log.disconnected.wait(), 5)
    assert oa.log.disconnects == 1 and len(oa.log.chat) == 1, "no fallback after a cancellation"


async def test_prompt_is_bounded_and_never_carries_card_numbers() -> None:
    filler = "I was charged twice and the second charge still has not been reversed by my bank today. "
    turns = [
        Turn(f"seg-{i:04d}", CUSTOMER if i % 2 else AGENT, f"turn {i}: " + filler * 3) for i in range(1, 200)
    ]
    turns.append(Turn("seg-0200", CUSTOMER, "My card is [CARD_NUMBER], expiry [CARD_EXPIRY], code [CVV]."))
    st = state(turns=turns, suggestions=["Earlier draft that leaked 4111 1111 1111 1111 somehow."])
    async with FakeOpenAI(
        chat=[text_stream("Never ask for the card number; take payment via the IVR.")]
    ) as oa:
        out = await run(assistant(oa, max_prompt_tokens=1200), request(st))
    assert completed(out).text
    messages = oa.log.chat[0]["messages"]
    assert messages_tokens(messages) <= 1200
    user = messages[1]["content"]
    assert "turn 199:" in user and "turn 1:" not in user and "earlier turns omitted" in user
    assert "[CARD_NUMBER]" in user and "[CVV]" in user
    wire = json.dumps(oa.log.chat[0])
    assert not re.search(r"\d(?:[ -]?\d){12,18}", wire), "no card-length digit run leaves the process"


async def test_suggest_now_with_a_query() -> None:
    async with FakeOpenAI(chat=[text_stream("Refunds take 5-7 business days.")]) as oa:
        await run(assistant(oa), request(query="how long do refunds take?"))
    content = oa.log.chat[0]["messages"][1]["content"]
    assert content.endswith('The agent asks: "how long do refunds take?". Answer for the agent.')
    assert "Customer: It's seven eight nine oh one." in content


async def test_summary_by_the_model_else_by_the_fallback() -> None:
    text = "Reason for contact: refund\nActions: looked up order 78901\nResolution: refund\nFollow-ups: none"
    async with FakeOpenAI(chat=[Completion(text), Error(500), Hang(3.0)]) as oa:
        a = assistant(oa, fallback=local(), summary_timeout=0.5)
        assert await a.summarise(state()) == text
        body = oa.log.chat[0]
        assert not body.get("stream") and body["messages"][0]["content"].startswith(
            "Summarise this contact-center"
        )
        by_local = await a.summarise(state())
        assert by_local.startswith("Customer: Jane Doe (C-1001).")
        bare = assistant(oa, summary_timeout=0.5)
        with pytest.raises(AssistantUnavailable, match=r"did not finish within 0\.5 s"):
            await bare.summarise(state())


def test_wants_to_respond_skips_backchannels_and_the_agent() -> None:
    a = OpenAIAssistant("k", "http://127.0.0.1:9/v1", "m", ToolBox(FakeDirectory()))
    st = state()
    assert a.wants_to_respond(Turn("s1", CUSTOMER, "Where is my order 55555?"), st)
    assert not a.wants_to_respond(Turn("s2", CUSTOMER, "uh-huh okay"), st)
    assert not a.wants_to_respond(Turn("s3", AGENT, "Where is your order?"), st)


async def test_a_preamble_before_tool_calls_stays_part_of_the_suggestion() -> None:
    script = [
        Stream(
            content=["Let me check", " that order."],
            tool_calls=[ToolCallSpec("get_order_details", '{"order_number": "78901"}')],
        ),
        Stream(content=["It was delivered on 2 November."]),
    ]
    async with FakeOpenAI(chat=script) as oa:
        out = await run(assistant(oa))
    kinds = [type(o).__name__ for o in out]
    assert kinds == [
        "SuggestionDelta",
        "SuggestionDelta",
        "ToolCall",
        "SuggestionDelta",
        "SuggestionCompleted",
    ]
    assert completed(out).text == deltas(out) == "Let me check that order. It was delivered on 2 November."
    assert oa.log.chat[1]["messages"][2]["content"] == "Let me check that order."
