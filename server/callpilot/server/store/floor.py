"""The supervisor's floor as stored: live calls with their context and alerts.

A snapshot is consistent with the event log: each call's events are read
only up to the `last_sequence` read with the call, and every event up to
it is committed (the event and `last_sequence` are written in one
transaction, in sequence order). A watcher that subscribed to the bus
before taking the snapshot therefore applies exactly the live events with
a higher sequence, without gaps or duplicates.
"""

from __future__ import annotations

from callpilot.server.store import convert, schema
from callpilot.server.store.base import StoreBase
from callpilot.v1 import call_pb2, events_pb2, floor_service_pb2
from sqlalchemy import select

# The floor shows at most this many live calls (oldest first); a tenant
# with more is far past what one supervisor page can show.
MAX_FLOOR_CALLS = 500
# Sentiment points kept per call for the trend.
MAX_SENTIMENT_POINTS = 50
FLOOR_EVENT_KINDS = ("context", "alert")


def add_sentiment_point(floor_call: floor_service_pb2.FloorCall, update: events_pb2.ContextUpdate) -> None:
    """Append a context update's score to the trend when it is a new customer score.

    Context updates repeat the latest customer score on agent turns, so a
    score equal to the last point is not a new turn; the trend keeps the
    latest MAX_SENTIMENT_POINTS.
    """
    if update.sentiment == events_pb2.SENTIMENT_UNSPECIFIED or not update.segment_id:
        return
    scores = floor_call.sentiment_scores
    if scores and scores[-1] == update.sentiment_score:
        return
    scores.append(update.sentiment_score)
    if len(scores) > MAX_SENTIMENT_POINTS:
        del scores[: len(scores) - MAX_SENTIMENT_POINTS]


class FloorQueries(StoreBase):
    """Live calls of the tenant for the floor."""

    async def floor_snapshot(self) -> list[floor_service_pb2.FloorCall]:
        """Every ACTIVE call, oldest first (at most MAX_FLOOR_CALLS), with context and alerts."""
        c = schema.calls.c
        e = schema.call_events.c
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(schema.calls)
                    .where(c.tenant_id == self._tenant, c.state == int(call_pb2.CALL_STATE_ACTIVE))
                    .order_by(c.create_time, c.call_id)
                    .limit(MAX_FLOOR_CALLS)
                )
            ).all()
            calls = {
                row.call_id: floor_service_pb2.FloorCall(
                    call=convert.call(row), last_sequence=row.last_sequence
                )
                for row in rows
            }
            events = (
                (
                    await conn.execute(
                        select(e.call_id, e.sequence, e.data)
                        .where(
                            e.tenant_id == self._tenant,
                            e.call_id.in_(list(calls)),
                            e.kind.in_(FLOOR_EVENT_KINDS),
                        )
                        .order_by(e.call_id, e.sequence)
                    )
                ).all()
                if calls
                else []
            )
        for call_id, sequence, blob in events:
            floor_call = calls[call_id]
            if sequence > floor_call.last_sequence:
                continue  # written after the call row was read: the live stream delivers it
            event = events_pb2.CallEvent.FromString(blob)
            if event.HasField("context"):
                floor_call.context.CopyFrom(event.context)
                add_sentiment_point(floor_call, event.context)
            elif event.HasField("alert"):
                floor_call.alerts.append(event.alert)
        return list(calls.values())
