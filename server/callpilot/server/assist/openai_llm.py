"""An assistant on any OpenAI-compatible chat-completions endpoint (OpenAI,
vLLM, Ollama, LiteLLM...), through the openai SDK.

One turn (`respond`):

1. The prompt is built from the conversation state (`llm_prompt`): bounded
   in tokens, minimal, with payment data masked.
2. A streamed chat completion is requested with the ToolBox's tools. Content
   deltas become `SuggestionDelta`s as they arrive. Tool-call fragments are
   reassembled (`llm_stream`); when the round ends in tool calls they are run
   through the same `ToolBox` as the local engine (concurrently; yielded in
   the model's order), their results are appended as `tool` messages, and the
   conversation continues. After `max_tool_rounds` rounds the model is asked
   to answer without tools.
3. The answer ends in one `SuggestionCompleted` whose sources are the
   records the tools returned (`llm_prompt.sources_from_tool_calls`).

Failures and time: every await on the provider is bounded. `timeout` is the
SDK's per-request timeout (connect, and each wait for bytes, so a stalled
stream fails too); `turn_timeout` bounds the whole turn, applied around each
await and never across a `yield`, so an expiry can never surface in the
consumer's code. On an error, a timeout, an empty answer or a content-filter
stop, the turn raises `AssistantUnavailable` with a reason a person can read
(the summary likewise). Answering anyway is not this class's business: the
providers wrap it in `assist.fallback.FallbackAssistant`, which tells the
agent why and lets the local engine answer.

Cancellation (newer customer speech made the suggestion stale) is safe at
any await: the HTTP stream is closed by its context manager and running
tool calls are cancelled with the task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar, cast

import openai
from callpilot.v1 import common_pb2, events_pb2
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionToolUnionParam

from ..errors import ConfigError
from .base import Assistant, AssistantUnavailable, AssistOutput, AssistRequest, ConversationState, Turn
from .grounding import ground, grounding_notice
from .llm_prompt import (
    PromptLimits,
    build_messages,
    build_summary_messages,
    sources_from_tool_calls,
    tool_result_text,
)
from .llm_stream import ToolCallAssembler
from .local import is_backchannel
from .tools import ToolBox

__all__ = ["OpenAIAssistant"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class _TurnFailed(Exception):
    """The model answered, but not usably (empty, filtered)."""


class OpenAIAssistant(Assistant):
    """Streamed chat completions with the directory tools.

    api_key / base_url / model: the endpoint (base_url None = api.openai.com;
        e.g. "http://vllm:8000/v1" for a compatible server).
    toolbox: the shared ToolBox; its `specs` are sent as the tools.
    timeout: per-request SDK timeout (seconds without progress).
    turn_timeout: the whole turn, tool rounds included.
    max_prompt_tokens: bound of the first request's prompt (estimated).
    max_output_tokens: sent as `max_completion_tokens` (or `max_tokens` with
        `legacy_max_tokens=True` for servers that only know the old name).
    max_tool_rounds: model rounds that may call tools before it must answer.
    summary_timeout: bound of the end-of-call summary request (the session
        allows 10 s in all, so a fallback has time left).
    max_retries: SDK retries per request; 0 for live turns, because a
        fallback answers sooner than a retry would.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str | None,
        model: str,
        toolbox: ToolBox,
        *,
        timeout: float = 10.0,
        turn_timeout: float = 25.0,
        max_prompt_tokens: int = 3000,
        max_output_tokens: int = 300,
        max_tool_rounds: int = 3,
        temperature: float | None = 0.2,
        summary_timeout: float = 6.0,
        max_retries: int = 0,
        legacy_max_tokens: bool = False,
        client: AsyncOpenAI | None = None,
    ) -> None:
        if not api_key and client is None:
            raise ConfigError(
                "the OpenAI assistant needs an API key",
                hints=["set OPENAI_API_KEY (any non-empty value for servers without auth)"],
            )
        if not model:
            raise ConfigError("the OpenAI assistant needs a model name")
        if timeout <= 0 or turn_timeout <= 0 or max_tool_rounds < 0:
            raise ConfigError("OpenAI assistant timeouts must be positive and max_tool_rounds >= 0")
        self.model = model
        self.limits = PromptLimits(max_prompt_tokens=max_prompt_tokens)
        self._toolbox = toolbox
        self._tools = cast("list[ChatCompletionToolUnionParam]", list(toolbox.specs))
        self._turn_timeout = turn_timeout
        self._summary_timeout = summary_timeout
        self._max_output_tokens = max_output_tokens
        self._max_tool_rounds = max_tool_rounds
        self._temperature = temperature
        self._legacy_max_tokens = legacy_max_tokens
        self._client = client or AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    # ------------------------------------------------------------------ Assistant

    def wants_to_respond(self, turn: Turn, state: ConversationState) -> bool:
        """Customer turns with something to act on (the local engine's backchannel rule)."""
        return turn.role == common_pb2.SPEAKER_ROLE_CUSTOMER and not is_backchannel(turn.text)

    async def respond(self, request: AssistRequest) -> AsyncIterator[AssistOutput]:
        """The model's turn; `AssistantUnavailable` (with the reason) when it fails."""
        deadline = asyncio.get_running_loop().time() + self._turn_timeout
        try:
            async for out in self._model_turn(request, deadline):
                yield out
        except (openai.OpenAIError, TimeoutError, _TurnFailed) as exc:
            raise AssistantUnavailable(_describe(exc, self._turn_timeout)) from exc
        except Exception as exc:  # a malformed stream or a bug: say so; a fallback still answers
            log.exception("model turn failed for call %s", request.state.call_id)
            raise AssistantUnavailable(f"failed (unexpected error {type(exc).__name__})") from exc

    async def summarise(self, state: ConversationState) -> str:
        """Reason, actions, resolution and follow-ups, by the model;
        `AssistantUnavailable` when it fails or answers nothing."""
        try:
            async with asyncio.timeout(self._summary_timeout):
                completion = await self._client.chat.completions.create(
                    model=self.model,
                    messages=cast(
                        "list[ChatCompletionMessageParam]", build_summary_messages(state, self.limits)
                    ),
                    **self._sampling(400),
                )
        except (openai.OpenAIError, TimeoutError) as exc:
            raise AssistantUnavailable(_describe(exc, self._summary_timeout)) from exc
        text = (completion.choices[0].message.content or "").strip() if completion.choices else ""
        if not text:
            raise AssistantUnavailable("returned an empty summary")
        return text

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    # ------------------------------------------------------------------ the turn

    def _sampling(self, max_tokens: int) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_tokens" if self._legacy_max_tokens else "max_completion_tokens": max_tokens
        }
        if self._temperature is not None:
            params["temperature"] = self._temperature
        return params

    async def _model_turn(self, request: AssistRequest, deadline: float) -> AsyncIterator[AssistOutput]:
        suggestion_id = request.suggestion_id
        trigger_segment_id = request.trigger.segment_id if request.trigger else ""
        messages = build_messages(request, self.limits)
        tool_calls: list[events_pb2.ToolCall] = []
        text = ""
        finish: str | None = None
        for round_ in range(self._max_tool_rounds + 1):
            may_call_tools = round_ < self._max_tool_rounds
            stream = await _bounded(deadline, self._open_stream(messages, may_call_tools))
            assembler = ToolCallAssembler(id_prefix=f"call_{round_}")
            round_text: list[str] = []
            async with stream:
                while (chunk := await _bounded(deadline, _next_chunk(stream))) is not None:
                    for choice in chunk.choices:
                        if choice.index != 0:
                            continue
                        delta = choice.delta
                        if delta.content:
                            piece = delta.content
                            if text and not round_text and not text[-1].isspace() and not piece[0].isspace():
                                piece = " " + piece  # a new round continues the same suggestion
                            round_text.append(piece)
                            text += piece
                            yield events_pb2.SuggestionDelta(suggestion_id=suggestion_id, text=piece)
                        if delta.tool_calls:
                            assembler.add(delta.tool_calls)
                        if choice.finish_reason:
                            finish = choice.finish_reason
            if finish == "content_filter":
                raise _TurnFailed("stopped the answer (content filter)")
            calls = assembler.calls()
            if not calls or not may_call_tools:
                break
            messages.append(
                {
                    "role": "assistant",
                    "content": "".join(round_text) or None,
                    "tool_calls": [c.as_message() for c in calls],
                }
            )
            caller = request.state.customer.customer_id if request.state.customer is not None else ""
            runs = [
                self._toolbox.run_json(
                    c.name, c.arguments, trigger_segment_id=trigger_segment_id, caller_customer_id=caller
                )
                for c in calls
            ]
            results = await _bounded(deadline, asyncio.gather(*runs))
            for call, result in zip(calls, results, strict=True):
                tool_calls.append(result)
                yield result
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "content": tool_result_text(result, self.limits.max_tool_result_chars),
                    }
                )
        if not text.strip():
            raise _TurnFailed("returned no suggestion")
        # Facts no tool returned are flagged before the agent can rely on them (assist.grounding).
        checked = ground(text, request.state, tool_calls, request.state.call_date, flag=True)
        if checked.ungrounded:
            text = checked.text
            yield grounding_notice(len(checked.ungrounded))
        yield events_pb2.SuggestionCompleted(
            suggestion_id=suggestion_id,
            text=text,
            sources=sources_from_tool_calls(tool_calls),
            trigger_segment_id=trigger_segment_id,
        )

    async def _open_stream(self, messages: list[dict[str, Any]], may_call_tools: bool) -> Any:
        # Tools stay declared in the last round (the history refers to them);
        # tool_choice "none" asks for the answer.
        return await self._client.chat.completions.create(
            model=self.model,
            messages=cast("list[ChatCompletionMessageParam]", messages),
            stream=True,
            tools=self._tools,
            tool_choice="auto" if may_call_tools else "none",
            **self._sampling(self._max_output_tokens),
        )


async def _next_chunk(stream: Any) -> ChatCompletionChunk | None:
    try:
        chunk: ChatCompletionChunk = await stream.__anext__()
    except StopAsyncIteration:
        return None
    return chunk


async def _bounded(deadline: float, op: Awaitable[T]) -> T:
    """Await `op` by the turn's deadline (raises TimeoutError); never spans a yield."""
    async with asyncio.timeout_at(deadline):
        return await op


def _describe(exc: BaseException, turn_timeout: float) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "did not answer in time"
    if isinstance(exc, TimeoutError):
        return f"did not finish within {turn_timeout:g} s"
    if isinstance(exc, openai.APIStatusError):
        return f"returned an error (HTTP {exc.status_code})"
    if isinstance(exc, openai.APIConnectionError):
        return "could not be reached"
    if isinstance(exc, _TurnFailed):
        return str(exc)
    return f"failed ({type(exc).__name__})"
