"""What the live pipeline and the API need from persistence, as Protocols.

The session, the manager and the servicers are typed against these, never
against the SQL `Store`, so that a session can be driven in tests by an
in-memory log and a future event store (or a remote one) only has to
satisfy this file. `Directory` (callpilot.server.directory) is the read side
of the company's data; `CallLog` is the calls and their durable event log.

Invariants every implementation keeps:

- `append_event` writes the event and everything derived from it (the
  transcript segment, tool call, suggestion, context snapshot, the call's
  end and its `last_sequence`) atomically; a sequence already written
  raises `AlreadyExists` (callpilot.server.errors).
- `read_events` returns stored (durable) events in ascending sequence
  order, at most `limit` of them, so a replay can be read in pages.
- Every method is scoped to the implementation's tenant: another tenant's
  call does not exist for it.
"""

from __future__ import annotations

from typing import Protocol

from callpilot.v1 import assist_service_pb2, call_pb2, events_pb2


class CallLog(Protocol):
    """Calls and their durable, sequenced event log."""

    async def create_call(self, call: call_pb2.Call) -> None:
        """Insert a new call record; AlreadyExists if the id is taken."""
        ...

    async def get_call(self, call_id: str) -> call_pb2.Call | None: ...

    async def update_call(self, call: call_pb2.Call) -> None:
        """Write the call's mutable fields (config, customer, labels)."""
        ...

    async def list_calls(
        self,
        *,
        page_size: int = ...,
        page_token: str = "",
        state: call_pb2.CallState.ValueType = call_pb2.CALL_STATE_UNSPECIFIED,
    ) -> tuple[list[call_pb2.Call], str]:
        """A page of calls, newest first, and the next page's token ("" on the last)."""
        ...

    async def append_event(self, event: events_pb2.CallEvent) -> None:
        """Store one durable event and what derives from it, atomically."""
        ...

    async def read_events(
        self, call_id: str, from_sequence: int, limit: int | None = None
    ) -> list[events_pb2.CallEvent]:
        """Stored events with sequence >= from_sequence, ascending, at most `limit`."""
        ...

    async def get_transcript(
        self, call_id: str, *, offset: int = 0, limit: int | None = None
    ) -> list[events_pb2.TranscriptUpdate]:
        """Final segments in order, from the `offset`-th (append-only: offsets are stable), at most `limit`."""
        ...

    async def get_tool_calls(self, call_id: str) -> list[events_pb2.ToolCall]: ...

    async def get_suggestions(self, call_id: str) -> list[assist_service_pb2.Suggestion]: ...

    async def latest_context(self, call_id: str) -> events_pb2.ContextUpdate | None: ...

    async def record_feedback(
        self, call_id: str, feedback: assist_service_pb2.SuggestionFeedback
    ) -> assist_service_pb2.Suggestion:
        """Append feedback to a suggestion's history; the suggestion with its latest feedback."""
        ...

    async def save_wrap_up(
        self, call_id: str, wrap_up: assist_service_pb2.WrapUp, updated_by: str
    ) -> assist_service_pb2.WrapUp:
        """Replace the call's wrap-up (last write wins); NotFound if the call does not exist."""
        ...

    async def get_wrap_up(self, call_id: str) -> assist_service_pb2.WrapUp | None:
        """The call's saved wrap-up, or None."""
        ...
