"""Reassembling tool calls from a streamed chat completion.

In a streamed chat completion a tool call arrives in pieces: the first
`delta.tool_calls[]` entry of a call carries its `index`, `id`,
`function.name` and usually an empty `arguments`; later entries with the
same `index` carry only fragments of the `arguments` JSON string, which can
split anywhere (inside a key, a string, an escape). Several calls of one
turn have different indexes and their fragments may interleave. Only the
concatenation of all fragments is JSON, so nothing is parsed until the
stream has finished.

OpenAI-compatible servers differ in details, which the assembler absorbs:
some repeat the id or the full name in every entry (ignored when equal),
some stream the name in pieces (appended), some omit the id (one is made up
so the tool message can refer to it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["AssembledToolCall", "ToolCallAssembler"]


class _FunctionDelta(Protocol):
    @property
    def name(self) -> str | None: ...

    @property
    def arguments(self) -> str | None: ...


class ToolCallDelta(Protocol):
    """The shape of `openai.types.chat.chat_completion_chunk.ChoiceDeltaToolCall`."""

    @property
    def index(self) -> int: ...

    @property
    def id(self) -> str | None: ...

    @property
    def function(self) -> _FunctionDelta | None: ...


@dataclass(slots=True)
class AssembledToolCall:
    index: int
    id: str = ""
    name: str = ""
    _arguments: list[str] = field(default_factory=list)

    @property
    def arguments(self) -> str:
        """The arguments JSON as the model wrote it (possibly invalid; the ToolBox says so)."""
        return "".join(self._arguments) or "{}"

    def as_message(self) -> dict[str, Any]:
        """The entry of the assistant message's `tool_calls` that replays this call."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class ToolCallAssembler:
    """Feed it every chunk's `delta.tool_calls`; read `calls()` at the end."""

    def __init__(self, id_prefix: str = "call") -> None:
        self._calls: dict[int, AssembledToolCall] = {}
        self._id_prefix = id_prefix

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, deltas: Iterable[ToolCallDelta]) -> None:
        for d in deltas:
            call = self._calls.get(d.index)
            if call is None:
                call = self._calls[d.index] = AssembledToolCall(index=d.index)
            if d.id and not call.id:
                call.id = d.id
            fn = d.function
            if fn is None:
                continue
            if fn.name and fn.name != call.name:
                call.name += fn.name
            if fn.arguments:
                call._arguments.append(fn.arguments)

    def calls(self) -> list[AssembledToolCall]:
        """Calls in index order, each with an id."""
        out = [self._calls[i] for i in sorted(self._calls)]
        for call in out:
            if not call.id:
                call.id = f"{self._id_prefix}_{call.index}"
        return out
