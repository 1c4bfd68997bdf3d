"""The durable event log of the SQL store: append, read, and what derives from events.

`append_event` writes an event and its derived rows (transcript segment,
tool call, suggestion, context snapshot, call end, last_sequence) in one
transaction; the getters below read those derived rows back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from callpilot.server.errors import AlreadyExists, InvalidArgument, NotFound, Violation
from callpilot.server.store import convert, schema
from callpilot.server.store.base import StoreBase, check_id
from callpilot.server.store.feedback import suggestion_message
from callpilot.server.store.group_commit import GroupCommit
from callpilot.server.store.upsert import upsert
from callpilot.server.webhooks import outbox as webhook_outbox
from callpilot.v1 import assist_service_pb2, call_pb2, events_pb2
from sqlalchemy import Integer, and_, bindparam, case, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection


class EventLog(StoreBase):
    """Append-only, sequenced call events for one tenant, and their derived views."""

    async def append_event(self, event: events_pb2.CallEvent) -> None:
        """Store one durable event and the record derived from it, atomically; return once committed.

        The event shares its transaction with other calls' events queued at
        the same moment (group commit, see group_commit.py); its outcome is
        its own: an error in another event never fails this one.

        Either the event, its derived row (transcript segment, tool call,
        suggestion, context snapshot, call end) and the call's last_sequence
        are all written, or none is. A sequence already written raises
        AlreadyExists, which is what makes replays and retries safe.
        """
        kind = event.WhichOneof("payload")
        check_id(event.call_id, "event.call_id")
        if event.sequence < 1:
            raise InvalidArgument(Violation("event.sequence", f"must be 1 or more, got {event.sequence}"))
        if kind is None:
            raise InvalidArgument(Violation("event.payload", "is not set"))
        if kind == "suggestion_completed":
            check_id(
                event.suggestion_completed.suggestion_id, "event.suggestion_completed.suggestion_id", 128
            )
        if kind == "tool_call":
            for name, value in (
                ("tool_call_id", event.tool_call.tool_call_id),
                ("tool_name", event.tool_call.tool_name),
            ):
                if len(value) > 128:
                    raise InvalidArgument(
                        Violation(f"event.tool_call.{name}", "is longer than 128 characters")
                    )
        when = convert.from_timestamp(event.time) if event.HasField("time") else convert.now_utc()

        await self._group_commit().submit(PendingEvent(self, event, kind, when))

    def _group_commit(self) -> GroupCommit[PendingEvent]:
        """The pool's one group committer (see group_commit.py), made on first use."""
        shared = self._shared
        if shared.commits is None:
            shared.commits = GroupCommit(self._write, write_events)
        commits: GroupCommit[PendingEvent] = shared.commits
        return commits

    async def _append_in(
        self, conn: AsyncConnection, event: events_pb2.CallEvent, kind: str, when: datetime
    ) -> None:
        """The writes of one event, in the caller's transaction (which may hold other events)."""
        call_id, seq = event.call_id, event.sequence
        c = schema.calls.c
        # Updating the call first also locks its row (PostgreSQL), which
        # serialises concurrent appends to one call.
        result = await conn.execute(
            update(schema.calls)
            .where(c.tenant_id == self._tenant, c.call_id == call_id)
            .values(last_sequence=case((c.last_sequence < seq, seq), else_=c.last_sequence))
        )
        if result.rowcount == 0:
            raise NotFound(f'call "{call_id}" not found', metadata={"call_id": call_id})
        try:
            await conn.execute(
                schema.call_events.insert().values(
                    tenant_id=self._tenant,
                    call_id=call_id,
                    sequence=seq,
                    kind=kind,
                    event_time=when,
                    data=event.SerializeToString(deterministic=True),
                )
            )
        except IntegrityError as exc:
            raise AlreadyExists(
                f'event {seq} of call "{call_id}" was already written',
                metadata={"call_id": call_id, "sequence": str(seq)},
            ) from exc
        await self._derive(conn, event, kind, when)
        # The webhook outbox row commits with the event: no window where one exists without the other.
        await webhook_outbox.write_for_event(conn, event, self._tenant, when)

    async def _derive(
        self, conn: AsyncConnection, event: events_pb2.CallEvent, kind: str, when: datetime
    ) -> None:
        key = {"tenant_id": self._tenant, "call_id": event.call_id, "sequence": event.sequence}
        c = schema.calls.c
        this_call = and_(c.tenant_id == self._tenant, c.call_id == event.call_id)
        if kind == "transcript" and event.transcript.is_final:
            segment = event.transcript
            await conn.execute(
                schema.transcript_segments.insert().values(
                    **key,
                    segment_id=segment.segment_id,
                    role=int(segment.role),
                    text=segment.text,
                    data=segment.SerializeToString(deterministic=True),
                )
            )
        elif kind == "tool_call":
            tool = event.tool_call
            tool_call_id = tool.tool_call_id or f"#{event.sequence}"
            t = schema.tool_calls.c
            where = and_(
                t.tenant_id == key["tenant_id"], t.call_id == event.call_id, t.tool_call_id == tool_call_id
            )
            existing = (await conn.execute(select(t.status).where(where))).scalar_one_or_none()
            pending = int(events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION)
            if existing is None:
                await conn.execute(
                    schema.tool_calls.insert().values(
                        **key,
                        tool_call_id=tool_call_id,
                        tool_name=tool.tool_name,
                        status=int(tool.status),
                        data=tool.SerializeToString(deterministic=True),
                    )
                )
            elif existing == pending and tool.status != events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION:
                # A proposed write tool is recorded again once the agent decides
                # it: the row keeps its place and takes the final state.
                await conn.execute(
                    update(schema.tool_calls)
                    .where(where)
                    .values(status=int(tool.status), data=tool.SerializeToString(deterministic=True))
                )
            else:
                raise AlreadyExists(
                    f'tool call "{tool_call_id}" of call "{event.call_id}" was already recorded'
                )
        elif kind == "suggestion_completed":
            suggestion = event.suggestion_completed
            try:
                await conn.execute(
                    schema.suggestions.insert().values(
                        **key,
                        suggestion_id=suggestion.suggestion_id,
                        create_time=when,
                        superseded=False,
                        text=suggestion.text,
                        data=suggestion.SerializeToString(deterministic=True),
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(
                    f'suggestion "{suggestion.suggestion_id}" of call "{event.call_id}" was already recorded'
                ) from exc
            if suggestion.supersedes_suggestion_id:
                s = schema.suggestions.c
                await conn.execute(
                    update(schema.suggestions)
                    .where(
                        s.tenant_id == self._tenant,
                        s.call_id == event.call_id,
                        s.suggestion_id == suggestion.supersedes_suggestion_id,
                    )
                    .values(superseded=True)
                )
        elif kind == "context":
            await self._upsert_context(conn, event)
            if event.context.customer.customer_id:
                await conn.execute(
                    update(schema.calls)
                    .where(this_call)
                    .values(customer_id=event.context.customer.customer_id)
                )
        elif kind == "call_ended":
            ended = event.call_ended
            await conn.execute(
                update(schema.calls)
                .where(this_call)
                .values(
                    state=int(call_pb2.CALL_STATE_ENDED),
                    end_reason=int(ended.reason),
                    end_time=when,
                    summary=ended.summary if ended.summary else c.summary,
                )
            )

    async def _upsert_context(self, conn: AsyncConnection, event: events_pb2.CallEvent) -> None:
        """Keep only the newest snapshot; an older one arriving late must not win."""
        row = {
            "tenant_id": self._tenant,
            "call_id": event.call_id,
            "sequence": event.sequence,
            "data": event.context.SerializeToString(deterministic=True),
        }
        await upsert(conn, schema.call_contexts, [row], ("tenant_id", "call_id"), only_if_greater="sequence")

    async def read_events(
        self, call_id: str, from_sequence: int, limit: int | None = None
    ) -> list[events_pb2.CallEvent]:
        """Stored events with sequence >= from_sequence, ascending; [] for an unknown call."""
        e = schema.call_events.c
        stmt = (
            select(e.data)
            .where(e.tenant_id == self._tenant, e.call_id == call_id, e.sequence >= from_sequence)
            .order_by(e.sequence)
        )
        if limit is not None:
            stmt = stmt.limit(max(limit, 0))
        async with self._read() as conn:
            blobs = (await conn.execute(stmt)).scalars().all()
        return [events_pb2.CallEvent.FromString(blob) for blob in blobs]

    async def get_transcript(
        self, call_id: str, *, offset: int = 0, limit: int | None = None
    ) -> list[events_pb2.TranscriptUpdate]:
        """Final transcript segments in the order they were emitted, from the `offset`-th, at most `limit`.

        Segments are only ever appended, so an offset names the same segment forever (paging is stable).
        """
        t = schema.transcript_segments.c
        stmt = (
            select(t.data)
            .where(t.tenant_id == self._tenant, t.call_id == call_id)
            .order_by(t.sequence)
            .offset(max(offset, 0))
        )
        if limit is not None:
            stmt = stmt.limit(max(limit, 0))
        async with self._read() as conn:
            blobs = (await conn.execute(stmt)).scalars().all()
        return [events_pb2.TranscriptUpdate.FromString(blob) for blob in blobs]

    async def get_tool_calls(self, call_id: str) -> list[events_pb2.ToolCall]:
        t = schema.tool_calls.c
        async with self._read() as conn:
            blobs = (
                (
                    await conn.execute(
                        select(t.data)
                        .where(t.tenant_id == self._tenant, t.call_id == call_id)
                        .order_by(t.sequence)
                    )
                )
                .scalars()
                .all()
            )
        return [events_pb2.ToolCall.FromString(blob) for blob in blobs]

    async def get_suggestions(self, call_id: str) -> list[assist_service_pb2.Suggestion]:
        """Suggestions in order, each with its superseded flag and latest feedback."""
        s = schema.suggestions.c
        f = schema.suggestion_feedback.c
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    select(schema.suggestions)
                    .where(s.tenant_id == self._tenant, s.call_id == call_id)
                    .order_by(s.sequence)
                )
            ).all()
            feedback_rows = (
                await conn.execute(
                    select(schema.suggestion_feedback)
                    .where(f.tenant_id == self._tenant, f.call_id == call_id)
                    .order_by(f.feedback_id)
                )
            ).all()
        latest = {fb.suggestion_id: fb for fb in feedback_rows}  # later rows win
        return [suggestion_message(row, latest.get(row.suggestion_id)) for row in rows]

    async def latest_context(self, call_id: str) -> events_pb2.ContextUpdate | None:
        x = schema.call_contexts.c
        async with self._read() as conn:
            blob = (
                await conn.execute(select(x.data).where(x.tenant_id == self._tenant, x.call_id == call_id))
            ).scalar_one_or_none()
        return events_pb2.ContextUpdate.FromString(blob) if blob is not None else None


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A validated durable event waiting for its group commit, with the tenant's store."""

    store: EventLog
    event: events_pb2.CallEvent
    kind: str
    when: datetime


#: Derived rows written per event even in a batch (rare kinds with read-then-write logic).
_DERIVED_ONE_BY_ONE = frozenset({"tool_call", "call_ended"})


async def write_events(conn: AsyncConnection, items: Sequence[PendingEvent]) -> None:
    """Write a batch of events in the caller's transaction, with as few statements as it allows.

    One event takes the plain path (`_append_in`). A batch writes the same
    rows with one statement per table (multi-row INSERT / executemany
    UPDATE): the round trips to the database, not the rows, were what made
    a transaction long. Any error fails the whole batch, which the group
    committer then retries one event at a time, so each event still gets
    its own exact error (NotFound, AlreadyExists).
    """
    if len(items) == 1:
        one = items[0]
        await one.store._append_in(conn, one.event, one.kind, one.when)
        return
    c = schema.calls.c
    keys = sorted({(i.store.tenant_id, i.event.call_id) for i in items})
    found = await conn.execute(select(c.tenant_id, c.call_id).where(tuple_(c.tenant_id, c.call_id).in_(keys)))
    if len(found.all()) != len(keys):
        raise NotFound("a call of this batch was not found")  # retried one by one: the exact error
    # In (tenant, call) order, so that row locks (PostgreSQL) are always taken in one order.
    seq = bindparam("b_seq", type_=Integer)
    await conn.execute(
        update(schema.calls)
        .where(c.tenant_id == bindparam("b_tenant"), c.call_id == bindparam("b_call"))
        .values(last_sequence=case((c.last_sequence < seq, seq), else_=c.last_sequence)),
        [
            {"b_tenant": i.store.tenant_id, "b_call": i.event.call_id, "b_seq": i.event.sequence}
            for i in sorted(items, key=lambda i: (i.store.tenant_id, i.event.call_id, i.event.sequence))
        ],
    )
    await conn.execute(
        schema.call_events.insert(),
        [
            {
                "tenant_id": i.store.tenant_id,
                "call_id": i.event.call_id,
                "sequence": i.event.sequence,
                "kind": i.kind,
                "event_time": i.when,
                "data": i.event.SerializeToString(deterministic=True),
            }
            for i in items
        ],
    )
    segments: list[dict[str, object]] = []
    suggestions: list[dict[str, object]] = []
    superseded: list[dict[str, object]] = []
    contexts: list[dict[str, object]] = []
    customers: list[dict[str, object]] = []
    for i in items:
        event = i.event
        key = {"tenant_id": i.store.tenant_id, "call_id": event.call_id, "sequence": event.sequence}
        if i.kind == "transcript" and event.transcript.is_final:
            segment = event.transcript
            segments.append(
                key
                | {
                    "segment_id": segment.segment_id,
                    "role": int(segment.role),
                    "text": segment.text,
                    "data": segment.SerializeToString(deterministic=True),
                }
            )
        elif i.kind == "suggestion_completed":
            suggestion = event.suggestion_completed
            suggestions.append(
                key
                | {
                    "suggestion_id": suggestion.suggestion_id,
                    "create_time": i.when,
                    "superseded": False,
                    "text": suggestion.text,
                    "data": suggestion.SerializeToString(deterministic=True),
                }
            )
            if suggestion.supersedes_suggestion_id:
                superseded.append(
                    {
                        "b_tenant": i.store.tenant_id,
                        "b_call": event.call_id,
                        "b_suggestion": suggestion.supersedes_suggestion_id,
                    }
                )
        elif i.kind == "context":
            contexts.append(key | {"data": event.context.SerializeToString(deterministic=True)})
            if event.context.customer.customer_id:
                customers.append(
                    {
                        "b_tenant": i.store.tenant_id,
                        "b_call": event.call_id,
                        "b_customer": event.context.customer.customer_id,
                    }
                )
        elif i.kind in _DERIVED_ONE_BY_ONE:
            await i.store._derive(conn, event, i.kind, i.when)
    if segments:
        await conn.execute(schema.transcript_segments.insert(), segments)
    if suggestions:
        await conn.execute(schema.suggestions.insert(), suggestions)
    if superseded:
        s = schema.suggestions.c
        await conn.execute(
            update(schema.suggestions)
            .where(
                s.tenant_id == bindparam("b_tenant"),
                s.call_id == bindparam("b_call"),
                s.suggestion_id == bindparam("b_suggestion"),
            )
            .values(superseded=True),
            superseded,
        )
    if contexts:
        await upsert(
            conn, schema.call_contexts, contexts, ("tenant_id", "call_id"), only_if_greater="sequence"
        )
    if customers:
        await conn.execute(
            update(schema.calls)
            .where(c.tenant_id == bindparam("b_tenant"), c.call_id == bindparam("b_call"))
            .values(customer_id=bindparam("b_customer")),
            customers,
        )
    # The webhook outbox rows commit with their events, as for a single event.
    await webhook_outbox.write_for_events(conn, [(i.event, i.store.tenant_id, i.when) for i in items])
