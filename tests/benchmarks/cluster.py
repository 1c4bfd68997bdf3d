"""Many instances: cross-instance fan-out, auth overhead, Redis memory (prints figures; not a test).

Two real `callpilot serve` processes (null STT, auth on) on a throw-away
PostgreSQL database and a throw-away redis-server, as deployed:

  fan-out     N calls streamed into server A as text turns; W watchers
              (WatchCall, agent key) spread over the calls on server B, then
              the same with the watchers on A. Latency = event emitted
              (CallEvent.time, stamped by the owner) -> received by the
              watcher in this process; only events emitted after the
              watcher joined are counted (no replay).
  auth/RPC    `GetCall` in a loop against B (auth on) and against a third
              server C with CALLPILOT_AUTH=off (same database and Redis),
              both fresh, runs interleaved: client latency and server CPU
              per RPC; and the server's own Authenticator timed in process.
  auth/audio  StreamCalls of 30 s of audio (20 ms messages, sent as fast
              as the server takes them) into B and into C, interleaved:
              server CPU per call and per message. Auth runs once per RPC,
              not per message.
  Redis       INFO used_memory before, during (every call live) and after
              the calls; MEMORY USAGE of each call's stream key.

    .venv/bin/python tests/benchmarks/cluster.py --calls 20 --watchers 100

The load generator runs on the same machine as the servers, PostgreSQL and
Redis, so its own scheduling is in every latency (treat p95/p99 as upper
bounds on a loaded machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as aioredis
from benchmarks.figures import pct, row
from callpilot.client import AsyncCallpilot, WavFile
from callpilot.v1 import call_pb2, common_pb2
from redis_support import RedisProcess
from support import (
    VENV_BIN,
    ServerProcess,
    create_pg_database,
    drop_pg_database,
    silence_wav,
)

TENANT = "bench"
TURNS = [
    "Hi, my name is Maria Garcia.",
    "I am calling about my order 78901.",
    "The headphones arrived broken and I would like a refund please.",
    "Can you also check order 78902 for me?",
]


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create_key(env: dict[str, str], role: str) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "callpilot"), "keys", "create", "--tenant", TENANT, "--role", role],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


async def fanout(
    owner: str, watch_on: str, keys: tuple[str, str], calls: int, watchers: int, redis_url: str
) -> tuple[list[float], list[float], dict[str, float]]:
    """(durable latencies, ephemeral latencies, Redis memory figures) of one run."""
    integrator, agent = keys
    durable: list[float] = []
    ephemeral: list[float] = []
    memory: dict[str, float] = {}
    r = aioredis.from_url(redis_url)
    memory["before"] = float((await r.info("memory"))["used_memory"])
    # A few channels, as a gateway fleet would have; the watchers share them.
    channels = [AsyncCallpilot(watch_on, api_key=agent) for _ in range(4)]
    async with AsyncCallpilot(owner, api_key=integrator) as on_owner:
        streams = [
            on_owner.stream_call(
                None,
                call_pb2.CallConfig(customer_hint=call_pb2.CustomerHint(customer_id="C-1001")),
                end_when_audio_ends=False,
            )
            for _ in range(calls)
        ]
        call_ids: list[str] = []
        iters = []
        for s in streams:
            await s.__aenter__()
            it = s.__aiter__()
            while True:
                event = await anext(it)
                if event.HasField("call_started"):
                    call_ids.append(event.call_id)
                    break
            iters.append(it)

        async def drain(it) -> None:  # type: ignore[no-untyped-def]
            async for _ in it:
                pass

        drains = [asyncio.create_task(drain(it)) for it in iters]
        ready = asyncio.Semaphore(0)

        async def watch(i: int) -> None:
            cp = channels[i % len(channels)]
            joined = 0.0
            async for event in cp.watch_call(call_ids[i % calls], from_sequence=1, resume=False):
                now = time.time()
                if event.HasField("call_started"):
                    joined = time.time()
                    ready.release()
                    continue
                emitted = event.time.ToNanoseconds() / 1e9
                if joined and emitted > joined:
                    (durable if event.durable else ephemeral).append(now - emitted)

        watch_tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
        async with asyncio.timeout(120):
            for _ in range(watchers):
                await ready.acquire()

        # Calls are not in lock-step: each call's turns are 1.5 s apart, the calls spread over that.
        async def talk(i: int, s) -> None:  # type: ignore[no-untyped-def]
            await asyncio.sleep(i * 1.5 / calls)
            for turn in TURNS:
                await s.send_text(common_pb2.SPEAKER_ROLE_CUSTOMER, turn)
                await asyncio.sleep(1.5)

        await asyncio.gather(*(talk(i, s) for i, s in enumerate(streams)))

        def ours(key: bytes) -> bool:
            """A key of this run's calls (earlier runs' ended streams are still there)."""
            return any(call_id in key.decode() for call_id in call_ids)

        memory["during"] = float((await r.info("memory"))["used_memory"])
        keys_live = [k async for k in r.scan_iter(match=f"cp:{TENANT}:*") if ours(k)]
        usage = [await r.memory_usage(k) or 0 for k in keys_live]
        streams_usage = [
            await r.memory_usage(k) or 0 for k in keys_live if (await r.type(k)) in (b"stream", "stream")
        ]
        memory["keys per call"] = len(keys_live) / calls
        memory["all keys per call, live"] = sum(usage) / calls
        memory["stream per call, live"] = statistics.mean(streams_usage) if streams_usage else 0.0
        for s in streams:
            await s.end()
        async with asyncio.timeout(120):
            await asyncio.gather(*watch_tasks, *drains)
        for s in streams:
            await s.__aexit__(None, None, None)
        ended = [k async for k in r.scan_iter(match=f"cp:{TENANT}:*") if ours(k)]
        ended_streams = [
            await r.memory_usage(k) or 0 for k in ended if (await r.type(k)) in (b"stream", "stream")
        ]
        memory["stream per call, ended"] = statistics.mean(ended_streams) if ended_streams else 0.0
        memory["after"] = float((await r.info("memory"))["used_memory"])
    for cp in channels:
        await cp.close()
    # Let the ended streams expire between runs? They expire in minutes; delete them instead.
    if ended:
        await r.delete(*ended)
    await r.aclose()
    return durable, ephemeral, memory


async def rpc_cost(address: str, pid: int, key: str, call_id: str, n: int) -> tuple[list[float], float]:
    """(client latencies, server CPU seconds per RPC) of n sequential GetCall."""
    async with AsyncCallpilot(address, api_key=key) as cp:
        for _ in range(50):  # warm the channel and the key cache
            await cp.get_call(call_id)
        lat: list[float] = []
        cpu0 = proc_cpu(pid)
        for _ in range(n):
            t = time.perf_counter()
            await cp.get_call(call_id)
            lat.append(time.perf_counter() - t)
        return lat, (proc_cpu(pid) - cpu0) / n


async def auth_in_process(url: str, key: str, n: int) -> tuple[float, float]:
    """(µs per cached verification, ms per uncached one) of the server's own Authenticator.

    The interceptor runs `authenticate` once per RPC; a key is verified
    against PostgreSQL once per 5 s per instance and served from memory
    in between.
    """
    from callpilot.server.auth.interceptor import Authenticator
    from callpilot.server.auth.keys import ApiKeys
    from callpilot.server.store import Store

    store = await Store.open(url, seed_demo=False, tenant_id=TENANT)
    try:
        metadata = [("authorization", f"Bearer {key}")]
        auth = Authenticator(keys=ApiKeys(store))
        await auth.authenticate(metadata)
        t = time.perf_counter()
        for _ in range(n):
            await auth.authenticate(metadata)
        hit = (time.perf_counter() - t) / n
        misses = 100
        t = time.perf_counter()
        for _ in range(misses):
            await Authenticator(keys=ApiKeys(store)).authenticate(metadata)
        miss = (time.perf_counter() - t) / misses
        return hit * 1e6, miss * 1e3
    finally:
        await store.close()


async def audio_cost(address: str, pid: int, key: str, wav: Path) -> float:
    """Server CPU seconds of one StreamCall of `wav`, sent as fast as the server takes it."""
    async with AsyncCallpilot(address, api_key=key) as cp:
        cpu0 = proc_cpu(pid)
        async with cp.stream_call(WavFile(wav, realtime=False)) as call:
            async for event in call:
                if event.HasField("call_ended"):
                    break
        await asyncio.sleep(0.5)
        return proc_cpu(pid) - cpu0


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--rpcs", type=int, default=1000)
    parser.add_argument("--audio-runs", type=int, default=5)
    args = parser.parse_args()
    url = await create_pg_database()
    redis = RedisProcess()
    redis.start()
    procs: list[ServerProcess] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            env = {
                "CALLPILOT_DATABASE_URL": url,
                "CALLPILOT_DATA_DIR": str(work),
                "CALLPILOT_STT": "null",
                "CALLPILOT_REDIS_URL": redis.url,
                "CALLPILOT_AUTH": "on",
                "CALLPILOT_TENANT_ID": TENANT,
                # The benchmark is the only tenant: keep the per-tenant limits out of the figures.
                "CALLPILOT_RATE_LIMIT_PER_S": "100000",
                "CALLPILOT_RATE_LIMIT_BURST": "100000",
            }
            keys = (create_key(env, "integrator"), create_key(env, "agent"))
            a = ServerProcess(env, work / "a.log").start()
            b = ServerProcess(env, work / "b.log").start()
            c = ServerProcess({**env, "CALLPILOT_AUTH": "off"}, work / "c.log").start()
            procs += [a, b, c]
            print(
                f"# Callpilot cluster benchmark: {args.calls} calls on A, {args.watchers} watchers, "
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}\n"
            )
            # Auth first, on two fresh and otherwise identical servers: B (auth on) and C (auth off),
            # their runs interleaved so that the machine's changing load falls on both alike.
            wav = silence_wav(work / "silence.wav", 30.0)
            messages = 30.0 / 0.02
            on_runs: list[float] = []
            off_runs: list[float] = []
            for _ in range(args.audio_runs):
                on_runs.append(await audio_cost(b.address, b.proc.pid, keys[0], wav))  # type: ignore[union-attr]
                off_runs.append(await audio_cost(c.address, c.proc.pid, "", wav))  # type: ignore[union-attr]
            async with AsyncCallpilot(b.address, api_key=keys[1]) as cp:
                call_id = (await cp.list_calls(page_size=1)).calls[0].call_id
            on_lat: list[float] = []
            off_lat: list[float] = []
            on_cpu: list[float] = []
            off_cpu: list[float] = []
            for _ in range(5):
                lat, cpu = await rpc_cost(b.address, b.proc.pid, keys[1], call_id, args.rpcs // 5)  # type: ignore[union-attr]
                on_lat += lat
                on_cpu.append(cpu)
                lat, cpu = await rpc_cost(c.address, c.proc.pid, "", call_id, args.rpcs // 5)  # type: ignore[union-attr]
                off_lat += lat
                off_cpu.append(cpu)
            hit_us, miss_ms = await auth_in_process(url, keys[1], 20_000)
            print(
                f"| GetCall x {args.rpcs}, interleaved | p50 ms | p99 ms | server CPU per RPC |\n|---|---|---|---|"
            )
            for label, lat, cpus in (("auth on (B)", on_lat, on_cpu), ("auth off (C)", off_lat, off_cpu)):
                print(
                    f"| {label} | {pct(lat, 0.5) * 1000:.2f} | {pct(lat, 0.99) * 1000:.2f} | "
                    f"{statistics.mean(cpus) * 1e6:.0f} µs |"
                )
            print("\n| the server's Authenticator, in process | per RPC |\n|---|---|")
            print(f"| key in the 5 s cache (almost every RPC) | {hit_us:.1f} µs |")
            print(
                f"| key read from PostgreSQL, last use written (once per 5 s per key and instance) | "
                f"{miss_ms:.2f} ms |"
            )
            on_med, off_med = statistics.median(on_runs), statistics.median(off_runs)
            print(
                f"\n| StreamCall, 30 s of audio ({messages:.0f} messages), median of {args.audio_runs} | "
                "server CPU per call | per message |\n|---|---|---|"
            )
            print(f"| auth on (B) | {on_med * 1000:.0f} ms | {on_med / messages * 1e6:.0f} µs |")
            print(f"| auth off (C) | {off_med * 1000:.0f} ms | {off_med / messages * 1e6:.0f} µs |")
            print(
                f"| difference | {(on_med - off_med) / off_med * 100:+.1f} % | runs on: "
                f"{[round(x, 3) for x in on_runs]}, off: {[round(x, 3) for x in off_runs]} |\n"
            )

            results = {}
            for label, watch_on in (("watchers on B (other instance)", b), ("watchers on A (owner)", a)):
                results[label] = await fanout(
                    a.address, watch_on.address, keys, args.calls, args.watchers, redis.url
                )
            print("| emit -> watcher (ms) | n | p50 | p95 | p99 |")
            print("|---|---|---|---|---|")
            for label, (durable, ephemeral, _) in results.items():
                print(row(f"{label}, durable", durable, width=40, decimals=1))
                print(row(f"{label}, live deltas", ephemeral, width=40, decimals=1))
            memory = results["watchers on B (other instance)"][2]
            print("\n| Redis memory | value |\n|---|---|")
            print(
                f"| used_memory during, minus before, per live call | {(memory['during'] - memory['before']) / args.calls / 1024:.1f} KiB |"
            )
            print(f"| keys per live call | {memory['keys per call']:.1f} |")
            print(
                f"| MEMORY USAGE of a live call's keys (stream + lease) | {memory['all keys per call, live'] / 1024:.1f} KiB |"
            )
            print(
                f"| MEMORY USAGE of a live call's stream ({len(TURNS)} turns) | {memory['stream per call, live'] / 1024:.1f} KiB |"
            )
            print(
                f"| MEMORY USAGE of an ended call's stream (kept 5 min) | {memory['stream per call, ended'] / 1024:.1f} KiB |"
            )

            print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        for p in procs:
            p.stop()
        redis.stop()
        await drop_pg_database(url)


if __name__ == "__main__":
    asyncio.run(main())
