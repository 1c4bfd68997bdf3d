"""Analytics over stored calls: the figures behind `InsightsService.GetInsights`.

Figures are computed in Python from a few narrow, tenant-scoped queries over
the calls created in the range, so percentiles and "distinct suggestions per
feedback kind" are computed the same way on SQLite and PostgreSQL (SQLite
has no percentile function). That is bounded on purpose: a range may span at
most MAX_RANGE, hold at most MAX_BUCKETS buckets and MAX_CALLS calls, else
the request is refused with INVALID_ARGUMENT naming the field to change.

Definitions (docs/supervisor.md has the same list):
- a call belongs to the bucket of its `create_time`; start inclusive, end exclusive;
- handle time = end_time - create_time of ended calls; percentiles by nearest rank;
- shown = suggestions completed (superseded ones too); used/dismissed/rated =
  distinct suggestions with at least one such feedback; mean rating over
  every RATED feedback;
- tools: every recorded tool call by name, failures = status FAILED;
- topics: distinct topics of the call's latest context;
- end sentiment: sentiment of the latest context (UNSPECIFIED when none), so
  the sentiment counts of a bucket add up to its calls;
- alerts: `alert` events by kind.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from callpilot.server.errors import InvalidArgument, Violation
from callpilot.server.store import convert, schema
from callpilot.server.store.base import StoreBase
from callpilot.v1 import assist_service_pb2, events_pb2, insights_service_pb2
from google.protobuf import duration_pb2
from sqlalchemy import Select, and_, func, select

MAX_RANGE = timedelta(days=366)
MIN_BUCKET = timedelta(minutes=1)
MAX_BUCKETS = 1000
MAX_CALLS = 50_000


@dataclass
class CallFacts:
    """What the figures need of one call."""

    create_time: datetime
    end_time: datetime | None = None
    suggestions: int = 0
    feedback: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    ratings: list[int] = field(default_factory=list)
    tools: Counter[tuple[str, bool]] = field(default_factory=Counter)
    topics: set[int] = field(default_factory=set)
    end_sentiment: int = events_pb2.SENTIMENT_UNSPECIFIED
    alerts: Counter[int] = field(default_factory=Counter)


def check_range(start: datetime, end: datetime, bucket: timedelta | None) -> timedelta:
    """The bucket width to use; InvalidArgument for a range the API refuses."""
    if end <= start:
        raise InvalidArgument(Violation("end_time", "must be after start_time", "OUT_OF_RANGE"))
    if end - start > MAX_RANGE:
        raise InvalidArgument(
            Violation("end_time", f"the range may span at most {MAX_RANGE.days} days", "OUT_OF_RANGE")
        )
    width = bucket if bucket is not None else end - start
    if width < MIN_BUCKET:
        raise InvalidArgument(Violation("bucket", "must be at least one minute (or unset)", "OUT_OF_RANGE"))
    if math.ceil((end - start) / width) > MAX_BUCKETS:
        raise InvalidArgument(
            Violation("bucket", f"gives more than {MAX_BUCKETS} buckets: widen it", "OUT_OF_RANGE")
        )
    return width


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values` (the smallest value with p% at or below it)."""
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


def _duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromTimedelta(timedelta(seconds=seconds))
    return out


def figures(calls: Iterable[CallFacts]) -> insights_service_pb2.InsightsFigures:
    """The figures of a set of calls."""
    out = insights_service_pb2.InsightsFigures()
    handle: list[float] = []
    used = dismissed = rated = 0
    ratings: list[int] = []
    tools: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    topics: Counter[int] = Counter()
    sentiments: Counter[int] = Counter()
    alerts: Counter[int] = Counter()
    for call in calls:
        out.calls += 1
        if call.end_time is not None:
            handle.append((call.end_time - call.create_time).total_seconds())
        out.suggestions.shown += call.suggestions
        used += len(call.feedback[assist_service_pb2.FEEDBACK_KIND_USED])
        dismissed += len(call.feedback[assist_service_pb2.FEEDBACK_KIND_DISMISSED])
        rated += len(call.feedback[assist_service_pb2.FEEDBACK_KIND_RATED])
        ratings += call.ratings
        for (name, failed), count in call.tools.items():
            tools[name][0] += count
            tools[name][1] += count if failed else 0
        topics.update(call.topics)
        sentiments[call.end_sentiment] += 1
        alerts.update(call.alerts)
    out.ended_calls = len(handle)
    if handle:
        handle.sort()
        out.handle_time_p50.CopyFrom(_duration(percentile(handle, 50)))
        out.handle_time_p90.CopyFrom(_duration(percentile(handle, 90)))
    out.suggestions.used, out.suggestions.dismissed, out.suggestions.rated = used, dismissed, rated
    out.suggestions.mean_rating = sum(ratings) / len(ratings) if ratings else 0.0
    for name in sorted(tools):
        out.tools.add(tool_name=name, calls=tools[name][0], failures=tools[name][1])
    for topic in sorted(topics):
        out.topics.add(topic=topic, calls=topics[topic])
    for sentiment in sorted(sentiments):
        out.end_sentiments.add(sentiment=sentiment, calls=sentiments[sentiment])
    for kind in sorted(alerts):
        out.alerts.add(kind=kind, alerts=alerts[kind])
    return out


def bucketed(
    calls: Iterable[CallFacts], start: datetime, end: datetime, width: timedelta
) -> insights_service_pb2.GetInsightsResponse:
    """Total and per-bucket figures; every bucket of the range is present, empty or not."""
    calls = list(calls)
    count = math.ceil((end - start) / width)
    members: list[list[CallFacts]] = [[] for _ in range(count)]
    for call in calls:
        members[min(int((call.create_time - start) / width), count - 1)].append(call)
    response = insights_service_pb2.GetInsightsResponse(total=figures(calls))
    for i, group in enumerate(members):
        bucket = response.buckets.add(figures=figures(group))
        bucket.start_time.CopyFrom(convert.to_timestamp(start + i * width))
        bucket.end_time.CopyFrom(convert.to_timestamp(min(start + (i + 1) * width, end)))
    return response


class InsightsQueries(StoreBase):
    """Reads the facts of the tenant's calls in a range."""

    async def insights(
        self, start: datetime, end: datetime, bucket: timedelta | None = None
    ) -> insights_service_pb2.GetInsightsResponse:
        """Figures of the calls created in [start, end), in total and per bucket."""
        width = check_range(start, end, bucket)
        c = schema.calls.c
        in_range = and_(c.tenant_id == self._tenant, c.create_time >= start, c.create_time < end)

        def of_calls(stmt: Select[Any], table_tenant: Any, table_call: Any) -> Select[Any]:
            return stmt.join(schema.calls, and_(c.tenant_id == table_tenant, c.call_id == table_call)).where(
                in_range
            )

        async with self._read() as conn:
            total = (await conn.execute(select(func.count()).where(in_range))).scalar_one()
            if total > MAX_CALLS:
                raise InvalidArgument(
                    Violation(
                        "end_time",
                        f"the range holds {total} calls, more than {MAX_CALLS}: narrow it",
                        "OUT_OF_RANGE",
                    )
                )
            facts = {
                row.call_id: CallFacts(create_time=row.create_time, end_time=row.end_time)
                for row in (await conn.execute(select(c.call_id, c.create_time, c.end_time).where(in_range)))
            }
            if not facts:
                return bucketed([], start, end, width)
            s = schema.suggestions.c
            for call_id, n in await conn.execute(
                of_calls(select(s.call_id, func.count()), s.tenant_id, s.call_id).group_by(s.call_id)
            ):
                facts[call_id].suggestions = n
            f = schema.suggestion_feedback.c
            for call_id, suggestion_id, kind, rating in await conn.execute(
                of_calls(select(f.call_id, f.suggestion_id, f.kind, f.rating), f.tenant_id, f.call_id)
            ):
                facts[call_id].feedback[kind].add(suggestion_id)
                if kind == assist_service_pb2.FEEDBACK_KIND_RATED:
                    facts[call_id].ratings.append(rating)
            t = schema.tool_calls.c
            failed = int(events_pb2.TOOL_CALL_STATUS_FAILED)
            for call_id, name, status, n in await conn.execute(
                of_calls(
                    select(t.call_id, t.tool_name, t.status, func.count()), t.tenant_id, t.call_id
                ).group_by(t.call_id, t.tool_name, t.status)
            ):
                facts[call_id].tools[(name, status == failed)] += n
            x = schema.call_contexts.c
            for call_id, blob in await conn.execute(
                of_calls(select(x.call_id, x.data), x.tenant_id, x.call_id)
            ):
                context = events_pb2.ContextUpdate.FromString(blob)
                facts[call_id].topics.update(int(topic) for topic in context.topics)
                facts[call_id].end_sentiment = int(context.sentiment)
            e = schema.call_events.c
            for call_id, blob in await conn.execute(
                of_calls(select(e.call_id, e.data), e.tenant_id, e.call_id).where(e.kind == "alert")
            ):
                facts[call_id].alerts[int(events_pb2.CallEvent.FromString(blob).alert.kind)] += 1
        return bucketed(facts.values(), start, end, width)
