"""The assistant provider interface.

An assistant receives a finished customer turn (or a "suggest now" request)
with the conversation state and streams back what it did and suggests: tool
call records, suggestion deltas and one completed suggestion. The outputs are
the contract's own messages so nothing is translated twice; the session wraps
them into sequenced `CallEvent`s.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from callpilot.v1 import events_pb2

from ..context.state import ConversationState, Turn

__all__ = [
    "TOOL_NAMES",
    "AssistOutput",
    "AssistRequest",
    "Assistant",
    "AssistantUnavailable",
    "ConversationState",
    "Turn",
]


@dataclass(frozen=True, slots=True)
class AssistRequest:
    """Why a suggestion is wanted now."""

    suggestion_id: str
    state: ConversationState
    # The customer turn that triggered it; None for "suggest now".
    trigger: Turn | None = None
    # The agent's question for "suggest now", if any.
    query: str = ""


# A Notice tells the agent something about this turn (e.g. "the language model
# timed out; this suggestion comes from the built-in assistant"); the session
# stores it as a durable `notice` event.
AssistOutput = (
    events_pb2.ToolCall | events_pb2.SuggestionDelta | events_pb2.SuggestionCompleted | events_pb2.Notice
)


class AssistantUnavailable(Exception):
    """The assistant cannot answer this turn (or summary) now.

    `reason` completes a sentence about the assistant ("did not answer in
    time", "returned an error (HTTP 503)"); `assist.fallback` puts it in the
    notice that tells the agent why another assistant answered.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Assistant(ABC):
    """Decides which tools to run and what to suggest."""

    @abstractmethod
    def wants_to_respond(self, turn: Turn, state: ConversationState) -> bool:
        """False for backchannels ("uh-huh", "okay") and agent turns."""

    @abstractmethod
    def respond(self, request: AssistRequest) -> AsyncIterator[AssistOutput]:
        """Tool calls first, then deltas, then exactly one SuggestionCompleted
        (with `suggestion_id` = request.suggestion_id). Cancellation (the task
        being cancelled) must be safe at any await."""

    async def summarise(self, state: ConversationState) -> str:
        """End-of-call summary; empty when the engine has none. May raise
        `AssistantUnavailable` when it cannot make one now."""
        return ""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""


TOOL_NAMES: Sequence[str] = ("lookup_customer", "get_order_details", "check_policy", "search_knowledge")
