"""The alert rules as a pure state machine: events and times in, alerts out."""

from __future__ import annotations

import asyncio

import pytest
from callpilot.server.alerts import AlertEngine, AlertRules
from callpilot.server.alerts.stage import AlertStage
from callpilot.server.errors import ConfigError
from callpilot.v1 import common_pb2, events_pb2

CUSTOMER = common_pb2.SPEAKER_ROLE_CUSTOMER
AGENT = common_pb2.SPEAKER_ROLE_AGENT
QUIET = AlertRules(required_agent_phrases=(), silence_s=0, pending_tool_s=0)


def final(segment_id: str, role: common_pb2.SpeakerRole.ValueType, text: str) -> events_pb2.CallEvent:
    return events_pb2.CallEvent(
        transcript=events_pb2.TranscriptUpdate(segment_id=segment_id, role=role, text=text, is_final=True)
    )


def context(segment_id: str, score: float) -> events_pb2.CallEvent:
    sentiment = events_pb2.SENTIMENT_NEGATIVE if score < 0 else events_pb2.SENTIMENT_NEUTRAL
    return events_pb2.CallEvent(
        context=events_pb2.ContextUpdate(segment_id=segment_id, sentiment=sentiment, sentiment_score=score)
    )


def tool(tool_call_id: str, status: events_pb2.ToolCallStatus.ValueType) -> events_pb2.CallEvent:
    return events_pb2.CallEvent(
        tool_call=events_pb2.ToolCall(
            tool_call_id=tool_call_id, tool_name="create_ticket", status=status, trigger_segment_id="s-3"
        )
    )


def test_customer_phrase_fires_once_with_its_segment_and_whole_words_only() -> None:
    engine = AlertEngine(QUIET, start=0.0)
    assert engine.observe(final("s-1", CUSTOMER, "I will pursue your offer"), 1.0) == []
    alerts = engine.observe(final("s-2", CUSTOMER, "I want to SPEAK to a manager, now!"), 2.0)
    assert [(a.kind, a.segment_id, a.phrase, a.alert_id) for a in alerts] == [
        (events_pb2.ALERT_KIND_CUSTOMER_PHRASE, "s-2", "speak to a manager", "alert-1")
    ]
    assert "speak to a manager" in alerts[0].reason
    assert engine.observe(final("s-3", CUSTOMER, "speak to a manager please"), 3.0) == []
    # The agent saying it is not the customer asking for it.
    assert engine.observe(final("s-4", AGENT, "I can't cancel my account for you"), 4.0) == []
    assert [a.phrase for a in engine.observe(final("s-5", CUSTOMER, "Cancel my account."), 5.0)] == [
        "cancel my account"
    ]


def test_sentiment_falling_over_consecutive_customer_turns_then_rearms_after_a_rise() -> None:
    engine = AlertEngine(QUIET, start=0.0)
    assert engine.observe(context("s-1", 0.4), 1) == []
    assert engine.observe(context("s-2", 0.1), 2) == []
    # Agent turn: the same score repeated under another segment is not a turn.
    assert engine.observe(context("s-3", 0.1), 3) == []
    # Falling three turns but still positive: no alert.
    assert engine.observe(context("s-4", 0.05), 4) == []
    alerts = engine.observe(context("s-5", -0.3), 5)
    assert [(a.kind, a.segment_id) for a in alerts] == [(events_pb2.ALERT_KIND_SENTIMENT_FALLING, "s-5")]
    assert engine.observe(context("s-6", -0.6), 6) == []  # same fall: once
    assert engine.observe(context("s-7", -0.2), 7) == []  # a rise re-arms
    assert engine.observe(context("s-8", -0.4), 8) == []
    assert len(engine.observe(context("s-9", -0.7), 9)) == 1


def test_required_agent_phrase_missing_fires_at_its_deadline_unless_said() -> None:
    rules = AlertRules(
        customer_phrases=(),
        silence_s=0,
        pending_tool_s=0,
        required_agent_phrases=("this call is recorded",),
        required_within_s=60,
    )
    said = AlertEngine(rules, start=100.0)
    said.observe(final("s-1", AGENT, "Hello, this call is recorded for quality."), 110.0)
    assert said.tick(500.0) == []

    missed = AlertEngine(rules, start=100.0)
    missed.observe(final("s-1", AGENT, "Hello, how can I help?"), 110.0)
    assert missed.next_due() == 160.0
    assert missed.tick(159.0) == []
    alerts = missed.tick(160.0)
    assert [(a.kind, a.phrase) for a in alerts] == [
        (events_pb2.ALERT_KIND_REQUIRED_PHRASE_MISSING, "this call is recorded")
    ]
    assert missed.tick(1000.0) == [] and missed.next_due() is None


def test_long_silence_fires_once_per_silence_with_the_last_segment() -> None:
    rules = AlertRules(customer_phrases=(), required_agent_phrases=(), pending_tool_s=0, silence_s=20)
    engine = AlertEngine(rules, start=0.0)
    engine.observe(final("s-1", CUSTOMER, "hello"), 5.0)
    assert engine.next_due() == 25.0
    assert engine.tick(24.9) == []
    alerts = engine.tick(30.0)
    assert [(a.kind, a.segment_id) for a in alerts] == [(events_pb2.ALERT_KIND_LONG_SILENCE, "s-1")]
    assert engine.tick(90.0) == []
    engine.observe(events_pb2.CallEvent(speech_activity=events_pb2.SpeechActivity(role=AGENT)), 100.0)
    assert len(engine.tick(121.0)) == 1


def test_pending_write_tool_fires_unless_decided_in_time() -> None:
    rules = AlertRules(customer_phrases=(), required_agent_phrases=(), silence_s=0, pending_tool_s=45)
    engine = AlertEngine(rules, start=0.0)
    engine.observe(tool("t-1", events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION), 10.0)
    engine.observe(tool("t-2", events_pb2.TOOL_CALL_STATUS_PENDING_CONFIRMATION), 20.0)
    engine.observe(tool("t-1", events_pb2.TOOL_CALL_STATUS_SUCCEEDED), 30.0)
    assert engine.next_due() == 65.0
    alerts = engine.tick(65.0)
    assert [(a.kind, a.tool_call_id, a.segment_id) for a in alerts] == [
        (events_pb2.ALERT_KIND_TOOL_CONFIRMATION_PENDING, "t-2", "s-3")
    ]
    assert "create_ticket" in alerts[0].reason
    assert engine.tick(500.0) == []


def test_nothing_fires_after_the_call_ended() -> None:
    engine = AlertEngine(AlertRules(silence_s=1), start=0.0)
    engine.observe(events_pb2.CallEvent(call_ended=events_pb2.CallEnded()), 0.5)
    assert engine.tick(1000.0) == [] and engine.next_due() is None
    assert engine.observe(final("s-1", CUSTOMER, "speak to a manager"), 1001.0) == []


def test_rules_from_env_and_their_errors() -> None:
    rules = AlertRules.from_env(
        {
            "CALLPILOT_ALERT_CUSTOMER_PHRASES": "refund now| chargeback |",
            "CALLPILOT_ALERT_REQUIRED_AGENT_PHRASES": "",
            "CALLPILOT_ALERT_SILENCE_S": "12.5",
            "CALLPILOT_ALERT_SENTIMENT_TURNS": "4",
        }
    )
    assert rules.customer_phrases == ("refund now", "chargeback")
    assert rules.required_agent_phrases == ()
    assert rules.silence_s == 12.5 and rules.sentiment_turns == 4
    assert rules.pending_tool_s == AlertRules().pending_tool_s
    with pytest.raises(ConfigError, match="CALLPILOT_ALERT_SILENCE_S"):
        AlertRules.from_env({"CALLPILOT_ALERT_SILENCE_S": "soon"})
    with pytest.raises(ConfigError, match="sentiment_turns"):
        AlertRules(sentiment_turns=1)


async def test_the_stage_emits_time_based_alerts_from_its_timer_and_stops_at_the_end() -> None:
    emitted: list[events_pb2.Alert] = []
    fired = asyncio.Event()

    async def emit(alert: events_pb2.Alert) -> None:
        emitted.append(alert)
        fired.set()

    rules = AlertRules(customer_phrases=("speak to a manager",), required_agent_phrases=(), silence_s=0.2)
    stage = AlertStage(rules, emit)
    try:
        now = stage.observe(final("s-1", CUSTOMER, "Let me speak to a manager"))
        assert [a.kind for a in now] == [events_pb2.ALERT_KIND_CUSTOMER_PHRASE]
        await asyncio.wait_for(fired.wait(), 10)
        assert [(a.kind, a.segment_id) for a in emitted] == [(events_pb2.ALERT_KIND_LONG_SILENCE, "s-1")]
        assert stage.observe(events_pb2.CallEvent(alert=now[0])) == []
        stage.observe(events_pb2.CallEvent(call_ended=events_pb2.CallEnded()))
    finally:
        await stage.close()
    assert len(emitted) == 1
