"""A call session driven by a scripted recogniser and assistant over an in-memory log."""

from __future__ import annotations

import pytest
from callpilot.server.errors import FailedPrecondition
from callpilot.v1 import call_pb2, common_pb2, events_pb2
from google.protobuf import struct_pb2
from session.harness import (
    MemoryCallLog,
    ScriptedAssistant,
    SessionHarness,
    answer,
    audio_call,
    degraded,
    final,
    interim,
    run_test,
)

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
AGENT = common_pb2.SPEAKER_ROLE_AGENT


async def test_a_final_updates_the_context_and_gets_a_suggestion() -> None:
    h = await run_test(
        speech=[
            interim(0, "my email"),
            final(0, "Hi, my email is maria.garcia@example.com, I want a refund."),
        ],
        scripts=[answer("Offer the refund form.", "Offer ", "the refund form.")],
        expected_durable=["call_started", "transcript", "context", "suggestion_completed", "call_ended"],
    )
    context = next(e.context for e in h.events if e.HasField("context"))
    assert context.customer.customer_id == "C-1001"
    completed = next(e.suggestion_completed for e in h.events if e.HasField("suggestion_completed"))
    segment = next(e.transcript for e in h.events if e.HasField("transcript") and e.transcript.is_final)
    assert completed.text == "Offer the refund form."
    assert completed.trigger_segment_id == segment.segment_id == "seg-0001"
    assert [e.suggestion_delta.text for e in h.events if e.HasField("suggestion_delta")] == [
        "Offer ",
        "the refund form.",
    ]
    assert h.assistant.requests[0].trigger is not None
    assert h.assistant.requests[0].trigger.text == segment.text


async def test_durable_events_are_gapless_and_ephemeral_ones_take_no_number() -> None:
    h = await run_test(
        speech=[
            interim(0, "hello"),
            final(0, "Hello there."),
            interim(1, "I need"),
            interim(1, "I need help"),
            final(1, "I need help with an order."),
        ],
        scripts=[answer("Ask for the order number.", "Ask"), answer("Ask for the order number.", "Ask")],
    )
    durable = [e.sequence for e in h.events if e.durable]
    assert durable == list(range(1, len(durable) + 1))
    last_durable = 0
    for event in h.events:
        if event.durable:
            last_durable = event.sequence
        else:
            # An ephemeral event carries the sequence of the durable one before it.
            assert event.sequence == last_durable, event
    assert any(not e.durable for e in h.events)
    stored = await h.store.read_events(h.events[0].call_id, 1)
    assert [e.sequence for e in stored] == durable
    call = await h.store.get_call(h.events[0].call_id)
    assert call is not None and call.last_sequence == durable[-1]


async def test_a_degraded_stream_becomes_a_durable_warning() -> None:
    why = "Speech recognition for the customer switched to the embedded engine: connection reset"
    h = await run_test(speech=[final(0, "Hello."), degraded(why), final(1, "Still there?")])
    notices = [e for e in h.events if e.HasField("notice")]
    assert len(notices) == 1
    notice = notices[0]
    assert notice.durable
    assert notice.notice.code == "STT_DEGRADED"
    assert notice.notice.level == events_pb2.NOTICE_LEVEL_WARNING
    assert notice.notice.text == why
    finals = [e.transcript.text for e in h.events if e.HasField("transcript") and e.transcript.is_final]
    assert finals == ["Hello.", "Still there?"]


async def test_ending_flushes_every_final_before_call_ended() -> None:
    speech = [final(i, f"Sentence number {i}.") for i in range(8)]
    h = await run_test(speech=speech, scripts=[])
    kinds = h.kinds(durable=True)
    assert kinds[-1] == "call_ended"
    assert kinds.count("transcript") == 8
    transcript = await h.store.get_transcript(h.events[0].call_id)
    assert [t.text for t in transcript] == [f"Sentence number {i}." for i in range(8)]
    assert all(s.closed for s in h.stt.streams)


def _proposal(tool_call_id: str) -> events_pb2.ToolCall:
    args = struct_pb2.Struct()
    args.update({"customer_id": "C-1001", "subject": "Broken headphones"})
    return events_pb2.ToolCall(
        tool_call_id=tool_call_id,
        tool_name="create_ticket",
        arguments=args,
        status=events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION,
    )


async def test_a_confirmed_proposal_runs_once_and_an_undecided_one_is_cancelled_at_the_end() -> None:
    script = [_proposal("t-1"), _proposal("t-2"), events_pb2.SuggestionCompleted(text="Open a ticket?")]
    h = SessionHarness(assistant=ScriptedAssistant(scripts=[script]))
    session = await h.start()
    await session.add_text_turn(CUSTOMER, "My headphones broke, please open a ticket.", 0.0)
    await h.wait_for("suggestion_completed")

    confirm = events_pb2.ToolDecision(tool_call_id="t-1", kind=events_pb2.TOOL_DECISION_KIND_CONFIRM)
    outcome = await session.decide_tool(confirm)
    assert outcome.status == events_pb2.TOOL_CALL_STATUS_SUCCEEDED
    assert outcome.decision.kind == events_pb2.TOOL_DECISION_KIND_CONFIRM
    assert len(h.directory.tickets) == 1
    # Repeating the decision is safe: same outcome, the tool does not run again.
    assert await session.decide_tool(confirm) == outcome
    assert len(h.directory.tickets) == 1
    with pytest.raises(FailedPrecondition):
        await session.decide_tool(
            events_pb2.ToolDecision(tool_call_id="t-1", kind=events_pb2.TOOL_DECISION_KIND_CANCEL)
        )

    await h.end()
    calls = [e.tool_call for e in h.events if e.HasField("tool_call")]
    by_id = [(c.tool_call_id, c.status) for c in calls]
    assert by_id == [
        ("t-1", events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION),
        ("t-2", events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION),
        ("t-1", events_pb2.TOOL_CALL_STATUS_SUCCEEDED),
        ("t-2", events_pb2.TOOL_CALL_STATUS_CANCELLED),
    ]
    assert h.kinds()[-1] == "call_ended"


async def test_a_newer_customer_turn_supersedes_the_suggestion_in_flight() -> None:
    assistant = ScriptedAssistant(
        scripts=[answer("first", "fi", "rst"), answer("second", "se", "cond")],
    )
    h = SessionHarness(assistant=assistant)
    session = await h.start()
    await session.add_text_turn(CUSTOMER, "Where is my order?", 0.0)
    await h.wait_for("suggestion_completed")
    await session.add_text_turn(CUSTOMER, "Actually, I want to cancel it.", 0.0)
    await h.end()
    completed = [e.suggestion_completed for e in h.events if e.HasField("suggestion_completed")]
    assert [c.text for c in completed] == ["first", "second"]
    # The first was still open (not used or dismissed): the second supersedes it.
    assert completed[1].supersedes_suggestion_id == completed[0].suggestion_id


async def test_agent_turns_get_no_suggestion() -> None:
    h = await run_test(text_turns=[(AGENT, "Thank you for calling.")], scripts=[answer("never")])
    assert "suggestion_completed" not in h.kinds()
    assert h.assistant.requests == []


async def test_reattach_continues_the_sequence_and_the_segment_numbering() -> None:
    store = MemoryCallLog()
    first = SessionHarness(store=store)
    call = audio_call()
    session = await first.start(call)
    await session.add_text_turn(CUSTOMER, "First thing.", 0.0)
    first.stream.say(final(0, "Second thing."))
    await first.wait_for(lambda e: e.HasField("transcript") and e.transcript.text == "Second thing.")
    # The process "dies": the session is never ended; a new one re-attaches.
    stored = await store.get_call(call.call_id)
    assert stored is not None and stored.state == call_pb2.CALL_STATE_ACTIVE
    last = stored.last_sequence

    second = SessionHarness(store=store)
    resumed = await second.start(stored)
    await resumed.add_text_turn(CUSTOMER, "Third thing.", 0.0)
    second.stream.say(final(0, "Fourth thing."))
    await second.end()

    notice = second.events[0]
    assert notice.notice.code == "CALL_RESUMED"
    assert notice.sequence == last + 1
    segments = [t.segment_id for t in await store.get_transcript(call.call_id)]
    assert segments == ["seg-0001", "seg-0002", "seg-0003", "seg-0004"]
    sequences = [e.sequence for e in await store.read_events(call.call_id, 1)]
    assert sequences == list(range(1, len(sequences) + 1))


async def test_the_identified_customer_reaches_the_recogniser() -> None:
    h = SessionHarness()
    call = audio_call()
    call.config.customer_hint.customer_id = "C-1001"
    session = await h.start(call)
    assert h.stream.context is not None
    names, numbers = h.stream.context
    assert names == ("Maria Garcia",)
    assert "78901" in numbers
    await session.end(call_pb2.CALL_END_REASON_CLIENT_ENDED)
