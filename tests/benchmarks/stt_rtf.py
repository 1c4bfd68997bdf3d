"""Accuracy and speed of the embedded STT engine (prints figures; not a test).

Synthesises a few call-centre sentences with espeak-ng and reports, per
final beam size:

  offline   each sentence decoded once as a FINAL (what the stream does at
            end of utterance): WER, real-time factor = decode time / audio time,
            and mean decode latency per utterance;
  streaming all sentences (1 s apart) pushed through a WhisperStream as fast
            as it accepts them, interims on: wall time / audio time, and how
            many interims were decoded or skipped because the pool was busy;

plus the same stream on the null engine (VAD endpointing only), i.e. the
cost of the pipeline without Whisper.

    .venv/bin/python tests/benchmarks/stt_rtf.py [--beam 1 5] [--threads 2] [--model base]

WER is computed after normalising case, punctuation and digits (Whisper
writes "7881", the reference says "seven eight eight one").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callpilot.server.stt.base import SAMPLE_RATE, SpeechEventKind, STTEngine
from callpilot.server.stt.model import resolve_model
from callpilot.server.stt.null import NullEngine
from callpilot.server.stt.whisper import WhisperEngine
from support import synth

SENTENCES = [
    "Hi, my name is Maria Garcia and I am calling about my account.",
    "I would like a refund for order seven eight nine oh one.",
    "The headphones arrived broken and the box was completely crushed.",
    "Can you tell me when my replacement will be delivered?",
    "I have been waiting on hold for more than half an hour.",
    "Please cancel my subscription and send me a confirmation email.",
]

CONTRACTIONS = {"i've": "i have", "i'm": "i am", "don't": "do not", "can't": "cannot", "it's": "it is"}
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def normalise(text: str) -> list[str]:
    text = text.lower().replace("-", " ")
    text = re.sub(r"\d", lambda m: f" {DIGITS[int(m.group())]} ", text)
    words = " ".join(CONTRACTIONS.get(w, w) for w in re.findall(r"[a-z']+", text)).split()
    return ["zero" if w == "oh" else w for w in words]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def wer(refs: list[str], hyps: list[str]) -> float:
    errors = sum(edit_distance(normalise(r), normalise(h)) for r, h in zip(refs, hyps, strict=True))
    return errors / max(sum(len(normalise(r)) for r in refs), 1)


def load(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768


async def offline(engine: WhisperEngine, clips: list[np.ndarray]) -> tuple[list[str], float, list[float]]:
    """Each clip decoded once as a FINAL: texts, RTF, per-utterance decode times."""
    texts: list[str] = []
    times: list[float] = []
    for clip in clips:
        started = time.perf_counter()
        hyp = await engine.transcribe(clip, language="en", final=True)
        times.append(time.perf_counter() - started)
        texts.append(hyp.text if hyp else "")
    audio = sum(len(c) for c in clips) / SAMPLE_RATE
    return texts, sum(times) / audio, times


@dataclass
class StreamRun:
    finals: list[str] = field(default_factory=list)
    interims: int = 0
    rtf: float = 0.0
    final_latency: list[float] = field(default_factory=list)  # speech end detected -> FINAL out


async def streaming(engine: STTEngine, audio: np.ndarray, *, realtime: bool = False) -> StreamRun:
    """Push 20 ms chunks as fast as accepted, or paced at real time with `realtime`."""
    stream = engine.stream(language="en")
    run = StreamRun()

    async def consume() -> None:
        async for event in stream:
            if event.kind is SpeechEventKind.FINAL:
                run.finals.append(event.text)
                run.final_latency.append(event.created - event.speech_end_time)
            elif event.kind is SpeechEventKind.INTERIM:
                run.interims += 1

    started = time.perf_counter()
    consumer = asyncio.create_task(consume())
    for n, i in enumerate(range(0, len(audio), 320)):
        await stream.push_audio(audio[i : i + 320])
        if realtime:
            await asyncio.sleep(max(0.0, started + (n + 1) * 0.02 - time.perf_counter()))
        else:
            await asyncio.sleep(0)
    stream.end_input()
    await consumer
    run.rtf = (time.perf_counter() - started) / (len(audio) / SAMPLE_RATE)
    return run


def row(mode: str, beam: str, wer_: str, rtf: str, latency: str, interims: str) -> str:
    return f"| {mode:<20} | {beam:>4} | {wer_:>6} | {rtf:>5} | {latency:>15} | {interims:>14} |"


def latency(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{1000 * sum(ordered) / len(ordered):.0f} / {1000 * ordered[-1]:.0f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="base", help="'base' (embedded) or a CTranslate2 Whisper directory"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "callpilot" / "models",
    )
    parser.add_argument("--beam", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument(
        "--realtime", action="store_true", help="also stream at real time (adds ~30 s per beam size)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clips = [load(synth(s, Path(tmp) / f"s{i}.wav")) for i, s in enumerate(SENTENCES)]
    gap = np.zeros(SAMPLE_RATE, dtype=np.float32)
    call = np.concatenate([x for clip in clips for x in (clip, gap)])
    audio_s = sum(len(c) for c in clips) / SAMPLE_RATE
    model_dir = resolve_model(args.model, args.cache_dir)
    print(
        f"model {model_dir} ({args.compute_type}, {args.threads} threads); "
        f"{len(clips)} sentences, {audio_s:.1f} s of speech (espeak-ng en-us)\n"
        "RTF = processing time / audio time; latency = mean / max per utterance "
        "(offline: decode time; stream: speech end detected -> FINAL)\n"
    )
    print(row("mode", "beam", "WER", "RTF", "latency", "interims"))
    print(row("-" * 20, "-" * 4, "-" * 6, "-" * 5, "-" * 15, "-" * 14))

    def stream_row(mode: str, beam: str, run: StreamRun) -> str:
        w = f"{wer(SENTENCES, run.finals):.1%}" if len(run.finals) == len(SENTENCES) else "n/a"
        return row(mode, beam, w, f"{run.rtf:.3f}", latency(run.final_latency), str(run.interims))

    samples: list[tuple[str, str]] = []
    for beam in args.beam:
        engine = WhisperEngine(
            model_dir, compute_type=args.compute_type, cpu_threads=args.threads, beam_size=beam
        )
        await engine.warm_up()
        texts, rtf, per_utt = await offline(engine, clips)
        samples = samples or list(zip(SENTENCES, texts, strict=True))
        print(
            row(
                "offline final",
                str(beam),
                f"{wer(SENTENCES, texts):.1%}",
                f"{rtf:.3f}",
                latency(per_utt),
                "-",
            )
        )
        print(stream_row("stream, fast push", str(beam), await streaming(engine, call)))
        if args.realtime:
            print(stream_row("stream, real time", str(beam), await streaming(engine, call, realtime=True)))
        await engine.aclose()
    null = NullEngine()
    await null.warm_up()
    print(stream_row("null engine (VAD)", "-", await streaming(null, call)).replace("100.0%", "   -  "))
    print("\nbeam", args.beam[0], "transcripts:")
    for ref, hyp in samples:
        print(f"  ref: {ref}\n  hyp: {hyp}")


if __name__ == "__main__":
    asyncio.run(main())
