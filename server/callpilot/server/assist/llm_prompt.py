"""Prompts for language-model assistants, built from the conversation state.

Why a module of its own: what goes to a third-party model is a privacy and
cost boundary, so it is decided in one place and tested on its own.

* **Bounded.** Each request fits `max_prompt_tokens`, estimated at four
  characters a token (a tokenizer-free estimate that is conservative for
  English; the model's real count is lower). The fixed parts (instructions,
  customer, topics, entities, earlier suggestions, the task) are capped one
  by one; the transcript gets what is left, newest turns first, and says how
  many older turns it left out.
* **Minimal.** The customer is named by id, name, tier and status only;
  contact details stay on our side (the tools can fetch them if needed).
* **No payment data.** Transcript text reaching the state is already
  redacted (`[CARD_NUMBER]`, `[CVV]`, `[CARD_EXPIRY]`); as a last line of
  defence every string is scanned once more and any Luhn-valid 13-19 digit
  number is masked before it can leave the process.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from callpilot.v1 import common_pb2, events_pb2

from ..redaction import CARD_NUMBER, luhn_valid
from .base import AssistRequest, ConversationState, Turn
from .tools import result_dict

__all__ = [
    "SUMMARY_INSTRUCTIONS",
    "SYSTEM_PROMPT",
    "PromptLimits",
    "build_messages",
    "build_summary_messages",
    "estimate_tokens",
    "extractive_summary",
    "guard_card_numbers",
    "sources_from_tool_calls",
    "tool_result_text",
]

SYSTEM_PROMPT = """\
You are Callpilot, a real-time assistant for a contact-center agent who is on a live call.
You read the call transcript and the call context, and you suggest the agent's next step.

How to answer:
- Write what the agent should say or do next: one to three short sentences the agent can read aloud \
or act on. No greeting, no preamble, no lists unless several steps are needed.
- Ground every fact (order status, dates, amounts, policy terms, article steps) in a tool result. \
Call the tools you need first, then answer; never invent records, numbers or policy terms.
- If a lookup fails or is ambiguous, suggest the question the agent should ask the customer.
- Payment card data is masked as [CARD_NUMBER], [CVV] or [CARD_EXPIRY]. Never ask for it to be \
repeated, spelled out or written down, and never include card data in a suggestion.
- Do not repeat a suggestion already given unless the situation changed."""

SUMMARY_INSTRUCTIONS = """\
Summarise this contact-center call for the CRM record. Use exactly these four labelled lines:
Reason for contact: ...
Actions: ...
Resolution: ...
Follow-ups: ...
Be factual and brief; use only what the transcript and context show; write "none" where nothing applies. \
Payment card data is masked; never reconstruct it."""

_CARD_RUN_RE = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")
_ROLE_NAMES: dict[int, str] = {
    common_pb2.SPEAKER_ROLE_CUSTOMER: "Customer",
    common_pb2.SPEAKER_ROLE_AGENT: "Agent",
}
_MESSAGE_OVERHEAD = 4  # tokens per chat message (role, separators)


@dataclass(frozen=True, slots=True)
class PromptLimits:
    """Caps on what one request may carry."""

    max_prompt_tokens: int = 3000
    max_turn_chars: int = 800
    max_suggestions: int = 3
    max_suggestion_chars: int = 300
    max_entities: int = 20
    max_tool_result_chars: int = 6000

    def __post_init__(self) -> None:
        if self.max_prompt_tokens < 400:
            raise ValueError("max_prompt_tokens must be at least 400 (the instructions alone take ~250)")


def estimate_tokens(text: str) -> int:
    """About four characters a token."""
    return math.ceil(len(text) / 4)


def messages_tokens(messages: Iterable[dict[str, Any]]) -> int:
    """Estimated prompt tokens of a chat request's messages."""
    total = 0
    for m in messages:
        content = m.get("content")
        total += _MESSAGE_OVERHEAD + estimate_tokens(content if isinstance(content, str) else "")
        for call in m.get("tool_calls") or ():
            total += estimate_tokens(str(call.get("function", {}).get("arguments", ""))) + _MESSAGE_OVERHEAD
    return total


def guard_card_numbers(text: str) -> str:
    """Mask any Luhn-valid 13-19 digit number (spaces and dashes allowed)."""

    def mask(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        return CARD_NUMBER if 13 <= len(digits) <= 19 and luhn_valid(digits) else m.group(0)

    return _CARD_RUN_RE.sub(mask, text)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _role(role: int) -> str:
    return _ROLE_NAMES.get(role, "Speaker")


def _enum_label(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).lower().replace("_", " ")


def _context_lines(state: ConversationState, limits: PromptLimits) -> list[str]:
    lines: list[str] = []
    c = state.customer
    if c is not None and c.customer_id:
        extra = ", ".join(x for x in (f"tier {c.tier}" if c.tier else "", c.status) if x)
        lines.append(
            f"Customer: {c.name or 'name unknown'} ({c.customer_id}){', ' + extra if extra else ''}."
        )
    else:
        lines.append("Customer: not identified yet.")
    if state.topics:
        topics = [_enum_label(events_pb2.Topic.Name(t), "TOPIC_") for t in state.topics]
        lines.append("Topics so far: " + ", ".join(topics) + ".")
    if state.entities:
        shown = state.entities[-limits.max_entities :]
        items = [
            f"{_enum_label(events_pb2.EntityType.Name(e.type), 'ENTITY_TYPE_')} {_clip(e.value, 80)}"
            for e in shown
        ]
        lines.append("Mentioned: " + "; ".join(items) + ".")
    if state.sentiment != events_pb2.SENTIMENT_UNSPECIFIED:
        mood = _enum_label(events_pb2.Sentiment.Name(state.sentiment), "SENTIMENT_")
        lines.append(f"Customer sentiment (latest): {mood}.")
    if state.suggestions:
        lines.append("Already suggested to the agent (do not repeat):")
        for s in state.suggestions[-limits.max_suggestions :]:
            lines.append(f"- {_clip(s, limits.max_suggestion_chars)}")
    return lines


def _task(request: AssistRequest, limits: PromptLimits) -> str:
    if request.query:
        return f'The agent asks: "{_clip(request.query, limits.max_turn_chars)}". Answer for the agent.'
    if request.trigger is not None:
        said = _clip(request.trigger.text, limits.max_turn_chars)
        return (
            f'The {_role(request.trigger.role).lower()} just said: "{said}". Suggest the agent\'s next step.'
        )
    return "Suggest the agent's next step now."


def _transcript(turns: Sequence[Turn], budget_tokens: int, limits: PromptLimits) -> list[str]:
    """Newest turns that fit `budget_tokens`, oldest first, with a note of what was left out."""
    kept: list[str] = []
    used = 0
    for turn in reversed(turns):
        line = f"{_role(turn.role)}: {_clip(turn.text, limits.max_turn_chars)}"
        cost = estimate_tokens(line) + 1
        if used + cost > budget_tokens:
            break
        kept.append(line)
        used += cost
    kept.reverse()
    omitted = len(turns) - len(kept)
    if omitted:
        kept.insert(0, f"({omitted} earlier turn{'s' if omitted > 1 else ''} omitted)")
    return kept


def _fit(system: str, header: list[str], task: str, turns: Sequence[Turn], limits: PromptLimits) -> str:
    fixed = "\n".join([*header, "", "Transcript (oldest first):", "", task])
    budget = (
        limits.max_prompt_tokens - 2 * _MESSAGE_OVERHEAD - estimate_tokens(system) - estimate_tokens(fixed)
    )
    if budget < 0:  # an oversized header: keep its first lines
        while header and budget < 0:
            budget += estimate_tokens(header.pop()) + 1
    transcript = _transcript(turns, max(budget - 8, 0), limits)
    parts = [
        "Call context:",
        *header,
        "",
        "Transcript (oldest first):",
        *(transcript or ["(nothing said yet)"]),
    ]
    return guard_card_numbers("\n".join([*parts, "", task]))


def build_messages(request: AssistRequest, limits: PromptLimits | None = None) -> list[dict[str, Any]]:
    """System + one user message (context, transcript, task), within the token budget."""
    limits = limits or PromptLimits()
    state = request.state
    turns = list(state.turns)
    # The trigger is quoted in the task; do not spend tokens on it twice.
    if request.trigger is not None and turns and turns[-1].segment_id == request.trigger.segment_id:
        turns.pop()
    user = _fit(SYSTEM_PROMPT, _context_lines(state, limits), _task(request, limits), turns, limits)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def build_summary_messages(
    state: ConversationState, limits: PromptLimits | None = None
) -> list[dict[str, Any]]:
    limits = limits or PromptLimits()
    task = "Write the summary now."
    user = _fit(SUMMARY_INSTRUCTIONS, _context_lines(state, limits), task, state.turns, limits)
    return [{"role": "system", "content": SUMMARY_INSTRUCTIONS}, {"role": "user", "content": user}]


def tool_result_text(call: events_pb2.ToolCall, limit: int) -> str:
    """What the model reads back from a tool: the result JSON, or the error in words."""
    if call.status in (
        events_pb2.TOOL_CALL_STATUS_SUCCEEDED,
        events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION,
    ):
        # A proposed write tool reads back as awaiting the agent's confirmation.
        text = json.dumps(result_dict(call), ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps({"error": call.error or "the tool failed"}, ensure_ascii=False)
    if len(text) > limit:
        text = text[:limit] + "…(truncated)"
    return guard_card_numbers(text)


def sources_from_tool_calls(calls: Iterable[events_pb2.ToolCall]) -> list[events_pb2.Source]:
    """The records a turn's tools returned, once each, in order: the customer
    found, the order read, the policy checked, the articles retrieved.

    Ids follow the local engine's: customer id, order number, policy type as
    the tool argument ("return"), article id.
    """
    out: list[events_pb2.Source] = []

    def add(source: events_pb2.Source) -> None:
        if source.id and not any(s.kind == source.kind and s.id == source.id for s in out):
            out.append(source)

    for call in calls:
        if call.status != events_pb2.TOOL_CALL_STATUS_SUCCEEDED:
            continue
        result = result_dict(call)
        if call.tool_name == "lookup_customer":
            customer = result.get("customer") or {}
            add(
                events_pb2.Source(
                    kind=events_pb2.SOURCE_KIND_CUSTOMER,
                    id=str(customer.get("customer_id", "")),
                    title=str(customer.get("name", "")),
                )
            )
        elif call.tool_name == "get_order_details":
            number = str((result.get("order") or {}).get("order_number", ""))
            add(events_pb2.Source(kind=events_pb2.SOURCE_KIND_ORDER, id=number, title=f"Order {number}"))
        elif call.tool_name == "check_policy":
            policy = result.get("policy") or {}
            kind = (
                call.arguments.fields["policy_type"].string_value.lower()
                if call.HasField("arguments")
                else ""
            )
            title = str(policy.get("title", "")) or f"{kind.title()} policy"
            add(events_pb2.Source(kind=events_pb2.SOURCE_KIND_POLICY, id=kind, title=title))
        elif call.tool_name == "search_knowledge":
            for hit in result.get("hits") or []:
                article = str(hit.get("article_id", ""))
                title = str(hit.get("title", ""))
                add(events_pb2.Source(kind=events_pb2.SOURCE_KIND_ARTICLE, id=article, title=title))
    return out


def extractive_summary(state: ConversationState) -> str:
    """A summary from the state alone, for when the model is unavailable and
    no fallback assistant is configured."""
    customer_turns = [t.text for t in state.turns if t.role == common_pb2.SPEAKER_ROLE_CUSTOMER]
    agent_turns = [t.text for t in state.turns if t.role == common_pb2.SPEAKER_ROLE_AGENT]
    topics = ", ".join(_enum_label(events_pb2.Topic.Name(t), "TOPIC_") for t in state.topics)
    reason = topics or (_clip(customer_turns[0], 160) if customer_turns else "not stated")
    actions = "; ".join(_clip(s, 160) for s in state.suggestions[-2:]) or "none recorded"
    resolution = _clip(agent_turns[-1], 200) if agent_turns else "none recorded"
    return guard_card_numbers(
        f"Reason for contact: {reason}\nActions: {actions}\nResolution: {resolution}\nFollow-ups: none recorded"
    )
