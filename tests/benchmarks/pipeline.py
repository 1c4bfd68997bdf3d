"""Pipeline latency benchmark (prints figures; not a test).

Streams N concurrent calls in real time from this process into a
`callpilot serve` subprocess and prints p50/p95/p99 per stage:

  frame -> STT input       audio chunk received -> samples handed to STT (server histogram)
  speech end -> final      end of speech detected -> final transcript emitted (event timings)
  final -> first delta     triggering final -> first suggestion delta (event timings)
  emit -> watcher          event emitted -> received by a WatchCall client (this process)

plus server CPU seconds and RSS growth per call. Runs the embedded Whisper
STT, the null STT (endpointing, no decoding) and a bare grpc.aio echo of
the same frames as the baseline.

    .venv/bin/python tests/benchmarks/pipeline.py --calls 4
    .venv/bin/python tests/benchmarks/pipeline.py --calls 40 --stt null --database postgres
    .venv/bin/python tests/benchmarks/pipeline.py --database postgres --capacity null:10,50,100 deepgram:10,50

Every table shows each stage's p95/p99 as a multiple of the bare echo's
measured in the same run, and the server's CPU per call as a multiple of
the echo server's. `--stt deepgram` is the cloud path against a loopback
Deepgram (tests/providers/fake_deepgram.py) hearing the call as tones;
`--database postgres` gives each server a fresh PostgreSQL database;
`--capacity` sweeps call counts and prints the calls per core at which each
stage's p95 doubles; `--profile DIR` records py-spy of the server
(summarise with profile_summary.py).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import wave
from dataclasses import dataclass, field
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import SUPPORT_CALL_LINES, pct
from callpilot.client import AsyncCallpilot, WavFile
from providers.fake_deepgram import DeepgramScript, FakeDeepgram, silence, tone_words
from support import ServerProcess, concat_wavs, create_pg_database, drop_pg_database, synth


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def histogram_quantiles(text: str, name: str) -> tuple[int, list[tuple[float, int]]]:
    buckets = []
    for m in re.finditer(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', text, re.M):
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        buckets.append((le, int(float(m.group(2)))))
    total = buckets[-1][1] if buckets else 0
    return total, buckets


def bucket_quantile(buckets: list[tuple[float, int]], q: float) -> float:
    """Prometheus-style linear interpolation inside the bucket holding the quantile."""
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    rank = q * total
    prev_le, prev_count = 0.0, 0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_count) / max(count - prev_count, 1))
        prev_le, prev_count = le, count
    return prev_le


async def run_calls(address: str, wav: Path, calls: int) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {
        "speech end -> final": [],
        "final -> first delta": [],
        "emit -> watcher": [],
    }

    async def one(cp: AsyncCallpilot) -> None:
        call = cp.stream_call(WavFile(wav, realtime=True))
        watcher: asyncio.Task[None] | None = None
        async with call:
            async for event in call:
                if watcher is None:
                    watcher = asyncio.create_task(watch(cp, event.call_id))
                if (
                    event.HasField("transcript")
                    and event.transcript.is_final
                    and event.timings.HasField("speech_end_time")
                ):
                    stages["speech end -> final"].append(
                        (event.time.ToNanoseconds() - event.timings.speech_end_time.ToNanoseconds()) / 1e9
                    )
                if event.HasField("suggestion_completed") and event.timings.HasField("first_delta_time"):
                    stages["final -> first delta"].append(
                        (
                            event.timings.first_delta_time.ToNanoseconds()
                            - event.timings.input_time.ToNanoseconds()
                        )
                        / 1e9
                    )
        if watcher is not None:
            await watcher

    async def watch(cp: AsyncCallpilot, call_id: str) -> None:
        # Joins after call_started: what is replayed from the store is not a
        # fan-out latency, so only events emitted after the watch began count.
        joined = time.time()
        async for event in cp.watch_call(call_id, from_sequence=2):
            emitted = event.time.ToNanoseconds() / 1e9
            if emitted >= joined:
                stages["emit -> watcher"].append(time.time() - emitted)

    async with AsyncCallpilot(address) as cp:
        await asyncio.gather(*(one(cp) for _ in range(calls)))
    return stages


@dataclass
class Figures:
    """One run's figures: stage -> (p50, p95, p99) in ms, and server CPU seconds per call."""

    label: str
    calls: int
    stages: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    cpu_per_call: float = float("nan")
    wall: float = float("nan")
    extra: dict[str, str] = field(default_factory=dict)


def quantiles_ms(values_s: list[float]) -> tuple[float, float, float]:
    ms = [v * 1000 for v in values_s]
    return pct(ms, 0.5), pct(ms, 0.95), pct(ms, 0.99)


async def bench_server(
    stt: str,
    wav: Path,
    calls: int,
    workdir: Path,
    *,
    database: str = "sqlite",
    extra_env: dict[str, str] | None = None,
    profile: Path | None = None,
) -> Figures:
    metrics_port = free_port()
    run_dir = workdir / f"{stt}-{database}-{calls}-{time.monotonic_ns()}"
    env = {
        "CALLPILOT_STT": stt,
        "CALLPILOT_DATA_DIR": str(run_dir),
        "CALLPILOT_METRICS_PORT": str(metrics_port),
        "CALLPILOT_LOG_LEVEL": "WARNING",
        "CALLPILOT_MAX_CALLS": str(max(calls * 2, 100)),
        **(extra_env or {}),
    }
    pg_url = ""
    if database == "postgres":
        pg_url = await create_pg_database()
        env["CALLPILOT_DATABASE_URL"] = pg_url
    server = ServerProcess(env, workdir / f"server-{stt}-{database}.log").start()
    spy: subprocess.Popen[bytes] | None = None
    try:
        assert server.proc is not None
        if profile is not None:
            spy = start_profiler(server.proc.pid, profile / f"server-{stt}-{database}-{calls}.txt")
        cpu0, rss0 = proc_stats(server.proc.pid)
        started = time.monotonic()
        stages = await run_calls(server.address, wav, calls)
        wall = time.monotonic() - started
        cpu1, rss1 = proc_stats(server.proc.pid)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await asyncio.to_thread(spy.wait, 30)
        server.stop()
        if pg_url:
            await drop_pg_database(pg_url)
    figures = Figures(f"{stt} STT, {database}", calls, cpu_per_call=(cpu1 - cpu0) / calls, wall=wall)
    _total, buckets = histogram_quantiles(text, "callpilot_frame_to_stt_seconds")
    if buckets:
        figures.stages["frame -> STT input"] = tuple(  # type: ignore[assignment]
            bucket_quantile(buckets, q) * 1000 for q in (0.5, 0.95, 0.99)
        )
        figures.counts["frame -> STT input"] = buckets[-1][1]
    for name, values in stages.items():
        figures.stages[name] = quantiles_ms(values)
        figures.counts[name] = len(values)
    # Where the event log's time goes: queued -> committed, and events per transaction.
    _n, commit = histogram_quantiles(text, "callpilot_event_commit_seconds")
    _n, batch = histogram_quantiles(text, "callpilot_event_commit_batch_events")
    if commit and commit[-1][1]:
        figures.extra["event commit p50/p95/p99 ms"] = " / ".join(
            f"{bucket_quantile(commit, q) * 1000:.1f}" for q in (0.5, 0.95, 0.99)
        )
    if batch and batch[-1][1]:
        figures.extra["events per transaction p50/p99"] = " / ".join(
            f"{bucket_quantile(batch, q):.1f}" for q in (0.5, 0.99)
        )
        figures.extra["transactions"] = str(batch[-1][1])
    figures.extra["RSS growth per call"] = (
        f"{(rss1 - rss0) / calls / 2**20:.1f} MiB (server {rss1 / 2**20:.0f} MiB)"
    )
    return figures


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy (when installed) sampling the server, idle threads included, into a collapsed-stack file."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        print("(py-spy not installed: no profile)", file=sys.stderr)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(spy), "record", "--pid", str(pid), "--format", "raw", "--idle", "--threads", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def print_figures(run: Figures, echo: Figures | None) -> None:
    print(f"\n### {run.label}, {run.calls} concurrent real-time calls ({run.wall:.1f} s wall)\n")
    print(
        "| stage                  |     n |  p50 ms  |  p95 ms  |  p99 ms  | p95 / echo p95 | p99 / echo p99 |"
    )
    print(
        "|------------------------|------:|---------:|---------:|---------:|---------------:|---------------:|"
    )
    for name, (p50, p95, p99) in run.stages.items():
        r95 = r99 = "        -"
        if echo is not None:
            e = echo.stages["frame round trip"]
            r95, r99 = f"{p95 / e[1]:>13.1f}x", f"{p99 / e[2]:>13.1f}x"
        n = run.counts.get(name, 0)
        print(f"| {name:<22} | {n:>5} | {p50:>8.2f} | {p95:>8.2f} | {p99:>8.2f} | {r95} | {r99} |")
    ratio = f" ({run.cpu_per_call / echo.cpu_per_call:.1f}x the echo's)" if echo else ""
    print(f"\nserver CPU per call: {run.cpu_per_call:.2f} s over a {run.wall:.1f} s call{ratio}")
    for key, value in run.extra.items():
        print(f"{key}: {value}")


ECHO_SERVER = r"""
import asyncio, sys, grpc
async def echo(request_iterator, context):
    async for chunk in request_iterator:
        yield chunk
async def main():
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler("bench.Echo", {
        "Stream": grpc.stream_stream_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"serving on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()
asyncio.run(main())
"""


async def bench_echo(wav: Path, calls: int) -> Figures:
    proc = await asyncio.to_thread(
        subprocess.Popen, [sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    address = (await asyncio.to_thread(proc.stdout.readline)).split()[-1]
    with wave.open(str(wav), "rb") as w:
        pcm = w.readframes(w.getnframes())
    frames = [pcm[i : i + 640] for i in range(0, len(pcm), 640)]  # 20 ms at 16 kHz
    rtts: list[float] = []
    cpu0, _ = proc_stats(proc.pid)

    async def one(channel: grpc.aio.Channel) -> None:
        method = channel.stream_stream("/bench.Echo/Stream")
        sent: dict[int, float] = {}
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def requests():  # type: ignore[no-untyped-def]
            while (item := await queue.get()) is not None:
                yield item

        call = method(requests())

        async def pump() -> None:
            start = time.monotonic()
            for i, frame in enumerate(frames):
                await asyncio.sleep(max(0.0, start + i * 0.02 - time.monotonic()))
                sent[i] = time.monotonic()
                await queue.put(i.to_bytes(4, "big") + frame)
            await queue.put(None)

        task = asyncio.create_task(pump())
        async for reply in call:
            rtts.append(time.monotonic() - sent[int.from_bytes(reply[:4], "big")])
        await task

    try:
        async with grpc.aio.insecure_channel(address) as channel:
            await asyncio.gather(*(one(channel) for _ in range(calls)))
        cpu1, _ = proc_stats(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    figures = Figures("Baseline: bare grpc.aio echo of the same 20 ms frames", calls)
    figures.stages["frame round trip"] = quantiles_ms(rtts)
    figures.counts["frame round trip"] = len(rtts)
    figures.cpu_per_call = (cpu1 - cpu0) / calls
    figures.wall = len(frames) * 0.02
    return figures


def deepgram_wav(path: Path) -> Path:
    """The support call as the loopback Deepgram hears it: one tone per word, lines 1.2 s apart."""
    import numpy as np

    lines = [[w.strip(".,").lower() for w in line.split()] for line in SUPPORT_CALL_LINES]
    vocabulary = sorted({w for line in lines for w in line})
    parts = [silence(0.5)]
    for words in lines:
        parts += [tone_words(words, vocabulary), silence(1.2)]
    pcm = (np.concatenate(parts) * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm)
    return path


async def bench_stt(
    stt: str, wavs: dict[str, Path], calls: int, work: Path, database: str, profile: Path | None
) -> Figures:
    """One server run; `deepgram` is the cloud STT path against a loopback Deepgram."""
    if stt != "deepgram":
        return await bench_server(stt, wavs["speech"], calls, work, database=database, profile=profile)
    vocabulary = sorted({w.strip(".,").lower() for line in SUPPORT_CALL_LINES for w in line.split()})
    async with FakeDeepgram(DeepgramScript(vocabulary, idle_timeout=60.0)) as dg:
        env = {"DEEPGRAM_API_KEY": "test-key", "DEEPGRAM_BASE_URL": dg.url}
        return await bench_server(
            stt, wavs["tones"], calls, work, database=database, extra_env=env, profile=profile
        )


STAGES = ("frame -> STT input", "speech end -> final", "final -> first delta", "emit -> watcher")


async def capacity(args: argparse.Namespace, wavs: dict[str, Path], work: Path) -> None:
    """For each STT: p95 per stage at rising call counts; the load at which it first doubles."""
    cpus = os.cpu_count() or 1
    table: list[str] = []
    for spec in args.capacity:
        stt, _, levels_text = spec.partition(":")
        levels = [int(n) for n in levels_text.split(",")]
        runs: list[tuple[Figures, Figures]] = []
        for calls in levels:
            echo = await bench_echo(wavs["speech"], calls)
            run = await bench_stt(stt, wavs, calls, work, args.database, None)
            print_figures(run, echo)
            runs.append((run, echo))
        print(f"\n#### {stt} STT ({args.database}): p95 ms per stage by calls ({cpus} CPUs)\n")
        print("| stage | " + " | ".join(f"{r.calls} calls" for r, _ in runs) + " | p95 doubles at |")
        print("|---|" + "---:|" * (len(runs) + 1))
        for stage in STAGES:
            p95s = [r.stages.get(stage, (math.nan,) * 3)[1] for r, _ in runs]
            doubled = "not within " + f"{levels[-1] / cpus:g} calls/core"
            for k in range(1, len(runs)):
                if p95s[k] > 2 * p95s[0]:
                    # Between the last load that stayed under double and the first that did not.
                    doubled = f"{runs[k - 1][0].calls / cpus:g}-{runs[k][0].calls / cpus:g} calls/core"
                    break
            print(f"| {stage} | " + " | ".join(f"{v:.1f}" for v in p95s) + f" | {doubled} |")
            table.append(f"| {stt} | {stage} | {p95s[0]:.1f} @ {levels[0]} | {doubled} |")
        print(
            "| echo round trip | "
            + " | ".join(f"{e.stages['frame round trip'][1]:.1f}" for _, e in runs)
            + " | |"
        )
        print(
            "| CPU s per call (x echo) | "
            + " | ".join(f"{r.cpu_per_call:.2f} ({r.cpu_per_call / e.cpu_per_call:.1f}x)" for r, e in runs)
            + " | |"
        )
    print(f"\n### Capacity: calls per core at which each stage's p95 doubles ({args.database})\n")
    print("| STT | stage | p95 ms at the lowest load | p95 doubles at |")
    print("|---|---|---:|---|")
    for line in table:
        print(line)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--stt", nargs="*", default=["whisper", "null"], help="whisper, null, deepgram")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--capacity",
        nargs="*",
        metavar="STT:N,N,...",
        help="sweep call counts per STT (e.g. null:10,50,100,200) and print the capacity table",
    )
    parser.add_argument("--profile", type=Path, help="record a py-spy profile of the server into this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        parts = [synth(line, work / f"l{i}.wav") for i, line in enumerate(SUPPORT_CALL_LINES)]
        wavs = {"speech": concat_wavs(parts, work / "call.wav", gap_s=1.2)}
        wavs["tones"] = deepgram_wav(work / "tones.wav")
        print(f"# Callpilot pipeline benchmark: {os.cpu_count()} CPUs, {args.database}")
        if args.capacity:
            await capacity(args, wavs, work)
            return
        echo = await bench_echo(wavs["speech"], args.calls)
        for stt in args.stt:
            print_figures(await bench_stt(stt, wavs, args.calls, work, args.database, args.profile), echo)
        print_figures(echo, None)


if __name__ == "__main__":
    asyncio.run(main())
