"""Utterances from providers that stream partial and finalised results.

Cloud recognisers (Deepgram today; AssemblyAI, Speechmatics and the like work
the same way) send interim hypotheses that replace each other and *finalised
parts* that do not change any more; an utterance ends on the provider's
end-of-speech signal. `UtteranceAssembler` turns that into the event order the
locally endpointed engines produce (see `streaming`), so the session handles
every engine alike. The provider's protocol code only maps its messages onto
`speech_started`, `interim`, `final_part` and `end`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from callpilot.server.stt.base import SpeechEvent, SpeechEventKind
from callpilot.server.stt.queue import EventQueue

_EPS = 1e-3  # seconds: the weight floor of a zero-length part


@dataclass(slots=True)
class Part:
    """A stretch of recognised text on the stream's timeline (seconds)."""

    text: str
    confidence: float
    start: float
    end: float


class UtteranceAssembler:
    """Provider results (interim hypotheses and finalised parts) → utterance events.

    Invariants: utterances are numbered from 0 in order; each one is
    START_OF_SPEECH, INTERIM*, END_OF_SPEECH, FINAL with exactly one FINAL per
    END (empty text when no words were heard); an INTERIM carries the whole
    utterance so far (finalised parts + the current hypothesis), because the
    session replaces a segment's interim text rather than appending to it.
    """

    def __init__(self, out: EventQueue) -> None:
        self._out = out
        self.utterance = 0
        self.open = False
        self.parts: list[Part] = []
        self.latest: Part | None = None  # the current interim hypothesis, not yet final
        self.start = 0.0
        self.last_end = 0.0

    async def _begin(self, start: float, input_time: float) -> None:
        if self.open:
            return
        self.open = True
        self.start = start
        self.last_end = start
        await self._out.put(
            SpeechEvent(
                SpeechEventKind.START_OF_SPEECH, self.utterance, start=start, end=start, input_time=input_time
            )
        )

    async def speech_started(self, at: float, input_time: float) -> None:
        await self._begin(at, input_time)

    async def interim(self, part: Part, input_time: float) -> None:
        if not part.text:
            return
        await self._begin(part.start, input_time)
        self.latest = part
        self.last_end = max(self.last_end, part.end)
        text = " ".join([p.text for p in self.parts] + [part.text])
        self._out.put_interim(
            SpeechEvent(
                SpeechEventKind.INTERIM,
                self.utterance,
                text=text,
                confidence=part.confidence,
                start=self.start,
                end=part.end,
                input_time=input_time,
            )
        )

    async def final_part(self, part: Part, input_time: float) -> None:
        if not part.text:
            return
        await self._begin(part.start, input_time)
        self.parts.append(part)
        self.latest = None
        self.last_end = max(self.last_end, part.end)
        # Show the finalised part at once: it will not change any more.
        self._out.put_interim(
            SpeechEvent(
                SpeechEventKind.INTERIM,
                self.utterance,
                text=" ".join(p.text for p in self.parts),
                confidence=part.confidence,
                start=self.start,
                end=part.end,
                input_time=input_time,
            )
        )

    def promote_interim(self) -> float | None:
        """Take the current interim hypothesis as a final part (a flush that
        got no answer); returns the end offset it covers."""
        part, self.latest = self.latest, None
        if part is None or not self.open:
            return None
        self.parts.append(part)
        return part.end

    async def end(self, at: float | None, input_time: float) -> None:
        """Close the open utterance: END_OF_SPEECH, then its one FINAL.

        The order and the "exactly one FINAL per END, empty when no words
        were heard" rule are the embedded engines' (see `stt.streaming`), so
        the session handles every engine alike.
        """
        if not self.open:
            return
        now = time.time()
        end = self.parts[-1].end if self.parts else (at if at is not None else self.last_end)
        end = max(end, self.start)
        weights = [max(p.end - p.start, _EPS) for p in self.parts]
        total = sum(weights)
        weighted = sum(p.confidence * w for p, w in zip(self.parts, weights, strict=True))
        start = min(self.parts[0].start, self.start) if self.parts else self.start
        await self._out.put(
            SpeechEvent(
                SpeechEventKind.END_OF_SPEECH,
                self.utterance,
                start=start,
                end=end,
                input_time=input_time,
                speech_end_time=now,
            )
        )
        await self._out.put(
            SpeechEvent(
                SpeechEventKind.FINAL,
                self.utterance,
                text=" ".join(p.text for p in self.parts),
                confidence=weighted / total if total else 0.0,
                start=start,
                end=end,
                input_time=input_time,
                speech_end_time=now,
            )
        )
        self.utterance += 1
        self.open = False
        self.parts = []
        self.latest = None
