"""The embedded engine: faster-whisper (CTranslate2) behind local Silero endpointing.

Whisper is not a streaming model, so streaming is built around it: the VAD
cuts utterances (see `vad`), the open utterance is re-decoded every
`interim_interval` seconds of audio for INTERIM hypotheses, and each closed
utterance is decoded once more for its FINAL.

Finals are decoded the way offline decoding wins: the whole padded
utterance (never stitched interims), beam search, and the speaker's recent
finals as the prompt (context carry-over), with the call's context (phrase
hints, then the identified customer's name and order numbers through
`update_context`) as hotwords. Whisper's known failure modes on short or
silent audio (a hallucinated "Thank you.", repetition loops) are caught with
its own per-segment signals, not word lists: a segment whose compression
ratio stays above `MAX_COMPRESSION_RATIO` after the temperature fallback, or
that is both likely silence (`no_speech_prob`) and unlikely text
(`avg_logprob`), is dropped, and the carried-over context is reset so a
hallucination cannot prime the next decode.

Threading: one `WhisperModel` is shared by every stream of the engine and is
only ever called from a `ThreadPoolExecutor` of `workers` threads
(CTranslate2 releases the GIL while it computes, so the event loop keeps
serving audio). Admission to the pool is bounded by an asyncio semaphore
of `workers` slots, so the executor's own queue never holds more than is
running; finals wait for a slot in FIFO order, interims are only started
when a slot is free at that moment (interims are droppable, finals never).
A slot is released when the thread finishes, not when its awaiting
coroutine is cancelled, so a cancelled stream cannot overbook the CPU.

An engine serves one event loop (the server has one per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from callpilot.server.errors import InvalidArgument, Violation
from callpilot.server.stt.base import SAMPLE_RATE, AudioArray, STTCapabilities, STTEngine, STTError
from callpilot.server.stt.model import ModelNotFoundError
from callpilot.server.stt.streaming import Hypothesis, SegmentingOptions, SegmentingStream
from callpilot.server.stt.vad import VadOptions, load_silero_session

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_HOTWORDS_CHARS = 800
"""Phrase hints beyond this are not passed on: Whisper keeps at most ~220 prompt tokens anyway."""

FINAL_TEMPERATURES = (0.0, 0.2, 0.4)
"""Greedy first; re-sample only when Whisper's own checks (compression ratio, logprob) reject it."""

MAX_COMPRESSION_RATIO = 2.4
"""Whisper's own repetition signal: text that gzips this well is a loop, not speech."""

NO_SPEECH_PROB = 0.5
NO_SPEECH_LOGPROB = -0.8
"""A segment with no_speech_prob above NO_SPEECH_PROB and avg_logprob below NO_SPEECH_LOGPROB is dropped.

Slightly stricter than Whisper's own skip rule (0.6 / -1.0, applied inside
faster-whisper as well), because a VAD cut has already said "speech" and
the typical leftover is a confident-sounding "Thank you." on breath noise.
"""

PROMPT_FINALS = 3
PROMPT_MAX_CHARS = 240
"""Context carry-over: at most this many recent finals, and characters, become the next prompt."""

INTERIM_BUSY_LIMIT = 0.6
"""Interims start only while the workers were busy less than this fraction of the last `BUSY_WINDOW_S`."""

BUSY_WINDOW_S = 2.0


@dataclass(slots=True)
class WhisperStats:
    """Counters for metrics and tests; updated from the worker threads under `lock`."""

    finals: int = 0
    interims: int = 0
    interims_skipped: int = 0
    hallucinations_dropped: int = 0
    audio_seconds: float = 0.0
    decode_seconds: float = 0.0
    decode_threads: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def whisper_language(code: str) -> str:
    """BCP-47 ("en-US", "pt_BR", "") -> Whisper's language code ("en", "pt", "en").

    Raises `InvalidArgument` on "config.language_code" for a language Whisper does not know.
    """
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    primary = code.strip().replace("_", "-").split("-")[0].lower() or "en"
    if primary not in _LANGUAGE_CODES:
        raise InvalidArgument(
            Violation(
                "config.language_code",
                f"language {code!r} is not supported by the Whisper speech recogniser; "
                "use a BCP-47 code such as 'en' or 'en-US' for one of Whisper's 99 languages",
                "UNSUPPORTED",
            )
        )
    return str(primary)


def hotwords_from_hints(phrase_hints: Sequence[str]) -> str | None:
    """Phrase hints -> Whisper's `hotwords` prompt (deduplicated, order kept, capped)."""
    seen: dict[str, None] = {}
    for hint in phrase_hints:
        cleaned = " ".join(hint.split())
        if cleaned and cleaned.lower() not in (k.lower() for k in seen):
            seen[cleaned] = None
    text = ", ".join(seen)
    if len(text) > MAX_HOTWORDS_CHARS:
        text = text[:MAX_HOTWORDS_CHARS].rsplit(",", 1)[0]
    return text or None


class WhisperEngine(STTEngine):
    """faster-whisper on CPU; every stream shares one model and one bounded worker pool.

    model_dir: a CTranslate2 Whisper directory (see `model.resolve_model`).
    compute_type: CTranslate2 quantisation; int8 is ~2x faster than float32 on CPU at equal accuracy.
    cpu_threads: intra-op threads per decode. workers: decodes that run at once (each gets
        `cpu_threads`); keep workers x cpu_threads <= cores.
    interim_interval: seconds of new audio between interim decodes of the open utterance
        (None disables interims). beam_size: beam for FINAL decodes; interims are always greedy.
    speculate_after_ms: pause after which a final is decoded speculatively (see `streaming`).
    device: "cpu" (the default) or "cuda" (faster-whisper's own GPU support); "cuda" on a
        machine without a CUDA device fails at construction with `STTError` saying so.
    vad: endpointing tunables. max_pending_finals / max_events: per-stream queue bounds
        (policies in `streaming`).
    """

    capabilities = STTCapabilities(streaming=True, interim_results=True)

    def __init__(
        self,
        model_dir: Path,
        *,
        compute_type: str = "int8",
        cpu_threads: int = 2,
        workers: int = 1,
        interim_interval: float | None = 0.7,
        vad: VadOptions | None = None,
        beam_size: int = 5,
        max_pending_finals: int = 4,
        max_events: int = 64,
        speculate_after_ms: int | None = 200,
        device: str = "cpu",
    ) -> None:
        if workers < 1 or cpu_threads < 1 or beam_size < 1:
            raise ValueError("workers, cpu_threads and beam_size must be at least 1")
        self.device = check_device(device)
        self.model_dir = Path(model_dir)
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.workers = workers
        self.segmenting = SegmentingOptions(
            vad or VadOptions(), interim_interval, max_pending_finals, max_events, speculate_after_ms
        )
        self.beam_size = beam_size
        self.stats = WhisperStats()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="whisper")
        self._slots = asyncio.Semaphore(workers)
        self._model: Any = None
        self._model_lock = threading.Lock()
        self._closed = False
        # (monotonic end, seconds) of recent decodes: how busy the workers were lately.
        self._busy: deque[tuple[float, float]] = deque()
        fw_log = logging.getLogger("faster_whisper")
        if fw_log.level == logging.NOTSET:  # it logs every decode at INFO; keep the operator's choice
            fw_log.setLevel(logging.WARNING)

    def stream(self, *, language: str, phrase_hints: Sequence[str] = ()) -> WhisperStream:
        if self._closed:
            raise STTError("the Whisper engine is closed")
        return WhisperStream(self, language=whisper_language(language), phrase_hints=phrase_hints)

    async def warm_up(self) -> None:
        """Load the VAD and the model, and run one tiny decode, so the first call is not the slow one."""
        await asyncio.to_thread(load_silero_session)
        await self._submit(self._warm_up_sync, droppable=False)

    async def aclose(self) -> None:
        """Stop accepting work; a decode already running finishes in the background and is discarded."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def has_idle_worker(self) -> bool:
        """Whether an interim may start now: a worker is free and there is spare capacity.

        Interims adapt to load: when the workers were busy more than
        `INTERIM_BUSY_LIMIT` of the last `BUSY_WINDOW_S`, interims are skipped
        (and counted) so finals always find a worker without waiting behind them.
        """
        return not self._slots.locked() and self.busy_fraction() < INTERIM_BUSY_LIMIT

    def busy_fraction(self) -> float:
        """Share of the last `BUSY_WINDOW_S` the workers spent decoding (0..1, across workers)."""
        now = time.monotonic()
        horizon = now - BUSY_WINDOW_S
        with self.stats.lock:
            while self._busy and self._busy[0][0] < horizon:
                self._busy.popleft()
            busy = sum(min(duration, end - horizon) for end, duration in self._busy)
        return min(busy / (BUSY_WINDOW_S * self.workers), 1.0)

    async def transcribe(
        self,
        audio: AudioArray,
        *,
        language: str = "en",
        hotwords: str | None = None,
        prompt: str | None = None,
        final: bool = True,
    ) -> Hypothesis | None:
        """Decode one utterance in the pool.

        With `final=False` it is an interim: greedy, and None when no worker is idle.
        `hotwords`: the call's context; `prompt`: the speaker's recent finals.
        """
        if audio.size == 0:
            return Hypothesis("", 0.0)
        if not final and not self.has_idle_worker():
            with self.stats.lock:
                self.stats.interims_skipped += 1
            return None
        return await self._submit(
            lambda: self._transcribe_sync(audio, language, hotwords, final, prompt=prompt),
            droppable=not final,
        )

    # -- pool admission --------------------------------------------------------------------------

    async def _submit(self, fn: Callable[[], T], *, droppable: bool) -> T | None:
        if self._closed:
            raise STTError("the Whisper engine is closed", retryable=True)
        if droppable and self._slots.locked():
            with self.stats.lock:
                self.stats.interims_skipped += 1
            return None
        await self._slots.acquire()
        loop = asyncio.get_running_loop()

        def release(_: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone; nobody is waiting any more
                loop.call_soon_threadsafe(self._slots.release)

        try:
            future = self._pool.submit(fn)
        except RuntimeError as exc:  # shut down between the check and the submit
            self._slots.release()
            raise STTError("the Whisper engine is closed", retryable=True) from exc
        future.add_done_callback(release)
        return await asyncio.wrap_future(future)

    # -- worker-thread side ----------------------------------------------------------------------

    def _load_model(self) -> Any:
        with self._model_lock:
            if self._model is None:
                if not (self.model_dir / "model.bin").is_file():
                    raise ModelNotFoundError(
                        f"no Whisper model in {self.model_dir} (model.bin is missing)",
                        ["resolve the model with callpilot.server.stt.model.resolve_model first"],
                    )
                from faster_whisper import WhisperModel

                started = time.perf_counter()
                self._model = WhisperModel(
                    str(self.model_dir),
                    device=self.device,
                    compute_type=self.compute_type,
                    cpu_threads=self.cpu_threads,
                    num_workers=self.workers,
                    local_files_only=True,
                )
                log.info(
                    "loaded Whisper model %s (%s) in %.2fs",
                    self.model_dir,
                    self.compute_type,
                    time.perf_counter() - started,
                )
            return self._model

    def _warm_up_sync(self) -> None:
        self._load_model()
        self._transcribe_sync(np.zeros(8000, dtype=np.float32), "en", None, final=False, record=False)

    def _transcribe_sync(
        self,
        audio: AudioArray,
        language: str,
        hotwords: str | None,
        final: bool,
        *,
        prompt: str | None = None,
        record: bool = True,
    ) -> Hypothesis:
        model = self._load_model()
        started = time.perf_counter()
        segments, _info = model.transcribe(
            audio,
            language=language,
            task="transcribe",
            beam_size=self.beam_size if final else 1,
            best_of=2,
            temperature=list(FINAL_TEMPERATURES) if final else 0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            vad_filter=False,
            hotwords=hotwords,
        )
        texts: list[str] = []
        logprob_sum = 0.0
        tokens = 0
        suspect = False
        for segment in segments:  # a generator: the decoding happens while iterating, here
            text = segment.text.strip()
            if not text:
                continue
            if is_hallucination(segment):
                suspect = True
                continue
            texts.append(text)
            n = max(len(segment.tokens), 1)
            logprob_sum += float(segment.avg_logprob) * n
            tokens += n
        if record:
            self._record(audio.size / SAMPLE_RATE, time.perf_counter() - started, final, suspect)
        if not tokens:
            return Hypothesis("", 0.0, suspect=suspect)
        confidence = min(max(math.exp(logprob_sum / tokens), 0.0), 1.0)
        return Hypothesis(" ".join(texts), round(confidence, 4), suspect=suspect)

    def _record(
        self, audio_seconds: float, decode_seconds: float, final: bool, suspect: bool = False
    ) -> None:
        with self.stats.lock:
            self._busy.append((time.monotonic(), decode_seconds))
            if suspect:
                self.stats.hallucinations_dropped += 1
            self.stats.decode_threads.add(threading.get_ident())
            self.stats.decode_seconds += decode_seconds
            self.stats.audio_seconds += audio_seconds
            if final:
                self.stats.finals += 1
            else:
                self.stats.interims += 1


class WhisperStream(SegmentingStream):
    """One speaker's stream on a `WhisperEngine` (create it with `WhisperEngine.stream`).

    Event order and queue policies are those of `SegmentingStream`: bounded
    output where interims coalesce and finals are never dropped.
    """

    def __init__(self, engine: WhisperEngine, *, language: str, phrase_hints: Sequence[str] = ()) -> None:
        super().__init__(engine.segmenting)
        self._engine = engine
        self.language = language
        self._phrase_hints = tuple(phrase_hints)
        self._names: tuple[str, ...] = ()
        self._numbers: tuple[str, ...] = ()
        self.hotwords = hotwords_from_hints(self._phrase_hints)
        self._recent: deque[str] = deque(maxlen=PROMPT_FINALS)

    @property
    def prompt(self) -> str | None:
        """The speaker's recent finals, newest last, capped at `PROMPT_MAX_CHARS` (None when empty)."""
        text = " ".join(self._recent)
        if len(text) > PROMPT_MAX_CHARS:
            text = text[-PROMPT_MAX_CHARS:].split(" ", 1)[-1]
        return text or None

    def update_context(self, *, names: Sequence[str] = (), numbers: Sequence[str] = ()) -> None:
        """Bias recognition towards the call's entities (see `STTStream.update_context`).

        They go first in the hotwords, before the phrase hints, so the cap on
        hotwords length never cuts the customer's own name or order numbers.
        """
        self._names = tuple(names)
        self._numbers = tuple(numbers)
        self.hotwords = hotwords_from_hints((*self._names, *self._numbers, *self._phrase_hints))

    async def _decode(self, audio: AudioArray, *, final: bool) -> Hypothesis | None:
        return await self._engine.transcribe(
            audio, language=self.language, hotwords=self.hotwords, prompt=self.prompt, final=final
        )

    def _on_final(self, hypothesis: Hypothesis) -> None:
        if hypothesis.suspect:
            self._recent.clear()  # never prime the next decode with a hallucination
        elif hypothesis.text:
            self._recent.append(hypothesis.text)

    def _interim_possible(self) -> bool:
        return self._engine.has_idle_worker()

    def _on_interim_skipped(self) -> None:
        with self._engine.stats.lock:
            self._engine.stats.interims_skipped += 1


def is_hallucination(segment: Any) -> bool:
    """Whisper's own signals that a decoded segment is not what was said (see the module docstring)."""
    if float(segment.compression_ratio) > MAX_COMPRESSION_RATIO:
        return True
    return float(segment.no_speech_prob) > NO_SPEECH_PROB and float(segment.avg_logprob) < NO_SPEECH_LOGPROB


def check_device(device: str) -> str:
    """Validate the Whisper device up front, so a server without a GPU says so at start-up.

    Raises `STTError` for an unknown device, or for "cuda" where CTranslate2 sees no CUDA device.
    """
    device = device.strip().lower() or "cpu"
    if device == "cpu":
        return device
    if device != "cuda":
        raise STTError(f"unknown Whisper device {device!r}: use 'cpu' or 'cuda'")
    import ctranslate2

    try:
        count = ctranslate2.get_cuda_device_count()
    except Exception:  # a CTranslate2 build without CUDA support
        count = 0
    if count < 1:
        raise STTError(
            "Whisper device 'cuda' was asked for, but no CUDA device is visible to CTranslate2 "
            "(no NVIDIA GPU/driver, or CUDA libraries missing); unset CALLPILOT_WHISPER_DEVICE to run on the CPU"
        )
    return device
