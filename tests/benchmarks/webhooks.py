"""Webhook delivery latency after call end (prints figures; not a test).

An in-process server (text turns, no speech model) with one webhook endpoint
subscribed to call.ended, and a loopback aiohttp receiver that verifies each
request with the standardwebhooks library. For each call:

  ended event -> webhook      the client received the call_ended event -> the receiver
                              accepted the verified call.ended webhook
  end sent -> webhook         the client sent end-of-call -> the same webhook

Server, client and receiver share one event loop, so the figures include
their contention; the outbox is read with the default settings (the worker
is woken by the write, and polls every second otherwise).

    .venv/bin/python tests/benchmarks/webhooks.py [--calls 50] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import row
from callpilot.client import AsyncCallpilot
from callpilot.client.webhooks import Webhooks
from callpilot.server.app import CallpilotServer
from callpilot.server.config import Settings
from callpilot.v1 import call_pb2, common_pb2

# Loaded by path: next to this script, `webhooks` is this script, not tests/webhooks.
_spec = importlib.util.spec_from_file_location(
    "webhook_receiver", Path(__file__).parents[1] / "webhooks/receiver.py"
)
assert _spec is not None and _spec.loader is not None
_receiver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_receiver)
Receiver = _receiver.Receiver


class TimedReceiver(Receiver):
    """Records when each call's call.ended webhook was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    async def _handle(self, request):  # type: ignore[no-untyped-def]
        response = await super()._handle(request)
        for payload in self.messages.values():
            call_id = payload["data"]["call_id"]
            self.arrived.setdefault(call_id, time.perf_counter())
        return response


async def main(calls: int, database_url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings.from_env({}, port=0, data_dir=Path(tmp), database_url=url, stt="null")
        server = CallpilotServer(settings)
        await server.start()
        receiver = await TimedReceiver().start()
        after_event: list[float] = []
        after_end: list[float] = []
        try:
            async with AsyncCallpilot(f"127.0.0.1:{server.port}") as cp:
                _, receiver.secret = await Webhooks(cp).create(receiver.url, ["call.ended"])
                for _ in range(calls):
                    async with cp.stream_call(None, call_pb2.CallConfig(), end_when_audio_ends=False) as call:
                        await call.send_text(
                            common_pb2.SPEAKER_ROLE_CUSTOMER, "Hi, I need a refund for order 78901."
                        )
                        sent = time.perf_counter()
                        await call.end()
                        ended_at = 0.0
                        call_id = ""
                        async for event in call:
                            call_id = event.call_id
                            if event.HasField("call_ended"):
                                ended_at = time.perf_counter()
                    async with asyncio.timeout(30):
                        while call_id not in receiver.arrived:
                            receiver.changed.clear()
                            await receiver.changed.wait()
                    after_event.append(receiver.arrived[call_id] - ended_at)
                    after_end.append(receiver.arrived[call_id] - sent)
        finally:
            await receiver.stop()
            await server.stop()
    assert receiver.bad_signatures == 0 and set(receiver.accepted.values()) == {1}
    backend = url.split(":", 1)[0]
    print(f"webhook delivery latency, {calls} calls, {backend} (ms)\n")
    print(f"| {'stage':<22} | {'n':>5} | {'p50':>8} | {'p95':>8} | {'p99':>8} |")
    print(f"|{'-' * 24}|{'-' * 7}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    print(row("ended event -> webhook", after_event))
    print(row("end sent -> webhook", after_end))


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.database_url))
