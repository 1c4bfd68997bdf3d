"""The floor's snapshot on SQLite and PostgreSQL: active calls only, oldest
first, each with its latest context, sentiment points and alerts."""

from __future__ import annotations

from datetime import timedelta

from callpilot.server.store import Store
from callpilot.v1 import call_pb2, events_pb2
from insights.seed import START, timestamp


async def _call(store: Store, call_id: str, minutes: int, events: list[events_pb2.CallEvent]) -> None:
    await store.create_call(
        call_pb2.Call(
            call_id=call_id,
            state=call_pb2.CALL_STATE_ACTIVE,
            create_time=timestamp(START + timedelta(minutes=minutes)),
        )
    )
    for seq, event in enumerate(events, start=1):
        event.call_id, event.sequence, event.durable = call_id, seq, True
        await store.append_event(event)


def context(segment_id: str, score: float, name: str = "") -> events_pb2.CallEvent:
    return events_pb2.CallEvent(
        context=events_pb2.ContextUpdate(
            segment_id=segment_id,
            sentiment=events_pb2.SENTIMENT_NEGATIVE if score < 0 else events_pb2.SENTIMENT_NEUTRAL,
            sentiment_score=score,
            customer={"customer_id": "C-1", "name": name} if name else None,
        )
    )


async def test_snapshot_holds_live_calls_with_context_trend_and_alerts(empty_store: Store) -> None:
    alert = events_pb2.Alert(alert_id="alert-1", kind=events_pb2.ALERT_KIND_LONG_SILENCE, reason="quiet")
    await _call(
        empty_store,
        "late",
        10,
        [
            events_pb2.CallEvent(call_started=events_pb2.CallStarted()),
            context("s-1", 0.3, "Maria Garcia"),
            context("s-2", 0.3),  # an agent turn repeats the score: not a new point
            context("s-3", -0.2),
            events_pb2.CallEvent(alert=alert),
        ],
    )
    await _call(empty_store, "early", 5, [events_pb2.CallEvent(call_started=events_pb2.CallStarted())])
    await _call(
        empty_store,
        "ended",
        1,
        [
            events_pb2.CallEvent(call_started=events_pb2.CallStarted()),
            events_pb2.CallEvent(call_ended=events_pb2.CallEnded()),
        ],
    )
    snapshot = await empty_store.floor_snapshot()
    assert [c.call.call_id for c in snapshot] == ["early", "late"]
    early, late = snapshot
    assert not early.HasField("context") and early.last_sequence == 1
    assert late.last_sequence == 5
    assert late.context.customer.name == "" and late.context.segment_id == "s-3"
    assert [round(s, 2) for s in late.sentiment_scores] == [0.3, -0.2]
    assert list(late.alerts) == [alert]
