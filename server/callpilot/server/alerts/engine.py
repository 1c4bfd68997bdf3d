"""The per-call alert state machine.

Fed every event the call emits (`observe`) and woken when a time-based rule
may be due (`tick`, at `next_due()`), it returns the alerts to emit. Times
are plain seconds on any monotonic clock the caller chooses; the engine
never reads a clock itself, so tests drive it with exact times.

Invariants: each alert fires at most once per trigger (a phrase, a silence,
a tool call, a fall of sentiment); alert ids are "alert-1", "alert-2", ...
in firing order, so they are unique within the call. The engine ignores its
own `alert` events and anything after `call_ended`.
"""

from __future__ import annotations

import itertools

from callpilot.server.alerts.rules import AlertRules, normalize
from callpilot.v1 import common_pb2, events_pb2


class AlertEngine:
    """Alert rules applied to one call."""

    def __init__(self, rules: AlertRules, start: float) -> None:
        self._rules = rules
        self._start = start
        self._count = 0
        self._ended = False
        self._phrases = [(p, normalize(p)) for p in rules.customer_phrases]
        self._phrases_fired: set[str] = set()
        self._required = {p: normalize(p) for p in rules.required_agent_phrases}
        self._required_done: set[str] = set()
        self._last_activity = start
        self._last_segment = ""
        self._silence_fired = False
        self._pending: dict[str, tuple[float, events_pb2.ToolCall]] = {}
        self._pending_fired: set[str] = set()
        self._scores: list[float] = []
        self._scored_segments: set[str] = set()
        self._falling_fired = False

    # ---------------------------------------------------------------- inputs

    def observe(self, event: events_pb2.CallEvent, now: float) -> list[events_pb2.Alert]:
        """The alerts an emitted event fires (time-based rules are checked too)."""
        if self._ended:
            return []
        kind = event.WhichOneof("payload")
        alerts: list[events_pb2.Alert] = []
        if kind == "call_ended":
            self._ended = True
            return []
        if kind == "speech_activity":
            self._activity(now, "")
        elif kind == "transcript" and event.transcript.is_final:
            alerts += self._on_final(event.transcript, now)
        elif kind == "context":
            alerts += self._on_context(event.context)
        elif kind == "tool_call":
            self._on_tool(event.tool_call, now)
        alerts += self.tick(now)
        return alerts

    def tick(self, now: float) -> list[events_pb2.Alert]:
        """The time-based alerts due at `now`."""
        if self._ended:
            return []
        alerts: list[events_pb2.Alert] = []
        r = self._rules
        if r.required_within_s > 0 and now - self._start >= r.required_within_s:
            for phrase in self._required:
                if phrase not in self._required_done:
                    self._required_done.add(phrase)
                    alerts.append(
                        self._alert(
                            events_pb2.ALERT_KIND_REQUIRED_PHRASE_MISSING,
                            f'The agent has not said "{phrase}" within {_seconds(r.required_within_s)}.',
                            phrase=phrase,
                        )
                    )
        if r.silence_s > 0 and not self._silence_fired and now - self._last_activity >= r.silence_s:
            self._silence_fired = True
            alerts.append(
                self._alert(
                    events_pb2.ALERT_KIND_LONG_SILENCE,
                    f"Nobody has spoken for {_seconds(now - self._last_activity)}.",
                    segment_id=self._last_segment,
                )
            )
        if r.pending_tool_s > 0:
            for tool_call_id, (since, tool) in list(self._pending.items()):
                if now - since >= r.pending_tool_s:
                    del self._pending[tool_call_id]
                    self._pending_fired.add(tool_call_id)
                    alerts.append(
                        self._alert(
                            events_pb2.ALERT_KIND_TOOL_CONFIRMATION_PENDING,
                            f"{tool.tool_name} has waited {_seconds(now - since)} for the agent to confirm it.",
                            segment_id=tool.trigger_segment_id,
                            tool_call_id=tool_call_id,
                        )
                    )
        return alerts

    def next_due(self) -> float | None:
        """The earliest time a `tick` could fire something; None when nothing is pending."""
        if self._ended:
            return None
        r = self._rules
        due: list[float] = []
        if r.required_within_s > 0 and len(self._required_done) < len(self._required):
            due.append(self._start + r.required_within_s)
        if r.silence_s > 0 and not self._silence_fired:
            due.append(self._last_activity + r.silence_s)
        if r.pending_tool_s > 0:
            due += [since + r.pending_tool_s for since, _ in self._pending.values()]
        return min(due) if due else None

    # ----------------------------------------------------------------- rules

    def _activity(self, now: float, segment_id: str) -> None:
        self._last_activity = max(self._last_activity, now)
        self._silence_fired = False
        if segment_id:
            self._last_segment = segment_id

    def _on_final(self, segment: events_pb2.TranscriptUpdate, now: float) -> list[events_pb2.Alert]:
        self._activity(now, segment.segment_id)
        text = normalize(segment.text)
        alerts: list[events_pb2.Alert] = []
        if segment.role == common_pb2.SPEAKER_ROLE_CUSTOMER:
            for phrase, folded in self._phrases:
                if phrase not in self._phrases_fired and folded in text:
                    self._phrases_fired.add(phrase)
                    alerts.append(
                        self._alert(
                            events_pb2.ALERT_KIND_CUSTOMER_PHRASE,
                            f'The customer said "{phrase}".',
                            segment_id=segment.segment_id,
                            phrase=phrase,
                        )
                    )
        elif segment.role == common_pb2.SPEAKER_ROLE_AGENT:
            for phrase, folded in self._required.items():
                if folded in text:
                    self._required_done.add(phrase)
        return alerts

    def _on_context(self, context: events_pb2.ContextUpdate) -> list[events_pb2.Alert]:
        turns = self._rules.sentiment_turns
        segment_id = context.segment_id
        # Only a customer turn carries a new score; an update for an agent
        # turn repeats the customer's latest one, so each segment counts once.
        if (
            turns == 0
            or not segment_id
            or segment_id in self._scored_segments
            or context.sentiment == events_pb2.SENTIMENT_UNSPECIFIED
        ):
            return []
        if self._scores and context.sentiment_score == self._scores[-1]:
            return []
        self._scored_segments.add(segment_id)
        if self._scores and context.sentiment_score > self._scores[-1]:
            self._falling_fired = False
        self._scores.append(context.sentiment_score)
        recent = self._scores[-turns:]
        falling = len(recent) == turns and all(a > b for a, b in itertools.pairwise(recent))
        if falling and recent[-1] < 0 and not self._falling_fired:
            self._falling_fired = True
            trend = " → ".join(f"{s:+.2f}" for s in recent)
            return [
                self._alert(
                    events_pb2.ALERT_KIND_SENTIMENT_FALLING,
                    f"The customer's sentiment fell over {turns} turns ({trend}).",
                    segment_id=segment_id,
                )
            ]
        return []

    def _on_tool(self, tool: events_pb2.ToolCall, now: float) -> None:
        if tool.status == events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION:
            if tool.tool_call_id not in self._pending_fired and tool.tool_call_id not in self._pending:
                self._pending[tool.tool_call_id] = (now, tool)
        else:
            self._pending.pop(tool.tool_call_id, None)

    def _alert(self, kind: events_pb2.AlertKind.ValueType, reason: str, **fields: str) -> events_pb2.Alert:
        self._count += 1
        return events_pb2.Alert(alert_id=f"alert-{self._count}", kind=kind, reason=reason, **fields)


def _seconds(value: float) -> str:
    whole = round(value)
    if whole < 120:
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60:02d} s"
