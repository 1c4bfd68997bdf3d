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
from callpilot.server.stt.streaming import Hypothesis, SegmentingOptions, SegmentingStream
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
        self.segmenting = SegmentingOptions(
            vad or VadOptions(), interim_interval, max_pending_finals, max_events
        )
        self.text = text

    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> NullStream:
        return NullStream(self)

    async def warm_up(self) -> None:
        await asyncio.to_thread(load_silero_session)


class NullStream(SegmentingStream):
    def __init__(self, engine: NullEngine) -> None:
        super().__init__(engine.segmenting)
        self._text = engine.text

    async def _decode(self, audio: AudioArray, *, final: bool) -> Hypothesis | None:
        return Hypothesis(self._text, 1.0)
