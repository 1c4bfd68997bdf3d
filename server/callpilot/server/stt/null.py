"""An engine with real endpointing and no recogniser, for benchmarks and pipeline tests.

It runs the same Silero VAD and event pacing as the Whisper engine, so a
benchmark with it measures everything in the pipeline except decoding:
START/END_OF_SPEECH when the VAD says so, an INTERIM every
`interim_interval` seconds of open speech, and a FINAL with fixed text for
every utterance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from callpilot.server.stt.base import AudioArray, STTCapabilities, STTEngine
from callpilot.server.stt.streaming import Hypothesis, SegmentingStream
from callpilot.server.stt.vad import VadOptions, load_silero_session

NULL_TEXT = "(speech)"


class NullEngine(STTEngine):
    """Endpointing only; every utterance is transcribed as `text`."""

    capabilities = STTCapabilities(streaming=True, interim_results=True)

    def __init__(
        self,
        *,
        interim_interval: float | None = 0.7,
        vad: VadOptions | None = None,
        text: str = NULL_TEXT,
        max_pending_finals: int = 4,
        max_events: int = 64,
    ) -> None:
        self.interim_interval = interim_interval
        self.vad = vad if vad is not None else VadOptions()
        self.text = text
        self.max_pending_finals = max_pending_finals
        self.max_events = max_events

    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> NullStream:
        return NullStream(self)

    async def warm_up(self) -> None:
        await asyncio.to_thread(load_silero_session)


class NullStream(SegmentingStream):
    def __init__(self, engine: NullEngine) -> None:
        super().__init__(
            vad=engine.vad,
            vad_session=load_silero_session(),
            interim_interval=engine.interim_interval,
            max_pending_finals=engine.max_pending_finals,
            max_events=engine.max_events,
        )
        self._text = engine.text

    async def _decode(self, audio: AudioArray, *, final: bool) -> Hypothesis | None:
        return Hypothesis(self._text, 1.0)
