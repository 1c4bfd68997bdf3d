"""The speech-to-text provider interface.

Every STT engine (embedded Whisper, Deepgram, OpenAI, the null engine used by
benchmarks) implements this one interface, so choosing an engine is
configuration. The shape follows the push/iterate stream model: the session
pushes 16 kHz mono float32 audio for one speaker into a stream and iterates
`SpeechEvent`s out of it; the stream owns endpointing and interim pacing.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
"""Every stream receives audio at this rate, mono, float32 in [-1, 1]."""

AudioArray = npt.NDArray[np.float32]


class SpeechEventKind(enum.Enum):
    START_OF_SPEECH = "start_of_speech"
    INTERIM = "interim"
    FINAL = "final"
    END_OF_SPEECH = "end_of_speech"
    # The stream switched to another engine (a fallback after a failure);
    # `text` says why. The session turns it into an STT_DEGRADED notice.
    DEGRADED = "degraded"


@dataclass(frozen=True, slots=True)
class SpeechEvent:
    """One recogniser output for one utterance of one speaker.

    `utterance` numbers the utterances of a stream from 0; interim and final
    events of the same utterance share it, which is how the session maps them
    onto one transcript segment id. Offsets are seconds from the first sample
    pushed into the stream. Wall-clock times (`time.time()`) are carried so the
    latency of each stage can be read off the events.
    """

    kind: SpeechEventKind
    utterance: int
    text: str = ""
    confidence: float = 0.0
    start: float = 0.0
    end: float = 0.0
    # When the audio that completed this hypothesis was pushed (wall clock).
    input_time: float = 0.0
    # For FINAL / END_OF_SPEECH: when the end of speech was detected (wall clock).
    speech_end_time: float = 0.0
    created: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class STTCapabilities:
    streaming: bool
    interim_results: bool


class STTError(Exception):
    """A provider failure; `retryable` tells the caller whether to try again."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class STTStream(ABC):
    """Recognition of one speaker's audio for the length of a call."""

    @abstractmethod
    async def push_audio(self, pcm: AudioArray) -> None:
        """Queue 16 kHz mono float32 samples. Must not block on decoding."""

    @abstractmethod
    async def flush(self) -> None:
        """Force the open utterance (if any) to a FINAL now."""

    @abstractmethod
    def end_input(self) -> None:
        """No more audio will come: finalise what is open, then end iteration."""

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[SpeechEvent]:
        """Events in order; ends after `end_input` once every final is out."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop at once, dropping anything not yet decoded (used on errors only)."""

    def update_context(self, *, names: Sequence[str] = (), numbers: Sequence[str] = ()) -> None:  # noqa: B027
        """Call context to bias recognition: the identified customer's name(s) and order numbers.

        The session calls it when the customer is identified (and again when
        what it knows changes); each call replaces the previous context. Only
        directory facts a caller may say aloud belong here, never card data.
        Engines that cannot use hints keep this default: ignore it.
        """

    def unfinalised_audio(self) -> tuple[float, AudioArray | None]:
        """Audio pushed but not yet covered by a FINAL, and its offset in the stream.

        Whoever takes over a failed stream (the fallback engine) replays it so
        that the words spoken during an outage are still transcribed. Streams
        that finalise everything before failing keep this default: nothing.
        """
        return 0.0, None


class STTEngine(ABC):
    """A factory of streams that share one model or connection pool."""

    capabilities: STTCapabilities

    @abstractmethod
    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> STTStream:
        """Open a stream for one speaker."""

    async def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Load models / open pools before the first call (called at start-up)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release models, pools and connections."""
