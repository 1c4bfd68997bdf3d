"""A synthesised support call streamed through the SDK into a real server."""

from __future__ import annotations

import re
from pathlib import Path

from callpilot.client import AsyncCallpilot, WavFile
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from google.protobuf import json_format
from support import ServerProcess


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


async def _stream(server: ServerProcess, wav: Path, **config: object) -> list[events_pb2.CallEvent]:
    async with AsyncCallpilot(server.address) as cp:
        events = []
        async with cp.stream_call(WavFile(wav, realtime=True), call_pb2.CallConfig(**config)) as call:  # type: ignore[arg-type]
            async for event in call:
                events.append(event)
        return events


async def test_support_call_end_to_end(server: ServerProcess, support_call_wav: Path) -> None:
    events = await _stream(server, support_call_wav, language_code="en-US")

    # Durable sequence numbers are gapless from 1; an ephemeral event carries
    # the sequence of the durable event before it. The call starts and ends.
    durable = [e.sequence for e in events if e.durable]
    assert durable == list(range(1, len(durable) + 1))
    last_durable = 0
    for e in events:
        if e.durable:
            last_durable = e.sequence
        assert e.sequence == last_durable
    assert events[0].HasField("call_started") and events[-1].HasField("call_ended")
    call_id = events[0].call_id
    assert events[-1].call_ended.reason == call_pb2.CALL_END_REASON_CLIENT_ENDED

    transcripts = [e.transcript for e in events if e.HasField("transcript")]
    interims = [t for t in transcripts if not t.is_final]
    finals = [t for t in transcripts if t.is_final]
    assert interims, "interim hypotheses are streamed while the customer speaks"
    assert len(finals) >= 3
    assert all(t.role == common_pb2.SPEAKER_ROLE_CUSTOMER for t in finals)
    said = _words(" ".join(t.text for t in finals))
    assert {"order", "refund", "headphones"} <= said
    # Durable finals carry the timings needed for latency figures.
    final_events = [e for e in events if e.HasField("transcript") and e.transcript.is_final]
    assert all(e.durable and e.timings.HasField("speech_end_time") for e in final_events)
    assert all(not e.durable for e in events if e.HasField("transcript") and not e.transcript.is_final)

    # The order number was understood, normalised, and the customer identified.
    contexts = [e.context for e in events if e.HasField("context")]
    assert contexts
    last = contexts[-1]
    assert any(
        ent.type == events_pb2.ENTITY_TYPE_ORDER_NUMBER and ent.value == "78901" for ent in last.entities
    ), last
    assert last.customer.customer_id == "C-1001"
    assert events_pb2.TOPIC_REFUND in last.topics

    # The assistant looked the order up and got its real data.
    tools = [e.tool_call for e in events if e.HasField("tool_call")]
    order_calls = [t for t in tools if t.tool_name == "get_order_details"]
    assert order_calls and order_calls[-1].status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
    result = json_format.MessageToDict(order_calls[-1].result)
    assert "78901" in str(result) and "129.99" in str(result)

    # A grounded suggestion, streamed as deltas, citing its sources.
    completed = [e for e in events if e.HasField("suggestion_completed")]
    assert completed
    final_suggestion = completed[-1].suggestion_completed
    deltas = "".join(
        e.suggestion_delta.text
        for e in events
        if e.HasField("suggestion_delta")
        and e.suggestion_delta.suggestion_id == final_suggestion.suggestion_id
    )
    assert deltas == final_suggestion.text
    assert "78901" in final_suggestion.text
    # Grounded in the refund policy's own figures (the demo data says 5-7 business days).
    assert "5\u20137 business days" in final_suggestion.text, final_suggestion.text
    source_ids = {(s.kind, s.id) for s in final_suggestion.sources}
    assert (events_pb2.SOURCE_KIND_ORDER, "78901") in source_ids
    assert any(kind == events_pb2.SOURCE_KIND_POLICY for kind, _ in source_ids)
    assert completed[-1].timings.HasField("first_delta_time")

    # Everything durable is stored: GetCall and WatchCall replay from 1.
    async with AsyncCallpilot(server.address) as cp:
        stored = await cp.get_call(call_id)
        assert stored.call.state == call_pb2.CALL_STATE_ENDED
        assert [t.text for t in stored.transcript] == [t.text for t in finals]
        assert len(stored.tool_calls) == len(tools)
        assert stored.suggestions[-1].suggestion.suggestion_id == final_suggestion.suggestion_id
        assert stored.call.customer_id == "C-1001"
        replay = [e async for e in cp.watch_call(call_id, from_sequence=1)]
    durable = [e for e in events if e.durable]
    assert [e.sequence for e in replay] == [e.sequence for e in durable]
    assert replay == durable

    # Resuming from the middle gives exactly the tail.
    async with AsyncCallpilot(server.address) as cp:
        middle = durable[len(durable) // 2].sequence
        tail = [e async for e in cp.watch_call(call_id, from_sequence=middle)]
    assert tail == [e for e in durable if e.sequence >= middle]


async def test_text_turns_and_controls(server: ServerProcess) -> None:
    """Platforms that already transcribe send text turns; controls work mid-call."""
    async with AsyncCallpilot(server.address) as cp:
        events: list[events_pb2.CallEvent] = []
        call = cp.stream_call(
            None, call_pb2.CallConfig(customer_hint=call_pb2.CustomerHint(phone="(555) 010-0101"))
        )
        async with call:
            await call.send_text(common_pb2.SPEAKER_ROLE_AGENT, "Thanks for calling, how can I help?")
            await call.send_text(
                common_pb2.SPEAKER_ROLE_CUSTOMER, "Where is my order 78901? I want to return it."
            )
            acted = False
            async for event in call:
                events.append(event)
                if event.HasField("suggestion_completed") and not acted:
                    acted = True
                    suggestion_id = event.suggestion_completed.suggestion_id
                    await call.feedback(suggestion_id, 1)  # FEEDBACK_KIND_USED
                    await call.suggest_now("what is the warranty?")
                    await call.send_text(common_pb2.SPEAKER_ROLE_CUSTOMER, "uh-huh")
                    await call.end("resolved")
        kinds = [e.WhichOneof("payload") for e in events]
        assert kinds[0] == "call_started" and kinds[-1] == "call_ended"
        # The phone hint identified the customer before anything was said.
        first_context = next(e.context for e in events if e.HasField("context"))
        assert first_context.customer.customer_id == "C-1001"
        finals = [e.transcript for e in events if e.HasField("transcript")]
        assert [t.role for t in finals] == [
            common_pb2.SPEAKER_ROLE_AGENT,
            common_pb2.SPEAKER_ROLE_CUSTOMER,
            common_pb2.SPEAKER_ROLE_CUSTOMER,
        ]
        completed = [e.suggestion_completed for e in events if e.HasField("suggestion_completed")]
        # One for the question, one for "suggest now"; the backchannel got none.
        assert len(completed) == 2
        assert completed[1].trigger_segment_id == ""
        call_id = events[0].call_id
        stored = await cp.get_call(call_id)
        first = stored.suggestions[0]
        assert first.feedback.kind == 1 and first.suggestion.suggestion_id == completed[0].suggestion_id
        assert stored.call.end_reason == call_pb2.CALL_END_REASON_CLIENT_ENDED


async def test_create_list_end_call(server: ServerProcess) -> None:
    async with AsyncCallpilot(server.address) as cp:
        created = [await cp.create_call(call_pb2.CallConfig(labels={"queue": "billing"})) for _ in range(3)]
        assert all(c.state == call_pb2.CALL_STATE_ACTIVE for c in created)
        ids = {c.call_id for c in created}
        seen: list[str] = []
        token = ""
        while True:
            page = await cp.list_calls(page_size=2, page_token=token)
            seen.extend(c.call_id for c in page.calls)
            token = page.next_page_token
            if not token:
                break
        assert ids <= set(seen) and len(seen) == len(set(seen))
        ended = await cp.end_call(created[0].call_id, "abandoned in queue")
        assert ended.state == call_pb2.CALL_STATE_ENDED
        again = await cp.end_call(created[0].call_id)
        assert again.state == call_pb2.CALL_STATE_ENDED and again.end_time == ended.end_time
        events = [e async for e in cp.watch_call(created[0].call_id)]
        assert events[0].HasField("call_started") and events[-1].HasField("call_ended")
        active = await cp.list_calls(page_size=100, state=call_pb2.CALL_STATE_ACTIVE)
        assert created[0].call_id not in {c.call_id for c in active.calls}


async def test_directory_service(server: ServerProcess) -> None:
    async with AsyncCallpilot(server.address) as cp:
        found = await cp.search_customers("maria.garcia@example.com")
        assert found[0].customer_id == "C-1001"
        customer = await cp.get_customer("C-1001")
        assert customer.customer.name == "Maria Garcia"
        assert "78901" in [o.order_number for o in customer.orders]
        order = await cp.get_order("#78-901")
        assert order.total == "129.99" and order.items[0].name == "Wireless Headphones"
        policy = await cp.get_policy(2)  # POLICY_TYPE_REFUND
        assert policy.body
        hits = await cp.search_knowledge("refund to my card")
        assert hits and hits[0].score >= hits[-1].score
