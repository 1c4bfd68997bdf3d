"""The conversation state of one call: what the context engine keeps and the
assistants read.

It lives with the context engine because the engine is its only writer (the
session appends the suggestions it published); assistants treat it as
read-only. Text in it is already redacted. Directory records in it
(customer, orders, tickets, candidates) are what the directory returned, so
an assistant may show them, but a suggestion states facts from the tool
results it cites (see `assist.grounding`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from callpilot.v1 import common_pb2, directory_pb2, events_pb2

__all__ = ["ConversationState", "Turn"]


@dataclass(frozen=True, slots=True)
class Turn:
    """A final, already redacted utterance."""

    segment_id: str
    role: common_pb2.SpeakerRole.ValueType
    text: str


def _today() -> date:
    return datetime.now(UTC).date()


@dataclass(slots=True)
class ConversationState:
    """What the assistant may read about the call. Text here is redacted.

    Invariants: `customer` is set only on a sure identification (an exact
    identifier, or a name corroborated by something else); unsure matches go
    to `candidates` and are never used as the customer. `orders`/`tickets`
    belong to `customer`. `order` belongs to `customer` when one is known.
    """

    call_id: str
    customer: directory_pb2.Customer | None = None
    topics: list[events_pb2.Topic.ValueType] = field(default_factory=list)
    entities: list[events_pb2.Entity] = field(default_factory=list)
    sentiment: events_pb2.Sentiment.ValueType = events_pb2.SENTIMENT_UNSPECIFIED
    turns: list[Turn] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    # Why `customer` was taken, in words.
    identified_by: str = ""
    # The customer's recent orders (newest first) and open tickets, loaded once identified.
    orders: list[directory_pb2.Order] = field(default_factory=list)
    tickets: list[directory_pb2.Ticket] = field(default_factory=list)
    # Who the caller may be, unconfirmed; best first.
    candidates: list[events_pb2.CustomerCandidate] = field(default_factory=list)
    # The order the call is about, once resolved; and near misses to confirm.
    order: directory_pb2.Order | None = None
    order_candidates: list[events_pb2.OrderCandidate] = field(default_factory=list)
    # The call's date: relative dates ("22 days since delivery") are counted from it.
    call_date: date = field(default_factory=_today)
