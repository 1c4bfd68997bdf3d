"""The event types a webhook endpoint can subscribe to, and their JSON bodies.

Bodies are built from what the event log has stored, inside the transaction
that stores the event, so they carry exactly the (already redacted) text the
call's events carry: a card number spoken in a call never reaches a webhook.

Every body has the Standard Webhooks shape::

    {"type": "call.ended", "timestamp": "2026-11-30T20:41:07.123456Z", "data": {...}}
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from callpilot.server.store import schema
from callpilot.v1 import assist_service_pb2, call_pb2, events_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

CALL_STARTED = "call.started"
CALL_ENDED = "call.ended"
SUGGESTION_FEEDBACK = "suggestion.feedback"
TOOL_DECIDED = "tool.decided"
EVENT_TYPES = (CALL_STARTED, CALL_ENDED, SUGGESTION_FEEDBACK, TOOL_DECIDED)


def event_type_of(event: events_pb2.CallEvent) -> str | None:
    """The webhook event type a durable call event raises, or None."""
    kind = event.WhichOneof("payload")
    if kind == "call_started":
        return CALL_STARTED
    if kind == "call_ended":
        return CALL_ENDED
    if (
        kind == "tool_call"
        and event.tool_call.HasField("decision")
        and event.tool_call.status != events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION
    ):
        return TOOL_DECIDED
    return None


def _dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def envelope(event_type: str, when: datetime, data: dict[str, Any]) -> str:
    """The exact body sent; compact and key-sorted so it is stable."""
    return json.dumps(
        {"type": event_type, "timestamp": _iso(when), "data": data},
        separators=(",", ":"),
        sort_keys=True,
        ensure_ascii=False,
    )


async def event_data(
    conn: AsyncConnection,
    tenant_id: str,
    event_type: str,
    event: events_pb2.CallEvent,
    when: datetime,
    transcript_url: str,
) -> dict[str, Any]:
    """The `data` of a call event's webhook, read in the event's own transaction."""
    if event_type == CALL_STARTED:
        call = _dict(event.call_started.call)
        call.pop("config", None)  # how the audio is encoded is of no use to a CRM
        return {"call_id": event.call_id, "sequence": event.sequence, "call": call}
    if event_type == TOOL_DECIDED:
        tool = event.tool_call
        return {
            "call_id": event.call_id,
            "sequence": event.sequence,
            "tool_call": _dict(tool),
        }
    return await _call_ended(conn, tenant_id, event, when, transcript_url)


async def _call_ended(
    conn: AsyncConnection, tenant_id: str, event: events_pb2.CallEvent, when: datetime, transcript_url: str
) -> dict[str, Any]:
    call_id = event.call_id
    c = schema.calls.c
    row = (
        await conn.execute(
            select(c.create_time, c.customer_id, c.summary).where(
                c.tenant_id == tenant_id, c.call_id == call_id
            )
        )
    ).first()
    x = schema.call_contexts.c
    blob = (
        await conn.execute(select(x.data).where(x.tenant_id == tenant_id, x.call_id == call_id))
    ).scalar_one_or_none()
    context = events_pb2.ContextUpdate.FromString(blob) if blob is not None else events_pb2.ContextUpdate()
    t = schema.tool_calls.c
    tools = [
        events_pb2.ToolCall.FromString(b)
        for b in (
            await conn.execute(
                select(t.data).where(t.tenant_id == tenant_id, t.call_id == call_id).order_by(t.sequence)
            )
        ).scalars()
    ]
    s = schema.suggestions.c
    f = schema.suggestion_feedback.c
    used_ids = set(
        (
            await conn.execute(
                select(f.suggestion_id).where(
                    f.tenant_id == tenant_id,
                    f.call_id == call_id,
                    f.kind == int(assist_service_pb2.FEEDBACK_KIND_USED),
                )
            )
        ).scalars()
    )
    used = [
        {"suggestion_id": r.suggestion_id, "text": r.text}
        for r in (
            await conn.execute(
                select(s.suggestion_id, s.text)
                .where(s.tenant_id == tenant_id, s.call_id == call_id)
                .order_by(s.sequence)
            )
        ).all()
        if r.suggestion_id in used_ids
    ]
    ended = event.call_ended
    created = row.create_time if row is not None else when
    customer = _dict(context.customer) if context.HasField("customer") else {}
    if not customer and row is not None and row.customer_id:
        customer = {"customer_id": row.customer_id}
    return {
        "call_id": call_id,
        "sequence": event.sequence,
        "reason": call_pb2.CallEndReason.Name(ended.reason),
        "detail": ended.detail,
        "summary": ended.summary or (row.summary if row is not None else ""),
        "customer": customer,
        "topics": [events_pb2.Topic.Name(topic) for topic in context.topics],
        "tool_calls": [_dict(tool) for tool in tools],
        "suggestions_used": used,
        "create_time": _iso(created),
        "end_time": _iso(when),
        "handle_time_seconds": round(max(0.0, (when - created).total_seconds()), 3),
        "transcript_url": transcript_url.replace("{call_id}", call_id),
    }


def feedback_data(call_id: str, feedback: assist_service_pb2.SuggestionFeedback) -> dict[str, Any]:
    return {"call_id": call_id, "feedback": _dict(feedback)}
