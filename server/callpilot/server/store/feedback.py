"""Agent feedback on suggestions: an append-only history per suggestion."""

from __future__ import annotations

from typing import Any

from callpilot.server.errors import InvalidArgument, NotFound, Violation
from callpilot.server.store import convert, schema
from callpilot.server.store.base import StoreBase
from callpilot.server.webhooks import outbox as webhook_outbox
from callpilot.v1 import assist_service_pb2, events_pb2
from sqlalchemy import Row, select


class Feedback(StoreBase):
    """Feedback rows for one tenant; the Suggestion message exposes the latest."""

    async def record_feedback(
        self, call_id: str, feedback: assist_service_pb2.SuggestionFeedback
    ) -> assist_service_pb2.Suggestion:
        """Append feedback to a suggestion's history and return the suggestion with it.

        Every submission is kept (agents change their mind; analytics wants
        the history); the Suggestion exposes the latest.
        """
        if not feedback.suggestion_id:
            raise InvalidArgument(Violation("feedback.suggestion_id", "is required"))
        if not 0 <= feedback.rating <= 5:
            raise InvalidArgument(
                Violation("feedback.rating", f"must be 1 to 5 (or 0), got {feedback.rating}")
            )
        c = schema.calls.c
        s = schema.suggestions.c
        async with self._write() as conn:
            exists = (
                await conn.execute(select(c.call_id).where(c.tenant_id == self._tenant, c.call_id == call_id))
            ).first()
            if exists is None:
                raise NotFound(f'call "{call_id}" not found', metadata={"call_id": call_id})
            row = (
                await conn.execute(
                    select(schema.suggestions).where(
                        s.tenant_id == self._tenant,
                        s.call_id == call_id,
                        s.suggestion_id == feedback.suggestion_id,
                    )
                )
            ).first()
            if row is None:
                raise NotFound(
                    f'suggestion "{feedback.suggestion_id}" not found in call "{call_id}"',
                    reason="SUGGESTION_NOT_FOUND",
                    metadata={"call_id": call_id, "suggestion_id": feedback.suggestion_id},
                )
            await conn.execute(
                schema.suggestion_feedback.insert().values(
                    tenant_id=self._tenant,
                    call_id=call_id,
                    suggestion_id=feedback.suggestion_id,
                    kind=int(feedback.kind),
                    rating=feedback.rating,
                    comment=feedback.comment,
                    create_time=convert.now_utc(),
                )
            )
            await webhook_outbox.write_for_feedback(conn, self._tenant, call_id, feedback)
        result = suggestion_message(row, None)
        result.feedback.CopyFrom(feedback)
        return result

    async def get_feedback_history(
        self, call_id: str, suggestion_id: str
    ) -> list[assist_service_pb2.SuggestionFeedback]:
        """Every feedback submitted on a suggestion, oldest first."""
        f = schema.suggestion_feedback.c
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(schema.suggestion_feedback)
                    .where(
                        f.tenant_id == self._tenant, f.call_id == call_id, f.suggestion_id == suggestion_id
                    )
                    .order_by(f.feedback_id)
                )
            ).all()
        return [_feedback(row) for row in rows]


def suggestion_message(row: Row[Any], feedback: Row[Any] | None) -> assist_service_pb2.Suggestion:
    """A suggestions row as the API's Suggestion, with its latest feedback row if any."""
    message = assist_service_pb2.Suggestion(
        suggestion=events_pb2.SuggestionCompleted.FromString(row.data),
        create_time=convert.to_timestamp(row.create_time),
        superseded=bool(row.superseded),
    )
    if feedback is not None:
        message.feedback.CopyFrom(_feedback(feedback))
    return message


def _feedback(row: Row[Any]) -> assist_service_pb2.SuggestionFeedback:
    return assist_service_pb2.SuggestionFeedback(
        suggestion_id=row.suggestion_id, kind=row.kind, rating=row.rating, comment=row.comment
    )
