"""One connector session feeding one StreamCall through the public Python SDK.

Connectors are SDK clients like the WebRTC bridge: they translate a
platform's wire protocol into `StreamCall` and nothing else. A session's
credential (Twilio `customParameters`, AudioHook `X-API-KEY`) is passed to
the SDK as its `api_key`, so the server authorises every call as the tenant
that placed it; one SDK channel is shared by the sessions of one credential
(`ClientPool`).

Audio path and queue policy: the connector hands interleaved audio to
`StreamBridge.feed`, which awaits room in a bounded queue (`QUEUE_CHUNKS`,
about ten seconds of 20 ms chunks). When the server is slower than the line
the websocket reader waits, and the platform's TCP window fills: backpressure,
never a silent drop of accepted audio. `close_audio` flushes the queue and
closes the request stream; the server then ends the call *after* storing the
finals of everything it was sent, and `wait_finished` returns on `call_ended`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import grpc
from aiohttp import WSCloseCode, web
from callpilot.client import AsyncCallpilot, CallpilotError, CallStream, IteratorAudio
from callpilot.gateway.upstream import Upstream
from callpilot.v1 import call_pb2

QUEUE_CHUNKS = 500
"""Audio chunks buffered per call between the connector and the SDK (backpressure beyond)."""

LATENCY_SAMPLES = 20_000
"""Arrival-to-StreamCall latencies kept (newest) for the benchmark's percentiles."""

log = logging.getLogger("callpilot.gateway.connectors")

AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


class ConnectorLog(logging.LoggerAdapter[logging.Logger]):
    """Log lines that name the connector session (`grep` a stream or session id for its story)."""

    def __init__(self, logger: logging.Logger, session: str) -> None:
        super().__init__(logger, {"session": session})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"{self.extra['session'] if self.extra else '?'}: {msg}", kwargs


class LatencyStats:
    """Seconds from a media frame arriving at the gateway to the SDK taking it for StreamCall."""

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    def record(self, arrived: float, now: float) -> None:
        self.samples.append(now - arrived)


STATS = LatencyStats()
"""Process-wide latency samples (read by tests/benchmarks/connectors.py)."""


class ClientPool:
    """One `AsyncCallpilot` (one HTTP/2 channel) per credential, closed when its last session ends."""

    def __init__(self, server: str | Upstream) -> None:
        self.upstream = server if isinstance(server, Upstream) else Upstream(server)
        self._clients: dict[str, tuple[AsyncCallpilot, int]] = {}

    def acquire(self, api_key: str) -> AsyncCallpilot:
        client, refs = self._clients.get(api_key, (None, 0))
        if client is None:
            client = self.upstream.client(api_key)
        self._clients[api_key] = (client, refs + 1)
        return client

    async def release(self, api_key: str) -> None:
        client, refs = self._clients[api_key]
        if refs > 1:
            self._clients[api_key] = (client, refs - 1)
            return
        del self._clients[api_key]
        await client.close()

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client, _ in clients.values():
            await client.close()


class BridgeError(Exception):
    """The server refused or failed the call; `unauthorized` when the credential was the reason."""

    def __init__(self, message: str, *, unauthorized: bool = False) -> None:
        super().__init__(message)
        self.unauthorized = unauthorized


class StreamBridge:
    """A StreamCall fed by a connector; `start`, then `feed`, then `close_audio` and `wait_finished`."""

    def __init__(
        self,
        pool: ClientPool,
        api_key: str,
        config: call_pb2.CallConfig,
        log: ConnectorLog,
        *,
        stats: LatencyStats = STATS,
    ) -> None:
        self.call_id = ""
        self.end_reason = ""
        self.failure: BridgeError | None = None
        self._pool = pool
        self._api_key = api_key
        self._config = config
        self._log = log
        self._stats = stats
        self._queue: asyncio.Queue[tuple[bytes, tuple[float, ...]] | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._started.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        self._finished = asyncio.Event()
        self._audio_closed = False
        self._stream: CallStream | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: AsyncCallpilot | None = None

    async def start(self, timeout: float) -> str:
        """Open the StreamCall and wait for `call_started`; returns the call id or raises BridgeError."""
        self._client = self._pool.acquire(self._api_key)
        # The audio source carries the audio config; the SDK merges it into the call config.
        config = call_pb2.CallConfig()
        config.CopyFrom(self._config)
        config.ClearField("audio")
        self._stream = self._client.stream_call(
            IteratorAudio(self._chunks(), self._config.audio), config, end_when_audio_ends=True
        )
        self._task = asyncio.create_task(self._consume(self._stream))
        try:
            return await asyncio.wait_for(asyncio.shield(self._started), timeout)
        except TimeoutError:
            await self.abort()
            raise BridgeError("the Callpilot server did not start the call in time") from None

    async def feed(self, stereo: bytes, arrivals: tuple[float, ...] = ()) -> None:
        """Queue audio for the call (waits while the queue is full); ignored once the call is over."""
        if stereo and not self._audio_closed and not self._finished.is_set():
            await self._queue.put((stereo, arrivals))

    def close_audio(self) -> None:
        """No more audio: the SDK flushes what is queued and closes the request stream."""
        if not self._audio_closed:
            self._audio_closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
            if self._queue.full():  # the sentinel did not fit; deliver it once there is room
                task = asyncio.create_task(self._queue.put(None))
                task.add_done_callback(lambda t: None)

    async def wait_finished(self, timeout: float) -> bool:
        """Wait for `call_ended` (the finals are stored); False if it did not come in time."""
        try:
            await asyncio.wait_for(self._finished.wait(), timeout)
        except TimeoutError:
            self._log.warning("the server did not end call %s within %.0fs", self.call_id, timeout)
            return False
        return True

    async def abort(self) -> None:
        """Cancel the StreamCall now (the server ends the call as aborted)."""
        self._audio_closed = True
        if self._stream is not None:
            await self._stream.aclose()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            data, arrivals = item
            now = time.monotonic()
            for arrived in arrivals:
                self._stats.record(arrived, now)
            yield data

    async def _consume(self, stream: CallStream) -> None:
        try:
            async for event in stream:
                if event.HasField("call_started") and not self._started.done():
                    self.call_id = event.call_id
                    self._log.info("StreamCall started: call %s", event.call_id)
                    self._started.set_result(event.call_id)
                elif event.HasField("call_ended"):
                    self.end_reason = call_pb2.CallEndReason.Name(event.call_ended.reason)
        except CallpilotError as err:
            self.failure = BridgeError(
                f"the Callpilot server refused the call: {err.message}", unauthorized=err.code in AUTH_CODES
            )
            self._log.warning("StreamCall failed: %s", err)
        except asyncio.CancelledError:
            self.failure = BridgeError("the connector stopped the call")
            raise
        except Exception as exc:
            self.failure = BridgeError(f"the call stream failed: {exc}")
            self._log.exception("StreamCall failed")
        finally:
            if not self._started.done():
                self._started.set_exception(self.failure or BridgeError("the call ended before it started"))
            self._finished.set()
            self._audio_closed = True
            while not self._queue.empty():  # unblock a reader waiting in feed()
                self._queue.get_nowait()
            if self._client is not None:
                self._client = None
                await self._pool.release(self._api_key)
            self._log.info("call %s ended (%s)", self.call_id or "-", self.end_reason or "no call_ended")


SHUTDOWN_WAIT_S = 25.0
"""On shutdown, how long the open sessions get to flush their calls (within the CLI's 30 s)."""


class Sessions:
    """The open connector websockets, so shutdown can close them and wait for their calls to end."""

    def __init__(self) -> None:
        self.open: dict[web.WebSocketResponse, asyncio.Event] = {}

    def add(self, ws: web.WebSocketResponse) -> asyncio.Event:
        done = asyncio.Event()
        self.open[ws] = done
        return done

    def remove(self, ws: web.WebSocketResponse) -> None:
        done = self.open.pop(ws, None)
        if done is not None:
            done.set()

    async def shutdown(self) -> None:
        """Close every session (1001 going away); each handler then flushes its call to the server."""
        if not self.open:
            return
        log.info("closing %d connector session(s) for shutdown", len(self.open))
        waits = [asyncio.create_task(done.wait()) for done in self.open.values()]
        for ws in list(self.open):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway shutting down")
        _done, pending = await asyncio.wait(waits, timeout=SHUTDOWN_WAIT_S)
        for task in pending:
            task.cancel()
