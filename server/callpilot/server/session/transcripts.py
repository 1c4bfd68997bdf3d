"""From recogniser output and text turns to redacted transcript events.

Segment ids are `seg-NNNN`, numbered per call in order of first appearance;
interim and final hypotheses of one utterance of one speaker share one id.
A re-attached call continues after the highest id already stored, so ids
stay unique for the whole call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from callpilot.server.redaction import Redactor, safe_redact
from callpilot.server.stt.base import SpeechEvent, SpeechEventKind
from callpilot.v1 import common_pb2, events_pb2
from google.protobuf import duration_pb2, timestamp_pb2

ROLE_NAMES = {common_pb2.SPEAKER_ROLE_CUSTOMER: "customer", common_pb2.SPEAKER_ROLE_AGENT: "agent"}
_SEGMENT_RE = re.compile(r"^seg-(\d+)$")

Role: TypeAlias = common_pb2.SpeakerRole.ValueType


def ts(wall: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(wall * 1e9))
    return stamp


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(max(seconds, 0.0) * 1e9))
    return d


def last_segment_number(segments: list[events_pb2.TranscriptUpdate]) -> int:
    """The highest `seg-NNNN` number among stored segments (0 if none)."""
    best = 0
    for segment in segments:
        match = _SEGMENT_RE.match(segment.segment_id)
        if match:
            best = max(best, int(match.group(1)))
    return best


@dataclass(frozen=True, slots=True)
class TranscriptOut:
    """A transcript event to emit: durable iff final."""

    update: events_pb2.TranscriptUpdate
    timings: events_pb2.EventTimings

    @property
    def is_final(self) -> bool:
        return self.update.is_final


class Transcripts:
    """Segment numbering and redaction for one call (no I/O)."""

    def __init__(self, *, first_segment: int = 1) -> None:
        self._redactor = Redactor()
        self._next = first_segment
        self._segments: dict[tuple[Role, int], str] = {}

    def _new_segment(self) -> str:
        seg = f"seg-{self._next:04d}"
        self._next += 1
        return seg

    def segment_id(self, role: Role, utterance: int) -> str:
        key = (role, utterance)
        seg = self._segments.get(key)
        if seg is None:
            seg = self._segments[key] = self._new_segment()
        return seg

    def text_turn(self, role: Role, text: str, received: float) -> TranscriptOut:
        """A typed (or externally transcribed) turn: final at once, confidence 1."""
        redacted = safe_redact(self._redactor, text, role=role, is_final=True)
        update = events_pb2.TranscriptUpdate(
            segment_id=self._new_segment(), role=role, text=redacted, is_final=True, confidence=1.0
        )
        return TranscriptOut(update, events_pb2.EventTimings(input_time=ts(received)))

    def speech(self, role: Role, sev: SpeechEvent) -> TranscriptOut | None:
        """An interim or final hypothesis; None when nothing is left after redaction."""
        assert sev.kind in (SpeechEventKind.INTERIM, SpeechEventKind.FINAL)
        segment_id = self.segment_id(role, sev.utterance)
        is_final = sev.kind is SpeechEventKind.FINAL
        text = safe_redact(self._redactor, sev.text, role=role, is_final=is_final).strip()
        if not text:
            return None
        update = events_pb2.TranscriptUpdate(
            segment_id=segment_id,
            role=role,
            text=text,
            is_final=is_final,
            confidence=sev.confidence,
            start_offset=dur(sev.start),
            end_offset=dur(sev.end),
        )
        timings = events_pb2.EventTimings()
        if sev.input_time:
            timings.input_time.CopyFrom(ts(sev.input_time))
        if is_final and sev.speech_end_time:
            timings.speech_end_time.CopyFrom(ts(sev.speech_end_time))
        return TranscriptOut(update, timings)


def speech_activity(role: Role, sev: SpeechEvent) -> events_pb2.SpeechActivity:
    started = sev.kind is SpeechEventKind.START_OF_SPEECH
    return events_pb2.SpeechActivity(
        role=role,
        kind=events_pb2.SPEECH_ACTIVITY_KIND_STARTED if started else events_pb2.SPEECH_ACTIVITY_KIND_ENDED,
        offset=dur(sev.start if started else sev.end),
    )
