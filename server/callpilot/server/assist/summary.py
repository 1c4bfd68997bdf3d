"""The one extractive end-of-call summary.

Used by the local engine (its `summarise`) and by the LLM engine when the
model cannot write one and no fallback assistant is configured, so a CRM
record has the same shape whichever engine ran. Lines, in order:

    Customer: <name> (<id>).  | Customer: not identified.
    Reason for contact: <topics> — "<first customer sentence>".
    Actions: looked up <records>.  | Actions: none recorded.
    Resolution: <the agent's sentences that name a remedy>  | (else the last suggestion's first sentence)
    Follow-ups: <the agent's sentences that commit to something>
    Customer sentiment at the end: <label>.   (when known)

Extractive on purpose: every line is made of what was said or looked up,
never of words the summary made up. Card data is masked once more before
the text leaves (the transcript is already redacted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from callpilot.v1 import common_pb2, directory_pb2, events_pb2

from ..context.backchannel import is_backchannel
from ..context.state import ConversationState
from ..redaction import guard_card_numbers

__all__ = ["extractive_summary", "first_sentence", "sentences_of"]

_CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
_RESOLUTION_RE = re.compile(
    r"\b(?:refund\w*|replac\w*|return label|exchange|cancel\w*|credit\w*|reship\w*|send (?:you )?a new|fixed|resolved)\b",
    re.IGNORECASE,
)
_FOLLOW_UP_RE = re.compile(
    r"\b(?:i'll|i will|we'll|we will|you'll (?:get|receive)|you will (?:get|receive)|follow(?:ing)? up|"
    r"call you back|email you|send you)\b",
    re.IGNORECASE,
)


def first_sentence(text: str, limit: int = 220) -> str:
    """The first sentence of `text`, cut at a word within `limit` characters."""
    m = re.match(r"(.+?[.!?])(?:\s|$)", text.strip(), re.DOTALL)
    sentence = (m.group(1) if m else text.strip()).replace("\n", " ")
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rsplit(" ", 1)[0] + "…"


def sentences_of(text: str) -> list[str]:
    """`text` split into sentences, each ending in . ! or ?"""
    found = (m.strip() for m in re.findall(r"[^.!?]+[.!?]*", text))
    return [f if f[-1] in ".!?" else f + "." for f in found if f]


def _mentioned(entities: Iterable[events_pb2.Entity]) -> list[str]:
    names = {
        events_pb2.ENTITY_TYPE_ORDER_NUMBER: "order",
        events_pb2.ENTITY_TYPE_EMAIL: "email",
        events_pb2.ENTITY_TYPE_PHONE_NUMBER: "phone",
    }
    return [f"{names[e.type]} {e.value}" for e in entities if e.type in names]


def extractive_summary(
    state: ConversationState,
    *,
    customer: directory_pb2.Customer | None = None,
    looked_up: Sequence[str] = (),
) -> str:
    """The summary from the state; `customer` and `looked_up` add what an
    assistant's tools established that the state does not hold."""
    lines: list[str] = []
    c = state.customer or customer
    lines.append(f"Customer: {c.name} ({c.customer_id})." if c is not None else "Customer: not identified.")

    topics = [events_pb2.Topic.Name(t).removeprefix("TOPIC_").lower() for t in state.topics]
    reason = next((t.text for t in state.turns if t.role == _CUSTOMER and not is_backchannel(t.text)), "")
    parts = []
    if topics:
        parts.append(", ".join(topics))
    if reason:
        parts.append(f"\u201c{first_sentence(reason, 160)}\u201d")
    lines.append("Reason for contact: " + (" — ".join(parts) if parts else "not stated") + ".")

    records = list(looked_up) or _mentioned(state.entities)
    lines.append("Actions: " + ("looked up " + "; ".join(records) + "." if records else "none recorded."))

    # The agent's own sentences that commit to something (future tense) are
    # follow-ups; the others that name a remedy are the resolution.
    agent_sentences = [s for t in state.turns if t.role != _CUSTOMER for s in sentences_of(t.text)]
    follow_ups = list(dict.fromkeys(x for x in agent_sentences if _FOLLOW_UP_RE.search(x)))
    resolution = [
        x for x in dict.fromkeys(agent_sentences) if _RESOLUTION_RE.search(x) and x not in follow_ups
    ]
    if not resolution and state.suggestions:
        resolution = [first_sentence(state.suggestions[-1], 200)]
    lines.append("Resolution: " + (" ".join(resolution[-3:]) if resolution else "none recorded."))
    lines.append("Follow-ups: " + (" ".join(follow_ups[-3:]) if follow_ups else "none recorded."))
    if state.sentiment != events_pb2.SENTIMENT_UNSPECIFIED:
        mood = events_pb2.Sentiment.Name(state.sentiment).removeprefix("SENTIMENT_").lower()
        lines.append(f"Customer sentiment at the end: {mood}.")
    return guard_card_numbers("\n".join(lines))
