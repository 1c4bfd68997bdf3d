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
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
import urllib.request
import wave
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import SUPPORT_CALL_LINES, row
from callpilot.client import AsyncCallpilot, WavFile
from support import ServerProcess, concat_wavs, synth


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


async def bench_server(stt: str, wav: Path, calls: int, workdir: Path) -> None:
    metrics_port = 9464 + (1 if stt == "null" else 0)
    env = {
        "CALLPILOT_STT": stt,
        "CALLPILOT_DATA_DIR": str(workdir / stt),
        "CALLPILOT_METRICS_PORT": str(metrics_port),
        "CALLPILOT_LOG_LEVEL": "WARNING",
    }
    server = ServerProcess(env, workdir / f"server-{stt}.log").start()
    try:
        assert server.proc is not None
        cpu0, rss0 = proc_stats(server.proc.pid)
        started = time.monotonic()
        stages = await run_calls(server.address, wav, calls)
        wall = time.monotonic() - started
        cpu1, rss1 = proc_stats(server.proc.pid)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
    finally:
        server.stop()
    _total, buckets = histogram_quantiles(text, "callpilot_frame_to_stt_seconds")
    print(f"\n### STT = {stt}, {calls} concurrent real-time calls ({wall:.1f} s wall)\n")
    print("| stage                  |     n |  p50 ms  |  p95 ms  |  p99 ms  |")
    print("|------------------------|------:|---------:|---------:|---------:|")
    if buckets:
        n = buckets[-1][1]
        print(
            f"| {'frame -> STT input':<22} | {n:>5} | {bucket_quantile(buckets, 0.5) * 1000:>8.2f} | "
            f"{bucket_quantile(buckets, 0.95) * 1000:>8.2f} | {bucket_quantile(buckets, 0.99) * 1000:>8.2f} |"
        )
    for name, values in stages.items():
        print(row(name, values))
    print(
        f"\nserver CPU per call: {(cpu1 - cpu0) / calls:.2f} s over a {wall / 1:.1f} s call; "
        f"RSS growth per call: {(rss1 - rss0) / calls / 2**20:.1f} MiB (server RSS {rss1 / 2**20:.0f} MiB)"
    )


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


async def bench_echo(wav: Path, calls: int) -> None:
    import subprocess

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
    print(f"\n### Baseline: bare grpc.aio echo of the same 20 ms frames, {calls} concurrent calls\n")
    print("| stage                  |     n |  p50 ms  |  p95 ms  |  p99 ms  |")
    print("|------------------------|------:|---------:|---------:|---------:|")
    print(row("frame round trip", rtts))
    print(f"\necho server CPU per call: {(cpu1 - cpu0) / calls:.2f} s")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--stt", nargs="*", default=["whisper", "null"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        parts = [synth(line, work / f"l{i}.wav") for i, line in enumerate(SUPPORT_CALL_LINES)]
        wav = concat_wavs(parts, work / "call.wav", gap_s=1.2)
        print(f"# Callpilot pipeline benchmark: {args.calls} calls, {os.cpu_count()} CPUs")
        for stt in args.stt:
            await bench_server(stt, wav, args.calls, work)
        await bench_echo(wav, args.calls)


if __name__ == "__main__":
    asyncio.run(main())
