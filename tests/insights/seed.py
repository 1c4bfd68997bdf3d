"""A seeded set of stored calls and an independent computation of their figures.

`seed_calls` writes calls through the store's own API (create_call,
append_event, record_feedback), exactly as live calls are stored. `expected`
recomputes the figures from the plain spec with different means than
store/insights.py (numpy's inverted-CDF percentile, counting over the spec
lists), so a shared mistake is unlikely.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from callpilot.server.store import Store
from callpilot.v1 import assist_service_pb2, call_pb2, events_pb2
from google.protobuf import timestamp_pb2

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
TOOLS = ("get_order_details", "search_knowledge", "create_ticket")
TOPICS = (events_pb2.TOPIC_REFUND, events_pb2.TOPIC_SHIPPING, events_pb2.TOPIC_BILLING)
SENTIMENTS = (events_pb2.SENTIMENT_NEGATIVE, events_pb2.SENTIMENT_NEUTRAL, events_pb2.SENTIMENT_POSITIVE)
ALERTS = (events_pb2.ALERT_KIND_CUSTOMER_PHRASE, events_pb2.ALERT_KIND_SENTIMENT_FALLING)


@dataclass
class CallSpec:
    call_id: str
    created: datetime
    handle_s: int | None  # None: still active
    suggestions: int
    feedback: list[tuple[int, int, int]] = field(default_factory=list)  # (suggestion no, kind, rating)
    tools: list[tuple[str, bool]] = field(default_factory=list)  # (name, failed)
    topics: list[int] = field(default_factory=list)
    sentiment: int = events_pb2.SENTIMENT_UNSPECIFIED  # at the end; UNSPECIFIED: no context
    alerts: list[int] = field(default_factory=list)


def make_specs(count: int = 14, seed: int = 7) -> list[CallSpec]:
    """Calls spread over three hours, one of them still active and one without context."""
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        spec = CallSpec(
            call_id=f"ins-{i:02d}",
            created=START + timedelta(minutes=rng.randrange(0, 180)),
            handle_s=None if i == 3 else rng.randrange(60, 1200),
            suggestions=rng.randrange(0, 4),
        )
        for n in range(spec.suggestions):
            for kind in rng.sample(
                [
                    assist_service_pb2.FEEDBACK_KIND_USED,
                    assist_service_pb2.FEEDBACK_KIND_DISMISSED,
                    assist_service_pb2.FEEDBACK_KIND_RATED,
                ],
                rng.randrange(0, 3),
            ):
                rating = rng.randrange(1, 6) if kind == assist_service_pb2.FEEDBACK_KIND_RATED else 0
                spec.feedback.append((n, kind, rating))
        # The same feedback twice must count the suggestion once.
        if spec.feedback and i % 4 == 0:
            spec.feedback.append(spec.feedback[0])
        spec.tools = [(rng.choice(TOOLS), rng.random() < 0.3) for _ in range(rng.randrange(0, 4))]
        if i != 5:
            spec.topics = rng.sample(TOPICS, rng.randrange(0, 3))
            spec.sentiment = rng.choice(SENTIMENTS)
        spec.alerts = [rng.choice(ALERTS) for _ in range(rng.randrange(0, 3))]
        specs.append(spec)
    return specs


def timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


async def seed_calls(store: Store, specs: list[CallSpec]) -> None:
    for spec in specs:
        await store.create_call(
            call_pb2.Call(
                call_id=spec.call_id, state=call_pb2.CALL_STATE_ACTIVE, create_time=timestamp(spec.created)
            )
        )
        when = spec.created + timedelta(seconds=5)
        payloads: list[dict[str, Any]] = []
        for n in range(spec.suggestions):
            payloads.append(
                {
                    "suggestion_completed": events_pb2.SuggestionCompleted(
                        suggestion_id=f"s{n}", text="Refund."
                    )
                }
            )
        for n, (name, failed) in enumerate(spec.tools):
            status = events_pb2.TOOL_CALL_STATUS_FAILED if failed else events_pb2.TOOL_CALL_STATUS_SUCCEEDED
            payloads.append(
                {"tool_call": events_pb2.ToolCall(tool_call_id=f"t{n}", tool_name=name, status=status)}
            )
        if spec.sentiment != events_pb2.SENTIMENT_UNSPECIFIED:
            # An earlier context first: only the latest one counts.
            payloads.append({"context": events_pb2.ContextUpdate(sentiment=events_pb2.SENTIMENT_POSITIVE)})
            payloads.append(
                {
                    "context": events_pb2.ContextUpdate(
                        sentiment=spec.sentiment, topics=spec.topics, segment_id="x"
                    )
                }
            )
        for n, kind in enumerate(spec.alerts):
            payloads.append(
                {"alert": events_pb2.Alert(alert_id=f"alert-{n + 1}", kind=kind, reason="seeded")}
            )
        for seq, payload in enumerate(payloads, start=1):
            await store.append_event(
                events_pb2.CallEvent(
                    call_id=spec.call_id, sequence=seq, durable=True, time=timestamp(when), **payload
                )
            )
        if spec.handle_s is not None:
            await store.append_event(
                events_pb2.CallEvent(
                    call_id=spec.call_id,
                    sequence=len(payloads) + 1,
                    durable=True,
                    time=timestamp(spec.created + timedelta(seconds=spec.handle_s)),
                    call_ended=events_pb2.CallEnded(reason=call_pb2.CALL_END_REASON_CLIENT_ENDED),
                )
            )
        for n, kind, rating in spec.feedback:
            await store.record_feedback(
                spec.call_id,
                assist_service_pb2.SuggestionFeedback(suggestion_id=f"s{n}", kind=kind, rating=rating),
            )


def expected(specs: list[CallSpec], start: datetime, end: datetime) -> dict[str, Any]:
    """The figures of the specs created in [start, end), as plain Python values."""
    chosen = [s for s in specs if start <= s.created < end]
    handle = [s.handle_s for s in chosen if s.handle_s is not None]

    def distinct(kind: int) -> int:
        return len({(s.call_id, n) for s in chosen for n, k, _ in s.feedback if k == kind})

    ratings = [r for s in chosen for _, k, r in s.feedback if k == assist_service_pb2.FEEDBACK_KIND_RATED]
    tools: dict[str, tuple[int, int]] = {}
    for name in sorted({n for s in chosen for n, _ in s.tools}):
        uses = [failed for s in chosen for n, failed in s.tools if n == name]
        tools[name] = (len(uses), sum(uses))
    return {
        "calls": len(chosen),
        "ended_calls": len(handle),
        "p50_s": float(np.percentile(handle, 50, method="inverted_cdf")) if handle else 0.0,
        "p90_s": float(np.percentile(handle, 90, method="inverted_cdf")) if handle else 0.0,
        "shown": sum(s.suggestions for s in chosen),
        "used": distinct(assist_service_pb2.FEEDBACK_KIND_USED),
        "dismissed": distinct(assist_service_pb2.FEEDBACK_KIND_DISMISSED),
        "rated": distinct(assist_service_pb2.FEEDBACK_KIND_RATED),
        "mean_rating": sum(ratings) / len(ratings) if ratings else 0.0,
        "tools": tools,
        "topics": dict(Counter(t for s in chosen for t in s.topics)),
        "sentiments": dict(Counter(s.sentiment for s in chosen)),
        "alerts": dict(Counter(a for s in chosen for a in s.alerts)),
    }


def as_plain(figures: Any) -> dict[str, Any]:
    """An InsightsFigures message as the same plain values `expected` returns."""
    return {
        "calls": figures.calls,
        "ended_calls": figures.ended_calls,
        "p50_s": figures.handle_time_p50.ToTimedelta().total_seconds(),
        "p90_s": figures.handle_time_p90.ToTimedelta().total_seconds(),
        "shown": figures.suggestions.shown,
        "used": figures.suggestions.used,
        "dismissed": figures.suggestions.dismissed,
        "rated": figures.suggestions.rated,
        "mean_rating": figures.suggestions.mean_rating,
        "tools": {t.tool_name: (t.calls, t.failures) for t in figures.tools},
        "topics": {t.topic: t.calls for t in figures.topics},
        "sentiments": {s.sentiment: s.calls for s in figures.end_sentiments},
        "alerts": {a.kind: a.alerts for a in figures.alerts},
    }
