"""An assistant that answers a turn with a second assistant when the first cannot.

`FallbackAssistant(primary, fallback)` is an `Assistant` like any other, so
neither the session nor a model-backed assistant holds fallback logic. Per
turn (`respond`): the primary's outputs are forwarded as they come; if the
primary raises (`AssistantUnavailable` with its reason, or any other error),
one `Notice` (code `ASSISTANT_DEGRADED`, level warning) is yielded, then the
fallback's outputs for the same request, so the suggestion keeps its id. The
fallback's `SuggestionCompleted.text` is authoritative when deltas of the
abandoned draft were already streamed. Cancellation (a stale suggestion) is
not a failure: it propagates and the fallback is not asked.

`summarise`: the primary's summary; the fallback's when the primary raises
or returns nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from callpilot.v1 import events_pb2

from .base import Assistant, AssistantUnavailable, AssistOutput, AssistRequest, ConversationState, Turn

__all__ = ["NOTICE_DEGRADED", "FallbackAssistant"]

log = logging.getLogger(__name__)

NOTICE_DEGRADED = "ASSISTANT_DEGRADED"


class FallbackAssistant(Assistant):
    """`primary`, with `fallback` answering the turns (and summaries) it cannot.

    primary_name / fallback_name: how the notice names them ("The language
    model did not answer in time; this suggestion comes from the built-in
    assistant.").
    """

    def __init__(
        self,
        primary: Assistant,
        fallback: Assistant,
        *,
        primary_name: str = "the language model",
        fallback_name: str = "the built-in assistant",
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.primary_name = primary_name
        self.fallback_name = fallback_name

    def wants_to_respond(self, turn: Turn, state: ConversationState) -> bool:
        return self.primary.wants_to_respond(turn, state)

    async def respond(self, request: AssistRequest) -> AsyncIterator[AssistOutput]:
        call_id = request.state.call_id
        try:
            async for out in self.primary.respond(request):
                yield out
            return
        except AssistantUnavailable as exc:
            reason = exc.reason
            log.warning("%s failed for call %s: %s", self.primary_name, call_id, reason)
        except Exception as exc:  # a bug or a malformed answer: the agent still gets one
            reason = f"failed ({type(exc).__name__})"
            log.exception("%s failed for call %s", self.primary_name, call_id)
        subject = self.primary_name[:1].upper() + self.primary_name[1:]
        yield events_pb2.Notice(
            level=events_pb2.NOTICE_LEVEL_WARNING,
            code=NOTICE_DEGRADED,
            text=f"{subject} {reason}; this suggestion comes from {self.fallback_name}.",
        )
        async for out in self.fallback.respond(request):
            yield out

    async def summarise(self, state: ConversationState) -> str:
        try:
            text = await self.primary.summarise(state)
        except Exception as exc:
            log.warning("summary by %s failed for call %s: %s", self.primary_name, state.call_id, exc)
        else:
            if text:
                return text
        return await self.fallback.summarise(state)

    async def aclose(self) -> None:
        try:
            await self.primary.aclose()
        finally:
            await self.fallback.aclose()
