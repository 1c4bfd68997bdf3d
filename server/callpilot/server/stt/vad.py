"""Streaming endpointing: where utterances start and end, from Silero VAD.

Whisper decodes whole utterances, so the stream has to decide, while audio
is still arriving, when someone started talking and when they finished. The
Silero VAD v6 ONNX model that faster-whisper ships answers "is this 32 ms
speech?"; `Endpointer` turns those answers into utterances with hysteresis,
padding and a length cap so no single decode grows past what Whisper (and
the latency budget) can take.

Facts about the model (read from its ONNX signature and from how
faster-whisper feeds it): input "input" is float32 [windows, 576], each row
the 64 samples preceding a 512-sample window followed by the window, at
16 kHz; "h" and "c" are float32 [1, 1, 128] LSTM states threaded from call to
call; rows of one call are processed in order with the state carried across
them, so a batch of windows equals feeding them one by one. Output
"speech_probs" has one probability per row.

Cost, measured on the 2-core dev box: ~0.07 ms per window with one intra-op
thread; with the Python around it, ~55 µs per 20 ms push, i.e. under 3 ms of
CPU per second of audio per stream. That is cheap enough to run on the event
loop inside `push_audio`.
"""

from __future__ import annotations

import functools
import math
import os
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime
from callpilot.server.stt.base import SAMPLE_RATE, AudioArray

WINDOW = 512
"""Samples per VAD decision (32 ms at 16 kHz); the v6 model only takes this size at 16 kHz."""
CONTEXT = 64
"""Samples of the previous window prepended to each window, as the model was exported to expect."""
_STATE_SHAPE = (1, 1, 128)

EndReason = Literal["silence", "max_length", "flush", "end_of_input"]


@dataclass(frozen=True, slots=True)
class VadOptions:
    """Endpointing tunables.

    threshold: probability at or above which a window is speech.
    neg_threshold: below it a window is silence; between the two the previous
        state holds (hysteresis stops a syllable's tail flapping the state).
        None means `threshold - 0.15`, as Silero recommends.
    min_speech_ms: voiced time needed before START_OF_SPEECH, so a click or
        a cough does not open an utterance.
    min_silence_ms: trailing silence that ends an utterance; the main
        latency/fragmentation trade-off (shorter finals sooner vs. phrases
        split at breaths).
    speech_pad_ms: audio kept after the last speech window (Whisper likes a
        little tail); also the pause after which a speculative final can start.
    onset_pad_ms: audio kept before the first speech window. Larger than the
        tail pad because Silero fires late on soft onsets ("He was..." on a
        LibriVox recording starts ~250 ms before the first speech window), and
        a clipped first phoneme turns "ill-disposed" into "old supposed";
        None means `speech_pad_ms`.
    max_utterance_s: longest utterance handed to the decoder. Before
        exceeding it the utterance is cut at its best pause (the longest of
        at least `min_pause_ms`, preferring the later half); when the speaker
        never paused, it is cut at the least speech-like window of its last
        second (most likely a word boundary), never past the limit.
    min_pause_ms: shortest silence considered a cut point for long speech.
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_ms: int = 200
    min_silence_ms: int = 500
    speech_pad_ms: int = 200
    max_utterance_s: float = 15.0
    min_pause_ms: int = 60
    onset_pad_ms: int | None = 400

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"VAD threshold must be between 0 and 1, got {self.threshold}")
        if self.neg_threshold is not None and not 0.0 <= self.neg_threshold <= self.threshold:
            raise ValueError(f"VAD neg_threshold must be between 0 and threshold, got {self.neg_threshold}")
        for name in ("min_speech_ms", "min_silence_ms", "speech_pad_ms", "min_pause_ms", "onset_pad_ms"):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"VAD {name} must not be negative")
        if self.min_silence_ms < WINDOW * 1000 // SAMPLE_RATE:
            raise ValueError("VAD min_silence_ms must be at least one 32 ms window")
        if not 1.0 <= self.max_utterance_s <= 30.0:
            raise ValueError(
                f"VAD max_utterance_s must be between 1 and 30 (Whisper's window), got {self.max_utterance_s}"
            )

    @property
    def effective_neg_threshold(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else max(self.threshold - 0.15, 0.01)


def silero_model_path() -> str:
    """The Silero VAD v6 model bundled with faster-whisper."""
    from faster_whisper.utils import get_assets_path

    return os.path.join(get_assets_path(), "silero_vad_v6.onnx")


@functools.cache
def load_silero_session() -> Any:
    """One shared, single-threaded ONNX session; `run` is stateless and thread-safe, state lives per stream.

    One thread because each call is a few windows: thread fan-out would cost
    more than it saves and would steal cores from Whisper.
    """
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 3
    return onnxruntime.InferenceSession(
        silero_model_path(), sess_options=opts, providers=["CPUExecutionProvider"]
    )


class SileroVad:
    """Stateful speech probabilities over a stream, one per complete 512-sample window.

    Samples that do not fill a window are held until the next call, so the
    caller can push any chunk size.
    """

    def __init__(self, session: Any | None = None) -> None:
        self._session = session if session is not None else load_silero_session()
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._rest: AudioArray = np.zeros(0, dtype=np.float32)
        self.windows = 0
        """Windows scored so far; window k covers samples [k*512, (k+1)*512)."""

    def __call__(self, pcm: AudioArray) -> npt.NDArray[np.float32]:
        data = np.concatenate((self._rest, pcm)) if self._rest.size else pcm
        n = data.size // WINDOW
        if n == 0:
            self._rest = data.copy()
            return np.zeros(0, dtype=np.float32)
        windows = data[: n * WINDOW].reshape(n, WINDOW)
        self._rest = data[n * WINDOW :].copy()
        rows = np.empty((n, CONTEXT + WINDOW), dtype=np.float32)
        rows[:, CONTEXT:] = windows
        rows[0, :CONTEXT] = self._context
        rows[1:, :CONTEXT] = windows[:-1, -CONTEXT:]
        self._context = windows[-1, -CONTEXT:].copy()
        probs, self._h, self._c = self._session.run(None, {"input": rows, "h": self._h, "c": self._c})
        self.windows += n
        return np.asarray(probs, dtype=np.float32).reshape(-1)


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """An utterance opened; `start` is its first sample (speech onset minus padding)."""

    start: int


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """An utterance closed. `audio` is samples [start, end); `speech_end` is where voice stopped."""

    start: int
    end: int
    speech_end: int
    audio: AudioArray
    reason: EndReason


VadEvent = SpeechStart | SpeechEnd


class _AudioBuffer:
    """Samples [start, end) of the stream kept as a chunk list, joined only when read.

    Appending 20 ms chunks by `np.concatenate` would copy the whole open
    utterance on every push; the list makes a push O(chunk) and a read O(utterance).
    """

    def __init__(self) -> None:
        self._chunks: list[AudioArray] = []
        self.start = 0
        self.end = 0

    def append(self, pcm: AudioArray) -> None:
        if pcm.size:
            self._chunks.append(pcm)
            self.end += pcm.size

    def read(self, a: int, b: int) -> AudioArray:
        a, b = max(a, self.start), min(b, self.end)
        if b <= a:
            return np.zeros(0, dtype=np.float32)
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0][a - self.start : b - self.start]

    def discard_before(self, idx: int) -> None:
        idx = min(idx, self.end)
        while self._chunks and self.start + self._chunks[0].size <= idx:
            self.start += self._chunks.pop(0).size
        if self._chunks and idx > self.start:
            self._chunks[0] = self._chunks[0][idx - self.start :]
            self.start = idx
        if not self._chunks:
            self.start = self.end


class Endpointer:
    """Cuts one speaker's 16 kHz stream into utterances; pure CPU, no I/O, not thread-safe.

    `push` returns the events the new audio caused, in order. Sample indices
    count from the first sample pushed. The endpointer holds the audio of the
    open utterance (plus `onset_pad_ms` of look-behind while silent), so a
    caller can read it for interim hypotheses with `open_audio`.
    """

    _SILENT, _PENDING, _SPEECH = 0, 1, 2

    def __init__(self, options: VadOptions | None = None, *, session: Any | None = None) -> None:
        self.options = options = options if options is not None else VadOptions()
        self._vad = SileroVad(session)
        self._buf = _AudioBuffer()
        ms = SAMPLE_RATE // 1000
        self._thr = options.threshold
        self._neg = options.effective_neg_threshold
        self._min_speech = options.min_speech_ms * ms
        self._min_silence = options.min_silence_ms * ms
        self._pad = options.speech_pad_ms * ms
        onset_pad = options.onset_pad_ms if options.onset_pad_ms is not None else options.speech_pad_ms
        self._lead = onset_pad * ms
        self._max_len = int(options.max_utterance_s * SAMPLE_RATE)
        self._min_pause = max(options.min_pause_ms * ms, 1)
        self._state = self._SILENT
        self._utt_start = 0
        self._speech_start = 0
        self._voiced = 0
        self._silence_start: int | None = None
        self._last_end = 0
        self._pauses: list[tuple[int, int]] = []
        # (window start, probability) of the last second, for the least-bad hard cut.
        self._recent: deque[tuple[int, float]] = deque(maxlen=SAMPLE_RATE // WINDOW)

    @property
    def position(self) -> int:
        """Samples pushed so far."""
        return self._buf.end

    @property
    def buffer_start(self) -> int:
        """Oldest sample still held; nothing before it can appear in a future event."""
        return self._buf.start

    @property
    def in_speech(self) -> bool:
        """True between a SpeechStart and its SpeechEnd."""
        return self._state == self._SPEECH

    @property
    def pausing(self) -> bool:
        """In speech, but the latest windows are silence (a word gap or the end of the utterance)."""
        return self._state == self._SPEECH and self._silence_start is not None

    @property
    def pause_start(self) -> int | None:
        """First sample of the silence the open utterance is in right now (None when not pausing)."""
        return self._silence_start if self.pausing else None

    def tentative_end(self) -> SpeechEnd | None:
        """The `SpeechEnd` a silence end would produce if the current pause lasts to `min_silence_ms`.

        Available once the pause is at least `speech_pad_ms` long (the end
        padding is then complete, so the audio is exactly what the real end
        will carry). Callers decode it speculatively and keep the result only
        if the real event matches (same `start`, `end`); nothing changes state.
        """
        if not self.pausing or self._silence_start is None:
            return None
        end = min(self._silence_start + self._pad, self._utt_start + self._max_len)
        if self._buf.end < end:
            return None
        start = self._utt_start
        return SpeechEnd(
            start=start,
            end=end,
            speech_end=max(min(self._silence_start, end), start),
            audio=self._buf.read(start, end),
            reason="silence",
        )

    @property
    def open_start(self) -> int | None:
        return self._utt_start if self._state == self._SPEECH else None

    def open_audio(self) -> AudioArray:
        """The open utterance so far (a read-only view; empty when nobody is speaking)."""
        if self._state != self._SPEECH:
            return np.zeros(0, dtype=np.float32)
        return self._buf.read(self._utt_start, self._buf.end)

    def push(self, pcm: AudioArray) -> list[VadEvent]:
        samples = np.array(pcm, dtype=np.float32, copy=True).reshape(-1)
        self._buf.append(samples)
        first_window = self._vad.windows
        probs = self._vad(samples)
        events: list[VadEvent] = []
        for k, p in enumerate(probs.tolist(), start=first_window):
            self._step(k * WINDOW, float(p), events)
        self._trim()
        return events

    def cut(self, reason: EndReason = "flush") -> list[VadEvent]:
        """Close the open utterance at the current position (a pending onset is left to the VAD)."""
        if self._state != self._SPEECH:
            return []
        end = self._buf.end
        speech_end = self._silence_start if self._silence_start is not None else end
        event = self._close(end, speech_end, reason)
        self._trim()
        return [event]

    def finish(self) -> list[VadEvent]:
        """End of input: close the open utterance; an onset shorter than `min_speech_ms` is dropped."""
        events = self.cut("end_of_input")
        self._state = self._SILENT
        return events

    # -- the state machine -------------------------------------------------------------------

    def _step(self, w: int, p: float, events: list[VadEvent]) -> None:
        w_end = w + WINDOW
        self._recent.append((w, p))
        if self._state == self._SILENT:
            if p >= self._thr:
                self._state = self._PENDING
                self._speech_start = w
                self._voiced = 0
                self._silence_start = None
            else:
                return
        if self._state == self._PENDING:
            if p >= self._thr:
                self._voiced += WINDOW
                self._silence_start = None
            elif p < self._neg:
                if self._silence_start is None:
                    self._silence_start = w
                if w_end - self._silence_start >= self._min_silence:
                    self._state = self._SILENT  # a blip, not speech
                    return
            if self._voiced < max(self._min_speech, 1):
                return
            self._state = self._SPEECH
            self._utt_start = max(self._speech_start - self._lead, self._last_end, self._buf.start)
            self._pauses = []
            events.append(SpeechStart(self._utt_start))
            return
        # in speech
        if p >= self._thr:
            if self._silence_start is not None:
                if w - self._silence_start >= self._min_pause:
                    self._pauses.append((self._silence_start, w))
                self._silence_start = None
        elif p < self._neg:
            if self._silence_start is None:
                self._silence_start = w
            if w_end - self._silence_start >= self._min_silence:
                end = min(self._silence_start + self._pad, w_end, self._utt_start + self._max_len)
                events.append(self._close(end, self._silence_start, "silence"))
                return
        if w_end - self._utt_start >= self._max_len:
            self._cut_long(w_end, events)

    def _cut_long(self, now: int, events: list[VadEvent]) -> None:
        """Split an utterance that reached max length at its best pause, or at the limit if none.

        `now` (the end of the window that crossed the limit) can be up to one
        window past it; every cut is clamped so no utterance exceeds the limit.
        """
        limit = self._utt_start + self._max_len
        silence_start = self._silence_start
        past_pauses = self._pauses
        pauses = [pz for pz in past_pauses if pz[0] < limit]
        if silence_start is not None and silence_start < limit and now - silence_start >= self._min_pause:
            pauses.append((silence_start, now))
        half = self._utt_start + self._max_len // 2
        late = [pz for pz in pauses if (pz[0] + pz[1]) // 2 >= half]
        best = max(late or pauses, key=lambda pz: (pz[1] - pz[0], pz[0]), default=None)
        if best is None:
            cut = self._quietest_point(limit)
            events.append(self._close(cut, cut, "max_length"))
            self._open(cut, events)
            self._silence_start = None if silence_start is None else max(silence_start, cut)
            return
        start, stop = best
        if stop == now:  # the speaker is pausing right now: end the utterance like a normal end
            events.append(self._close(min(start + self._pad, limit), start, "max_length"))
            return
        cut = min((start + stop) // 2, limit)
        events.append(self._close(cut, start, "max_length"))
        self._open(cut, events)
        self._pauses = [pz for pz in past_pauses if pz[0] >= cut]
        self._silence_start = None if silence_start is None else max(silence_start, cut)

    def _quietest_point(self, limit: int) -> int:
        """No pause at all: cut in the middle of the least speech-like window of the last second.

        A dip in speech probability is most likely a word boundary, so this
        splits fewer words than cutting exactly at the limit.
        """
        floor = max(limit - SAMPLE_RATE, self._utt_start + 1)
        candidates = [(p, -w) for w, p in self._recent if floor <= w and w + WINDOW <= limit]
        if not candidates:
            return limit
        _p, neg_w = min(candidates)
        return -neg_w + WINDOW // 2

    def _open(self, start: int, events: list[VadEvent]) -> None:
        self._state = self._SPEECH
        self._utt_start = start
        self._pauses = []
        events.append(SpeechStart(start))

    def _close(self, end: int, speech_end: int, reason: EndReason) -> SpeechEnd:
        start = self._utt_start
        audio = self._buf.read(start, end)
        self._state = self._SILENT
        self._silence_start = None
        self._pauses = []
        self._last_end = end
        speech_end = max(min(speech_end, end), start)
        return SpeechEnd(start=start, end=end, speech_end=speech_end, audio=audio, reason=reason)

    def _trim(self) -> None:
        """Drop audio no future event can include (keep the open utterance or the look-behind pad)."""
        if self._state == self._SPEECH:
            keep = self._utt_start
        elif self._state == self._PENDING:
            keep = max(self._speech_start - self._lead, self._last_end)
        else:
            keep = max(self._vad.windows * WINDOW - self._lead, self._last_end)
        self._buf.discard_before(max(keep, 0))


def seconds(samples: int) -> float:
    """Sample index -> seconds at `SAMPLE_RATE`, rounded to the millisecond for stable offsets."""
    return math.floor(samples * 1000 / SAMPLE_RATE + 0.5) / 1000
