"""The durable event log, its derived records, and suggestion feedback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from callpilot.server.errors import AlreadyExists, InvalidArgument, NotFound
from callpilot.server.store import Store
from callpilot.v1 import assist_service_pb2, call_pb2, common_pb2, directory_pb2, events_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

BASE = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
CALL = "call-ev"


def ts(seconds: float) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(BASE + timedelta(seconds=seconds))
    return out


def event(seq: int, **payload: object) -> events_pb2.CallEvent:
    return events_pb2.CallEvent(call_id=CALL, sequence=seq, time=ts(seq), durable=True, **payload)  # type: ignore[arg-type]


def final(
    seq: int,
    segment: str,
    text: str,
    role: common_pb2.SpeakerRole.ValueType = common_pb2.SPEAKER_ROLE_CUSTOMER,
) -> events_pb2.CallEvent:
    return event(
        seq,
        transcript=events_pb2.TranscriptUpdate(
            segment_id=segment,
            role=role,
            text=text,
            is_final=True,
            confidence=0.93,
            start_offset=Duration(seconds=seq),
            end_offset=Duration(seconds=seq + 2),
        ),
    )


def suggestion(seq: int, sid: str, text: str, supersedes: str = "") -> events_pb2.CallEvent:
    return event(
        seq,
        suggestion_completed=events_pb2.SuggestionCompleted(
            suggestion_id=sid,
            text=text,
            sources=[
                events_pb2.Source(
                    kind=events_pb2.SOURCE_KIND_POLICY, id="POLICY_TYPE_REFUND", title="Refund policy"
                )
            ],
            supersedes_suggestion_id=supersedes,
        ),
    )


def tool_call(seq: int, tool_id: str) -> events_pb2.CallEvent:
    args = Struct()
    args.update({"order_number": "78901"})
    result = Struct()
    result.update({"status": "delivered", "total": "129.99"})
    return event(
        seq,
        tool_call=events_pb2.ToolCall(
            tool_call_id=tool_id,
            tool_name="get_order_details",
            arguments=args,
            result=result,
            duration=Duration(nanos=4_000_000),
            status=events_pb2.TOOL_CALL_STATUS_SUCCEEDED,
            trigger_segment_id="seg-1",
        ),
    )


@pytest.fixture
async def call_store(empty_store: Store) -> Store:
    await empty_store.create_call(
        call_pb2.Call(call_id=CALL, state=call_pb2.CALL_STATE_ACTIVE, create_time=ts(0))
    )
    return empty_store


async def test_events_are_read_back_in_order_from_a_sequence(call_store: Store) -> None:
    events = [
        event(1, call_started=events_pb2.CallStarted(call=call_pb2.Call(call_id=CALL))),
        final(2, "seg-1", "Hi, my headphones stopped working."),
        final(4, "seg-2", "Sorry to hear that!", common_pb2.SPEAKER_ROLE_AGENT),  # 3 was ephemeral
        event(
            5,
            notice=events_pb2.Notice(level=events_pb2.NOTICE_LEVEL_WARNING, code="STT_DEGRADED", text="slow"),
        ),
    ]
    for e in events:
        await call_store.append_event(e)
    assert await call_store.read_events(CALL, 0) == events
    assert await call_store.read_events(CALL, 3) == events[2:]
    assert await call_store.read_events(CALL, 2, limit=2) == events[1:3]
    assert await call_store.read_events(CALL, 6) == []
    assert await call_store.read_events("other", 0) == []
    got = await call_store.get_call(CALL)
    assert got is not None and got.last_sequence == 5


async def test_duplicate_sequence_is_rejected_and_writes_nothing(call_store: Store) -> None:
    await call_store.append_event(final(1, "seg-1", "Where is my refund?"))
    # Same sequence again, carrying a payload that would derive a suggestion row.
    with pytest.raises(AlreadyExists, match=f'event 1 of call "{CALL}"'):
        await call_store.append_event(suggestion(1, "s-1", "Check the refund status."))
    assert await call_store.get_suggestions(CALL) == []
    assert [e.WhichOneof("payload") for e in await call_store.read_events(CALL, 0)] == ["transcript"]
    assert len(await call_store.get_transcript(CALL)) == 1
    got = await call_store.get_call(CALL)
    assert got is not None and got.last_sequence == 1


async def test_a_failing_derived_record_rolls_back_the_event(call_store: Store) -> None:
    await call_store.append_event(tool_call(1, "tool-1"))
    with pytest.raises(AlreadyExists, match='tool call "tool-1"'):
        await call_store.append_event(tool_call(2, "tool-1"))
    assert [e.sequence for e in await call_store.read_events(CALL, 0)] == [1]
    got = await call_store.get_call(CALL)
    assert got is not None and got.last_sequence == 1
    # The sequence is still free: the failed append left nothing behind.
    await call_store.append_event(tool_call(2, "tool-2"))
    assert [t.tool_call_id for t in await call_store.get_tool_calls(CALL)] == ["tool-1", "tool-2"]


async def test_events_for_unknown_calls_and_malformed_events(call_store: Store) -> None:
    stray = final(1, "seg", "hello")
    stray.call_id = "ghost"
    with pytest.raises(NotFound, match='call "ghost" not found'):
        await call_store.append_event(stray)
    assert await call_store.read_events("ghost", 0) == []
    with pytest.raises(InvalidArgument, match=r"event\.sequence"):
        await call_store.append_event(final(0, "seg", "hello"))
    with pytest.raises(InvalidArgument, match=r"event\.payload"):
        await call_store.append_event(events_pb2.CallEvent(call_id=CALL, sequence=1))
    with pytest.raises(InvalidArgument, match="suggestion_id"):
        await call_store.append_event(suggestion(1, "", "text"))
    with pytest.raises(InvalidArgument, match="tool_call_id"):
        await call_store.append_event(tool_call(1, "x" * 200))
    assert await call_store.read_events(CALL, 0) == []


async def test_transcript_keeps_final_segments_only(call_store: Store) -> None:
    interim = final(1, "seg-1", "my head")
    interim.transcript.is_final = False
    await call_store.append_event(interim)
    await call_store.append_event(final(2, "seg-1", "My headphones stopped working."))
    await call_store.append_event(final(3, "seg-2", "Let me look that up.", common_pb2.SPEAKER_ROLE_AGENT))
    transcript = await call_store.get_transcript(CALL)
    assert [(t.segment_id, t.text) for t in transcript] == [
        ("seg-1", "My headphones stopped working."),
        ("seg-2", "Let me look that up."),
    ]
    assert transcript[0] == final(2, "seg-1", "My headphones stopped working.").transcript


async def test_tool_calls_are_recorded_whole(call_store: Store) -> None:
    await call_store.append_event(tool_call(1, "tool-1"))
    (stored,) = await call_store.get_tool_calls(CALL)
    assert stored == tool_call(1, "tool-1").tool_call
    assert stored.result["total"] == "129.99"


async def test_suggestions_supersede_and_carry_feedback(call_store: Store) -> None:
    await call_store.append_event(suggestion(1, "s-1", "Offer a return label."))
    await call_store.append_event(suggestion(2, "s-2", "Refunds take 5-7 business days.", supersedes="s-1"))
    first, second = await call_store.get_suggestions(CALL)
    assert (first.suggestion.suggestion_id, first.superseded) == ("s-1", True)
    assert (second.suggestion.suggestion_id, second.superseded) == ("s-2", False)
    assert second.create_time == ts(2)
    assert (
        second.suggestion
        == suggestion(2, "s-2", "Refunds take 5-7 business days.", "s-1").suggestion_completed
    )
    assert not second.HasField("feedback")

    used = assist_service_pb2.SuggestionFeedback(
        suggestion_id="s-2", kind=assist_service_pb2.FEEDBACK_KIND_USED
    )
    result = await call_store.record_feedback(CALL, used)
    assert result.feedback == used and result.suggestion.suggestion_id == "s-2"
    rated = assist_service_pb2.SuggestionFeedback(
        suggestion_id="s-2", kind=assist_service_pb2.FEEDBACK_KIND_RATED, rating=5, comment="spot on"
    )
    result = await call_store.record_feedback(CALL, rated)
    assert result.feedback == rated
    _, latest = await call_store.get_suggestions(CALL)
    assert latest.feedback == rated
    assert await call_store.get_feedback_history(CALL, "s-2") == [used, rated]


async def test_feedback_errors(call_store: Store) -> None:
    await call_store.append_event(suggestion(1, "s-1", "Offer a return label."))
    fb = assist_service_pb2.SuggestionFeedback(
        suggestion_id="s-1", kind=assist_service_pb2.FEEDBACK_KIND_USED
    )
    with pytest.raises(NotFound, match='call "ghost" not found'):
        await call_store.record_feedback("ghost", fb)
    with pytest.raises(NotFound, match=f'suggestion "s-404" not found in call "{CALL}"') as info:
        await call_store.record_feedback(
            CALL,
            assist_service_pb2.SuggestionFeedback(
                suggestion_id="s-404", kind=assist_service_pb2.FEEDBACK_KIND_USED
            ),
        )
    assert info.value.reason == "SUGGESTION_NOT_FOUND"
    with pytest.raises(InvalidArgument, match=r"feedback\.rating"):
        await call_store.record_feedback(
            CALL,
            assist_service_pb2.SuggestionFeedback(
                suggestion_id="s-1", kind=assist_service_pb2.FEEDBACK_KIND_RATED, rating=40000
            ),
        )
    with pytest.raises(InvalidArgument, match=r"feedback\.suggestion_id"):
        await call_store.record_feedback(CALL, assist_service_pb2.SuggestionFeedback())
    assert await call_store.get_feedback_history(CALL, "s-1") == []


async def test_latest_context_wins_and_names_the_customer(call_store: Store) -> None:
    assert await call_store.latest_context(CALL) is None
    maria = directory_pb2.Customer(customer_id="C-1001", name="Maria Garcia")
    first = events_pb2.ContextUpdate(customer=maria, topics=[events_pb2.TOPIC_REFUND], segment_id="seg-1")
    newer = events_pb2.ContextUpdate(
        customer=maria,
        topics=[events_pb2.TOPIC_REFUND, events_pb2.TOPIC_RETURN],
        entities=[
            events_pb2.Entity(
                type=events_pb2.ENTITY_TYPE_ORDER_NUMBER, value="78901", text="seven eight nine oh one"
            )
        ],
        sentiment=events_pb2.SENTIMENT_NEGATIVE,
        sentiment_score=-0.4,
        segment_id="seg-2",
    )
    await call_store.append_event(event(1, context=first))
    await call_store.append_event(event(3, context=newer))
    # A late, older snapshot (sequence 2) must not replace the newer one.
    await call_store.append_event(event(2, context=first))
    assert await call_store.latest_context(CALL) == newer
    got = await call_store.get_call(CALL)
    assert got is not None and got.customer_id == "C-1001" and got.last_sequence == 3


async def test_call_ended_closes_the_call(call_store: Store) -> None:
    await call_store.append_event(final(1, "seg-1", "Thanks, bye."))
    await call_store.append_event(
        event(
            2,
            call_ended=events_pb2.CallEnded(
                reason=call_pb2.CALL_END_REASON_CLIENT_ENDED, detail="hung up", summary="Refund explained."
            ),
        )
    )
    got = await call_store.get_call(CALL)
    assert got is not None
    assert got.state == call_pb2.CALL_STATE_ENDED
    assert got.end_reason == call_pb2.CALL_END_REASON_CLIENT_ENDED
    assert got.end_time == ts(2)
    assert got.summary == "Refund explained."
    assert got.last_sequence == 2
    ended, _ = await call_store.list_calls(page_size=5, page_token="", state=call_pb2.CALL_STATE_ENDED)
    assert [c.call_id for c in ended] == [CALL]


async def test_concurrent_appends_all_land(call_store: Store) -> None:
    # Concurrent writers must queue, not fail with "database is locked".
    await asyncio.gather(
        *(call_store.append_event(final(seq, f"seg-{seq}", f"line {seq}")) for seq in range(1, 21))
    )
    assert [e.sequence for e in await call_store.read_events(CALL, 1)] == list(range(1, 21))
    got = await call_store.get_call(CALL)
    assert got is not None and got.last_sequence == 20
    results = await asyncio.gather(
        *(call_store.append_event(final(7, "seg-x", "again")) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, AlreadyExists) for r in results)
