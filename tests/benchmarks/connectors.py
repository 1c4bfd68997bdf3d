"""Contact-center connector benchmark (prints figures; not a test).

For each connector (Twilio Media Streams, Genesys AudioHook) and each count
N of concurrent calls, N real-time calls (20 ms μ-law frames, both parties,
synthesised speech) stream into one gateway process whose server runs the
null STT, so the figures are the gateway's. Reported per N:

* gateway CPU in % of one core, total and per call;
* added latency: a media frame arriving at the gateway (websocket message
  read) -> the SDK taking the audio for StreamCall, p50/p95/p99 (for Twilio
  this includes waiting for the other track's packet of the same instant);
* event-loop lag of the gateway (a 10 ms timer's overshoot) p50/p99/max.

The largest N whose loop lag p99 stays under 20 ms is the capacity figure.
The load runs in two separate processes; everything shares the machine's
cores, which the figures include.

    .venv/bin/python tests/benchmarks/connectors.py --calls 10,25,50,100 --seconds 12
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
import urllib.request
from pathlib import Path
from typing import Any

# This script is named like the tests' `connectors` package: take its own folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import pct  # noqa: E402 (after the path fix above)
from support import ServerProcess, free_port, synth  # noqa: E402

TOKEN = "bench-twilio-token"
API_KEY = "cp_bench_key"
LAG_PERIOD_S = 0.010
# Workers import the tests' helpers and this worktree's code (what .envrc.sh put on the path).
PYTHONPATH = os.pathsep.join(
    filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")])
)
CUSTOMER_LINE = "Hi, my name is Maria Garcia and I am calling about my order seven eight nine oh one."
AGENT_LINE = "Thank you Maria, let me look up that order for you."


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


# ------------------------------------------------------------ gateway worker


def serve_gateway(port: int, server: str) -> None:
    """The real gateway app plus probes: /bench/lag (loop lag) and /bench/latency (connector latency)."""
    from aiohttp import web
    from callpilot.gateway.app import create_app
    from callpilot.gateway.config import GatewaySettings
    from callpilot.gateway.connectors.bridge import STATS

    app = create_app(GatewaySettings(host="127.0.0.1", port=port, server=server))
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

    async def read(request: web.Request) -> web.Response:
        source = lags if request.path.endswith("lag") else STATS.samples
        values = list(source)
        if request.query.get("reset"):
            source.clear()
        return web.json_response(values)

    app.cleanup_ctx.append(probe)
    app.router.add_get("/bench/lag", read)
    app.router.add_get("/bench/latency", read)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        print=lambda _: print(f"callpilot gateway: serving on 127.0.0.1:{port}", flush=True),
    )


# --------------------------------------------------------------- load worker


async def twilio_call(base: str, customer: bytes, agent: bytes, stop_at: float, ready: asyncio.Event) -> None:
    from connectors.twilio_client import FRAME_BYTES, MediaStream

    stream = MediaStream(base, TOKEN)
    await stream.open()
    await stream.start({"callpilot_key": API_KEY, "caller": "+15550100101"})
    await ready.wait()
    begin, i = time.monotonic(), 0
    n = len(customer) // FRAME_BYTES
    while time.monotonic() < stop_at:
        k = i % n
        for track, audio in (("inbound", customer), ("outbound", agent)):
            await stream.media(track, i * 20, audio[k * FRAME_BYTES : (k + 1) * FRAME_BYTES])
        i += 1
        await asyncio.sleep(max(0.0, begin + i * 0.02 - time.monotonic()))
    await stream.stop()
    await stream.closed(60)
    await stream.close()


async def audiohook_call(
    base: str, customer: bytes, agent: bytes, stop_at: float, ready: asyncio.Event
) -> None:
    from connectors.audiohook_client import AudioHookClient

    client = AudioHookClient(base)
    await client.connect(client.headers(API_KEY))
    assert (await client.open())["type"] == "opened"
    stereo = bytearray(2 * len(customer))
    stereo[0::2], stereo[1::2] = customer, agent
    await ready.wait()
    begin, i = time.monotonic(), 0
    n = len(stereo) // 320
    while time.monotonic() < stop_at:
        k = i % n
        await client.audio(bytes(stereo[k * 320 : (k + 1) * 320]))
        i += 1
        await asyncio.sleep(max(0.0, begin + i * 0.02 - time.monotonic()))
    await client.close_session()
    await client.close()


async def run_load(kind: str, base: str, calls: int, seconds: float, customer: bytes, agent: bytes) -> None:
    ready = asyncio.Event()
    fn = twilio_call if kind == "twilio" else audiohook_call
    # Every call opens (and its StreamCall starts), then all stream together until the deadline.
    deadline = time.monotonic() + seconds + 8.0 + calls * 0.05
    tasks = [asyncio.create_task(fn(base, customer, agent, deadline, ready)) for _ in range(calls)]
    await asyncio.sleep(2.0 + calls * 0.05)
    print("CONNECTED", flush=True)
    ready.set()
    await asyncio.gather(*tasks)
    print("DONE", flush=True)


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
            env={
                **os.environ,
                "PYTHONPATH": PYTHONPATH,
                "CALLPILOT_TWILIO_AUTH_TOKEN": TOKEN,
            },
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "serving on" not in line:
            raise RuntimeError(f"gateway did not start: {line!r}; see {log}")

    def read(self, what: str, reset: bool = False) -> list[float]:
        return list(get_json(f"{self.base}/bench/{what}{'?reset=1' if reset else ''}"))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def measure(
    gateway: Gateway, server_pid: int, kind: str, calls: int, seconds: float, audio_dir: Path
) -> dict[str, Any]:
    halves = [calls // 2, calls - calls // 2] if calls > 1 else [calls]
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--load-worker",
                kind,
                gateway.base,
                str(n),
                str(seconds),
                str(audio_dir),
            ],
            stdout=subprocess.PIPE,
            env=env,
        )
        for n in halves
        if n
    ]
    for w in workers:
        assert w.stdout is not None
        if w.stdout.readline().decode().strip() != "CONNECTED":
            raise RuntimeError("a load worker failed to start its calls")
    time.sleep(2.0)  # warm up
    cpu0, server0 = proc_cpu(gateway.proc.pid), proc_cpu(server_pid)
    gateway.read("lag", reset=True)
    gateway.read("latency", reset=True)
    t0 = time.monotonic()
    time.sleep(seconds)
    cpu1, server1 = proc_cpu(gateway.proc.pid), proc_cpu(server_pid)
    elapsed = time.monotonic() - t0
    lags = [v * 1000 for v in gateway.read("lag")]
    latency = [v * 1000 for v in gateway.read("latency")]
    for w in workers:
        w.communicate(timeout=180)
        if w.returncode != 0:
            raise RuntimeError(f"a load worker failed ({w.returncode}); see the gateway log")
    time.sleep(2.0)  # calls end, finals flush
    core = 100 * (cpu1 - cpu0) / elapsed
    return {"core": core, "server": 100 * (server1 - server0) / elapsed, "lags": lags, "latency": latency}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--gateway-worker":
        serve_gateway(int(sys.argv[2]), sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--load-worker":
        customer = Path(sys.argv[6], "customer.ul").read_bytes()
        agent = Path(sys.argv[6], "agent.ul").read_bytes()[: len(customer)].ljust(len(customer), b"\xff")
        asyncio.run(run_load(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), customer, agent))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", default="10,25,50,100", help="comma-separated concurrent call counts")
    parser.add_argument("--seconds", type=float, default=12.0, help="measurement window per count")
    parser.add_argument("--connectors", default="twilio,audiohook")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="callpilot-connectors-bench-"))
    for name, line, voice in (("customer", CUSTOMER_LINE, "flite:kal"), ("agent", AGENT_LINE, "flite:slt")):
        wav = synth(line, tmp / f"{name}.wav", voice=voice, rate=8000)
        subprocess.run(
            ["sox", "-D", str(wav), "-e", "mu-law", "-t", "raw", str(tmp / f"{name}.ul")],
            check=True,
            timeout=60,
        )
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    server = ServerProcess(
        {"CALLPILOT_STT": "null", "CALLPILOT_DATA_DIR": str(tmp / "null"), "CALLPILOT_MAX_CALLS": "1000"},
        tmp / "server-null.log",
    ).start()
    gateway = Gateway(server.address, tmp / "gateway.log")
    try:
        for kind in args.connectors.split(","):
            print(f"\n## {kind}: concurrent calls per gateway process (null STT on the server)\n")
            print(
                "| calls | gateway CPU (% of a core) | CPU per call | frame -> StreamCall p50 | p95 | p99 "
                "| loop lag p50 | p99 | max | server CPU |"
            )
            print("|------:|------:|------:|------:|------:|------:|------:|------:|------:|------:|")
            capacity = 0
            for calls in [int(x) for x in args.calls.split(",")]:
                assert server.proc is not None
                r = measure(gateway, server.proc.pid, kind, calls, args.seconds, tmp)
                lags, lat = r["lags"], r["latency"]
                if pct(lags, 0.99) < 20.0:
                    capacity = max(capacity, calls)
                print(
                    f"| {calls} | {r['core']:.1f} | {r['core'] / calls:.2f} % "
                    f"| {pct(lat, 0.5):.2f} ms | {pct(lat, 0.95):.2f} ms | {pct(lat, 0.99):.2f} ms "
                    f"| {pct(lags, 0.5):.2f} ms | {pct(lags, 0.99):.2f} ms | {max(lags, default=float('nan')):.1f} ms "
                    f"| {r['server']:.0f} % |",
                    flush=True,
                )
            print(f"\n{kind}: largest tested count with loop lag p99 < 20 ms: {capacity or 'none'}")
    finally:
        gateway.stop()
        server.stop()
    print(f"\nlogs: {tmp}")


if __name__ == "__main__":
    main()
