"""Live vs offline speech recognition on real recorded speech (prints figures; not a test).

For each real recording (LibriVox read speech and a TIDIGITS digit string
from Debian's pocketsphinx-testdata, see `speech_recordings`):

  * offline WER: faster-whisper decoding the whole file at once (beam 5,
    the library's defaults), the best the model can do;
  * streaming WER: the same file streamed in real time through `StreamCall`
    into a `callpilot serve` subprocess (embedded Whisper, default config),
    the finals joined; and the difference;
  * digit-string accuracy on the spoken digits, both ways.

Then latency and cost with N concurrent two-party calls (a stereo WAV per
call, the LibriVox sentences alternating between agent and customer):
end of speech -> final p50/p95/p99 (from the events' timings; the
endpointing pause itself is not included) and server CPU seconds per
call-second, with interims on (default 700 ms) and off (10 s, i.e. never for
these sentences).

    .venv/bin/python tests/benchmarks/speech_accuracy.py                 # everything
    .venv/bin/python tests/benchmarks/speech_accuracy.py --calls 1 2 4 --no-accuracy

Figures are only comparable on a quiet machine: other processes on the
cores inflate the latencies and the CPU per call-second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import row
from benchmarks.pipeline import proc_stats
from benchmarks.speech_recordings import INSTALL_HINT, Recording, all_recordings, available, digits_of, wer
from callpilot.client import AsyncCallpilot, WavFile
from support import ServerProcess, stereo_wav

RATE = 16000


def write_wav(audio: np.ndarray, path: Path) -> Path:
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return path


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def streamed_audio(rec: Recording) -> np.ndarray:
    """What is streamed (and decoded offline): the recording, then enough silence for the endpoint."""
    return np.concatenate([rec.audio, silence(1.5)])


def offline_decode(recordings: list[Recording], cache: Path) -> dict[str, str]:
    """Whole-file decodes of the streamed files: what the model does with all the audio at once."""
    from callpilot.server.stt.model import ensure_whisper_base
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(ensure_whisper_base(cache)),
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
        local_files_only=True,
    )
    out = {}
    for rec in recordings:
        segments, _ = model.transcribe(streamed_audio(rec), language="en", beam_size=5, vad_filter=False)
        out[rec.name] = " ".join(s.text.strip() for s in segments)
    return out


def profile(recordings: list[Recording], cache: Path) -> None:
    """Where a final's time goes: the encoder (always a 30 s window) vs a whole decode, greedy and beam 5."""
    from callpilot.server.stt.model import ensure_whisper_base
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(ensure_whisper_base(cache)),
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
        local_files_only=True,
    )
    options = {
        "language": "en",
        "best_of": 2,
        "temperature": [0.0, 0.2, 0.4],
        "without_timestamps": True,
        "condition_on_previous_text": False,
        "vad_filter": False,
    }
    print("\n### Profile of one final decode (Whisper base int8, 2 threads, in-process)\n")
    print("| recording | seconds | encoder ms | greedy decode ms | beam 5 decode ms |")
    print("|-----------|--------:|-----------:|-----------------:|-----------------:|")
    windows = []
    for rec in recordings:
        audio = np.concatenate([rec.audio, silence(0.2)])
        features = model.feature_extractor(audio)
        window = np.zeros((features.shape[0], 3000), dtype=features.dtype)
        window[:, : min(3000, features.shape[1])] = features[:, :3000]
        started = time.perf_counter()
        model.encode(window)
        encode = time.perf_counter() - started
        totals = []
        for beam in (1, 5):
            started = time.perf_counter()
            segments, _ = model.transcribe(audio, beam_size=beam, **options)
            list(segments)
            totals.append(time.perf_counter() - started)
        print(
            f"| {rec.name} | {audio.size / RATE:.1f} | {encode * 1000:.0f} | "
            f"{totals[0] * 1000:.0f} | {totals[1] * 1000:.0f} |"
        )
        windows.append(window)
    # Batching across streams: one encoder call for four utterances vs four calls.
    batch = np.stack(windows[:4])
    started = time.perf_counter()
    for one in batch:
        model.encode(one)
    single = time.perf_counter() - started
    started = time.perf_counter()
    model.encode(batch)
    batched = time.perf_counter() - started
    print(
        f"\nencoder, 4 utterances: one at a time {single * 1000:.0f} ms, one batch of 4 {batched * 1000:.0f} ms "
        f"(throughput x{single / batched:.2f})"
    )


async def stream_file(address: str, wav: Path) -> tuple[dict[int, list[str]], list[float]]:
    """Stream one WAV in real time through StreamCall: finals' text per speaker role, and latencies."""
    texts: dict[int, list[str]] = {}
    latencies: list[float] = []
    async with AsyncCallpilot(address) as cp:
        call = cp.stream_call(WavFile(wav, realtime=True))
        async with call:
            async for event in call:
                if event.HasField("transcript") and event.transcript.is_final:
                    texts.setdefault(event.transcript.role, []).append(event.transcript.text)
                    if event.timings.HasField("speech_end_time"):
                        latencies.append(
                            (event.time.ToNanoseconds() - event.timings.speech_end_time.ToNanoseconds()) / 1e9
                        )
    return texts, latencies


SERVER_ENV: dict[str, str] = {}
"""Extra CALLPILOT_* settings for every server (--server-env), e.g. workers and threads."""


def start_server(work: Path, name: str, interim_ms: int = 700) -> ServerProcess:
    env = {
        **SERVER_ENV,
        "CALLPILOT_STT": "whisper",
        "CALLPILOT_DATA_DIR": str(work / name),
        "CALLPILOT_LOG_LEVEL": "WARNING",
        "CALLPILOT_INTERIM_INTERVAL_MS": str(interim_ms),
        "CALLPILOT_MAX_CALLS": "64",
    }
    return ServerProcess(env, work / f"server-{name}.log").start()


async def accuracy(recordings: list[Recording], work: Path) -> None:
    offline = await asyncio.to_thread(offline_decode, recordings, work / "models")
    server = start_server(work, "accuracy")
    streamed: dict[str, str] = {}
    latencies: list[float] = []
    try:
        for rec in recordings:
            wav = write_wav(streamed_audio(rec), work / f"{rec.name}.wav")
            texts, lat = await stream_file(server.address, wav)
            streamed[rec.name] = " ".join(t for parts in texts.values() for t in parts)
            latencies += lat
    finally:
        server.stop()
    print("\n### Accuracy: offline whole-file decode vs streaming through StreamCall (1 call)\n")
    print("| recording | seconds | offline WER | streaming WER | difference |")
    print("|-----------|--------:|------------:|--------------:|-----------:|")
    for rec in recordings:
        off, live = wer(rec.reference, offline[rec.name]), wer(rec.reference, streamed[rec.name])
        print(f"| {rec.name} | {rec.audio.size / RATE:.1f} | {off:.3f} | {live:.3f} | {live - off:+.3f} |")
    for rec in recordings:
        print(f"\n- {rec.name}\n  - offline:   {offline[rec.name]!r}\n  - streaming: {streamed[rec.name]!r}")
    digit_recs = [r for r in recordings if r.digits]
    if digit_recs:
        ok_off = sum(digits_of(offline[r.name]) == r.digits for r in digit_recs)
        ok_live = sum(digits_of(streamed[r.name]) == r.digits for r in digit_recs)
        print(
            f"\nspoken digit strings right: offline {ok_off}/{len(digit_recs)}, streaming {ok_live}/{len(digit_recs)}"
        )
    print("\n| stage (1 call, sequential recordings) |     n |  p50 ms  |  p95 ms  |  p99 ms  |")
    print("|------------------------|------:|---------:|---------:|---------:|")
    print(row("speech end -> final", latencies))


def two_party_wav(recordings: list[Recording], work: Path) -> tuple[Path, float]:
    """Agent and customer take turns reading the LibriVox sentences, 0.8 s apart."""
    agent: list[np.ndarray] = []
    customer: list[np.ndarray] = []
    for i, rec in enumerate(r for r in recordings if not r.digits):
        speaking, quiet = (agent, customer) if i % 2 == 0 else (customer, agent)
        speaking.append(rec.audio)
        quiet.append(silence(rec.audio.size / RATE))
        for side in (agent, customer):
            side.append(silence(0.8))
    a, c = np.concatenate(agent), np.concatenate(customer)
    left, right = write_wav(a, work / "agent.wav"), write_wav(c, work / "customer.wav")
    return stereo_wav(left, right, work / "two-party.wav"), a.size / RATE


async def load(recordings: list[Recording], work: Path, calls_list: list[int], interims: bool) -> None:
    wav, seconds = two_party_wav(recordings, work)
    label = "on" if interims else "off"
    server = start_server(work, f"load-{label}", 700 if interims else 10_000)
    try:
        assert server.proc is not None
        print(f"\n### Latency with concurrent two-party calls, interims {label} ({os.cpu_count()} CPUs)\n")
        print("| calls | n finals |  p50 ms  |  p95 ms  |  p99 ms  | CPU s per call-second |")
        print("|------:|------:|---------:|---------:|---------:|------:|")
        for calls in calls_list:
            cpu0, _ = proc_stats(server.proc.pid)
            results = await asyncio.gather(*(stream_file(server.address, wav) for _ in range(calls)))
            cpu1, _ = proc_stats(server.proc.pid)
            latencies = [x for _texts, lat in results for x in lat]
            cells = row(str(calls), latencies, width=5)
            print(f"{cells} {(cpu1 - cpu0) / (calls * seconds):.3f} |")
    finally:
        server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, nargs="*", default=[1, 4], help="concurrent two-party calls")
    parser.add_argument("--no-accuracy", action="store_true", help="skip the per-recording WER table")
    parser.add_argument("--no-load", action="store_true", help="skip the concurrent-call latency tables")
    parser.add_argument("--no-profile", action="store_true", help="skip the encoder/decoder profile")
    parser.add_argument(
        "--server-env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra server settings, e.g. CALLPILOT_WHISPER_WORKERS=2 CALLPILOT_WHISPER_THREADS=1",
    )
    parser.add_argument("--interims", choices=["both", "on", "off"], default="both")
    args = parser.parse_args()
    SERVER_ENV.update(item.split("=", 1) for item in args.server_env)
    if not available():
        sys.exit(f"no real recordings: {INSTALL_HINT}")
    recordings = all_recordings()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"# Callpilot speech benchmark: real recordings, {os.cpu_count()} CPUs")
        if not args.no_accuracy:
            await accuracy(recordings, work)
        if not args.no_profile:
            await asyncio.to_thread(profile, recordings, work / "models")
        if not args.no_load:
            for interims in {"both": (True, False), "on": (True,), "off": (False,)}[args.interims]:
                await load(recordings, work, args.calls, interims)


if __name__ == "__main__":
    asyncio.run(main())
