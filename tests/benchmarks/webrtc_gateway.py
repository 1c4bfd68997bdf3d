"""WebRTC gateway benchmark (prints figures; not a test).

Two parts, both on loopback ICE:

1. Capacity: N concurrent WebRTC legs (N/2 calls, customer + agent each,
   every leg an aiortc peer sending speech in real time and receiving the
   other party's relayed audio) against one gateway process, for a range
   of N. The server runs the null STT (real VAD endpointing, no decoding)
   so the figures are the gateway's. Reported per N: the gateway's CPU (in
   % of one core, total and per leg), its RSS, and the lag of its event
   loop (a 10 ms timer's overshoot, sampled inside the gateway process)
   p50/p99/max. The load peers run in two separate processes; all of it
   shares the machine's cores, which the figures include.

2. Mouth-to-transcript latency with the real Whisper STT: the time from the
   last sample of an utterance leaving the customer's peer to its final
   transcript arriving on a WatchCall client, split into
   mouth -> speech end detected (transport, jitter buffer, gateway, VAD's
   500 ms of silence) and speech end -> final (Whisper).

    .venv/bin/python tests/benchmarks/webrtc_gateway.py --legs 2,8,16,24 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import pct
from support import ServerProcess, concat_wavs, synth
from webrtc.peer import Party, WavTrack, http_json
from webrtc.processes import free_port

CUSTOMER_LINES = [
    "Hi, my name is Maria Garcia.",
    "I am calling about my order seven eight nine oh one.",
    "The headphones arrived broken and I would like a refund please.",
]
AGENT_LINE = "Thank you Maria, let me look up that order for you."
LAG_PERIOD_S = 0.010


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds of the process and its threads, RSS bytes), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------ gateway worker


def serve_gateway(port: int, server: str) -> None:
    """The real gateway app plus an event-loop lag probe at /bench/lag (this process only)."""
    from aiohttp import web
    from callpilot.gateway.app import create_app
    from callpilot.gateway.config import GatewaySettings

    settings = GatewaySettings(host="127.0.0.1", port=port, server=server, ice_loopback=True)
    app = create_app(settings)
    lags: collections.deque[float] = collections.deque(maxlen=200_000)

    async def probe(app: web.Application) -> Any:
        async def run() -> None:
            while True:
                start = time.perf_counter()
                await asyncio.sleep(LAG_PERIOD_S)
                lags.append(time.perf_counter() - start - LAG_PERIOD_S)

        task = asyncio.create_task(run())
        yield
        task.cancel()

    async def read_lag(request: web.Request) -> web.Response:
        values = list(lags)
        if request.query.get("reset"):
            lags.clear()
        return web.json_response(values)

    app.cleanup_ctx.append(probe)
    app.router.add_get("/bench/lag", read_lag)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        print=lambda _: print(f"callpilot gateway: serving on 127.0.0.1:{port}", flush=True),
    )


# --------------------------------------------------------------- load worker


async def run_load(base: str, spec: list[list[str]], seconds: float) -> None:
    """Peers for `spec` ([call_id, role, wav]); prints CONNECTED, then stats as JSON."""
    from callpilot.gateway.webrtc import loopback

    loopback.enable()
    parties = [
        Party(base, call_id, role, WavTrack(Path(wav), lead_silence_s=0.2)) for call_id, role, wav in spec
    ]
    for p in parties:
        status, body = await p.join()
        if status != 200:
            raise SystemExit(f"offer failed: {status} {body}")
    await asyncio.wait_for(asyncio.gather(*(p.connected.wait() for p in parties)), 60)
    print("CONNECTED", flush=True)
    await asyncio.sleep(seconds)
    stats = {
        "received": [p.frames_received for p in parties],
        "loud": [p.loud_frames_received for p in parties],
    }
    for p in parties:
        await p.hang_up()
        await p.close()
    print(json.dumps(stats), flush=True)


# ----------------------------------------------------------------- benchmark


class Gateway:
    def __init__(self, server: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--gateway-worker", str(self.port), server],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "serving on" not in line:
            raise RuntimeError(f"gateway did not start: {line!r}; see {log}")

    def lag(self, reset: bool = False) -> list[float]:
        return list(http_json(f"{self.base}/bench/lag{'?reset=1' if reset else ''}")[1])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def capacity(
    server: ServerProcess, legs_list: list[int], seconds: float, wavs: dict[str, Path], logs: Path
) -> None:
    gateway = Gateway(server.address, logs / "bench-gateway.log")
    print("\n## Capacity: concurrent WebRTC legs per gateway process (null STT on the server)\n")
    print(
        "| legs | calls | gateway CPU (% of a core) | CPU per leg | RSS (MiB) | loop lag p50 | p99 | max | relayed frames/leg/s |"
    )
    print(
        "|-----:|------:|--------------------------:|------------:|----------:|-------------:|----:|----:|---------------------:|"
    )
    try:
        for legs in legs_list:
            calls = max(1, legs // 2)
            spec: list[list[str]] = []
            for _ in range(calls):
                status, body = http_json(f"{gateway.base}/api/calls/start", {})
                assert status == 200, body
                spec.append([body["call_id"], "customer", str(wavs["customer"])])
                spec.append([body["call_id"], "agent", str(wavs["agent"])])
            workers = []
            halves = [spec[0::2], spec[1::2]] if len(spec) > 1 else [spec]
            for part in halves:
                workers.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            __file__,
                            "--load-worker",
                            gateway.base,
                            json.dumps(part),
                            str(seconds),
                        ],
                        stdout=subprocess.PIPE,
                        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                    )
                )
            for w in workers:
                assert w.stdout is not None
                if w.stdout.readline().decode().strip() != "CONNECTED":
                    raise RuntimeError("a load worker failed to connect its peers")
            time.sleep(1.0)  # let every pipeline warm up
            cpu0, _ = proc_stats(gateway.proc.pid)
            gateway.lag(reset=True)
            t0 = time.monotonic()
            time.sleep(max(1.0, seconds - 3.0))
            cpu1, rss = proc_stats(gateway.proc.pid)
            elapsed = time.monotonic() - t0
            lags = [v * 1000 for v in gateway.lag()]
            received: list[int] = []
            for w in workers:
                out, _ = w.communicate(timeout=120)
                received += json.loads(out.decode().strip().splitlines()[-1])["received"]
            core = 100 * (cpu1 - cpu0) / elapsed
            per_s = sum(received) / len(received) / seconds if received else 0.0
            print(
                f"| {legs:>4} | {calls:>5} | {core:>25.1f} | {core / legs:>10.2f} % | {rss / 2**20:>9.0f} "
                f"| {pct(lags, 0.5):>9.2f} ms | {pct(lags, 0.99):.2f} ms | {max(lags, default=float('nan')):.1f} ms "
                f"| {per_s:>20.1f} |",
                flush=True,
            )
            time.sleep(2.0)  # calls end, finals flush
    finally:
        gateway.stop()


def utterance_ends(parts: list[Path], gap_s: float, lead_s: float) -> list[float]:
    """Seconds from the start of the peer's audio to the end of each utterance."""
    ends, t = [], lead_s
    for part in parts:
        with wave.open(str(part), "rb") as wav:
            t += wav.getnframes() / wav.getframerate()
        ends.append(t)
        t += gap_s
    return ends


async def latency(
    server: ServerProcess, parts: list[Path], wav: Path, gap_s: float, calls: int, logs: Path
) -> None:
    from callpilot.client import AsyncCallpilot
    from callpilot.gateway.webrtc import loopback

    loopback.enable()
    gateway = Gateway(server.address, logs / "bench-gateway-latency.log")
    lead = 0.5
    ends = utterance_ends(parts, gap_s, lead)
    mouth_to_final: list[float] = []
    mouth_to_speech_end: list[float] = []
    speech_end_to_final: list[float] = []

    async def one(cp: AsyncCallpilot) -> None:
        status, body = http_json(f"{gateway.base}/api/calls/start", {})
        assert status == 200, body
        call_id = body["call_id"]
        track = WavTrack(wav, lead_silence_s=lead)
        party = Party(gateway.base, call_id, "customer", track)
        assert (await party.join())[0] == 200
        finals: list[tuple[float, Any]] = []

        async def watch() -> None:
            async for event in cp.watch_call(call_id):
                if event.HasField("transcript") and event.transcript.is_final:
                    finals.append((time.time(), event))

        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(party.connected.wait(), 20)
        await asyncio.sleep(len(track.samples) / 16_000 + 8.0)  # all of it said, and the last final
        await party.hang_up()
        await asyncio.wait_for(watcher, 60)
        await party.close()
        for received, event in finals:
            start_offset = event.transcript.start_offset.ToNanoseconds() / 1e9
            # The utterance this final belongs to: the first end after its start.
            end = next((e for e in ends if e > start_offset), None)
            if end is None:
                continue
            mouth = track.first_sent_wall + end
            mouth_to_final.append(received - mouth)
            speech_end = event.timings.speech_end_time.ToNanoseconds() / 1e9
            mouth_to_speech_end.append(speech_end - mouth)
            speech_end_to_final.append(event.time.ToNanoseconds() / 1e9 - speech_end)

    try:
        async with AsyncCallpilot(server.address) as cp:
            await asyncio.gather(*(one(cp) for _ in range(calls)))
    finally:
        gateway.stop()

    def fmt(values: list[float]) -> str:
        ms = [v * 1000 for v in values]
        return f"{len(ms):>3} | {pct(ms, 0.5):>7.0f} | {max(ms, default=float('nan')):>7.0f}"

    print(f"\n## Mouth-to-transcript latency (Whisper base, {calls} concurrent call(s))\n")
    print("| stage | n | p50 (ms) | max (ms) |")
    print("|-------|--:|---------:|---------:|")
    print(f"| mouth -> speech end detected | {fmt(mouth_to_speech_end)} |")
    print(f"| speech end -> final (STT)    | {fmt(speech_end_to_final)} |")
    print(f"| mouth -> final on WatchCall  | {fmt(mouth_to_final)} |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--gateway-worker":
        serve_gateway(int(sys.argv[2]), sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--load-worker":
        asyncio.run(run_load(sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--legs", default="2,8,16,24", help="comma-separated leg counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window per leg count")
    parser.add_argument("--latency-calls", type=int, default=2)
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="callpilot-webrtc-bench-"))
    parts = [synth(line, tmp / f"c{i}.wav") for i, line in enumerate(CUSTOMER_LINES)]
    gap = 2.0
    customer = concat_wavs(parts, tmp / "customer.wav", gap_s=gap)
    agent = synth(AGENT_LINE, tmp / "agent.wav", voice="flite:slt")
    wavs = {"customer": customer, "agent": agent}
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")

    server = ServerProcess(
        {"CALLPILOT_STT": "null", "CALLPILOT_DATA_DIR": str(tmp / "null"), "CALLPILOT_MAX_CALLS": "500"},
        tmp / "server-null.log",
    ).start()
    try:
        capacity(server, [int(x) for x in args.legs.split(",")], args.seconds, wavs, tmp)
    finally:
        server.stop()
    if not args.skip_latency:
        server = ServerProcess(
            {"CALLPILOT_DATA_DIR": str(tmp / "whisper")}, tmp / "server-whisper.log"
        ).start()
        try:
            asyncio.run(latency(server, parts, customer, gap, args.latency_calls, tmp))
        finally:
            server.stop()
    print(f"\nlogs: {tmp}")


if __name__ == "__main__":
    main()
