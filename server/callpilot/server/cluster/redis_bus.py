"""The event bus across instances, on Redis Streams.

Each call has a stream ``cp:<tenant>:call:<id>:events``. The owner of the
call publishes every event twice: to its local subscribers directly (the
in-process bus, no Redis round trip for watchers on the same instance) and
to the stream. An instance with watchers of a call it does not own runs one
reader per call that XREADs the stream and feeds its local subscribers, so
100 watchers on one instance cost one Redis connection, not 100.

Policies:

- Publishing never blocks the call: XADDs go through a bounded queue
  (`OUTBOX_SIZE`) drained by one writer task in pipelined batches. When the
  queue is full or Redis fails, the batch is dropped and counted. Nothing
  durable is lost by that: durable events are in the database before they
  are published, and a remote watcher that sees a gap in durable sequences
  (or sits idle) re-reads the store.
- Streams keep the live tail only: ``MAXLEN ~ STREAM_MAXLEN`` on every XADD.
  After the call ends its stream expires in `ENDED_TTL_S`, long enough for a
  slow remote reader to see `call_ended`, and then Redis holds nothing for it.
- A reader that loses Redis fails its local subscribers with
  BusUnavailable; their RPCs end UNAVAILABLE and clients resume later.
- The supervisor's floor (`subscribe_all`) across instances: the owner also
  adds each durable event of a kind the floor reads (`FLOOR_KINDS`) to the
  tenant's stream ``cp:<tenant>:floor`` (trimmed to `FLOOR_MAXLEN`); an
  instance with floor subscribers runs one reader of it, which feeds them
  the events of calls owned elsewhere. It starts `FLOOR_LOOKBACK_MS` back,
  so an event stored while the reader was starting is not missed (the
  floor drops what it has by sequence).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from callpilot.server import metrics
from callpilot.server.bus import DEFAULT_QUEUE_SIZE, FLOOR_KINDS, InProcessBus, Subscription
from callpilot.server.cluster.hub import RedisHub
from callpilot.v1 import events_pb2
from redis.exceptions import RedisError

log = logging.getLogger("callpilot.cluster.bus")

STREAM_MAXLEN = 2000
ENDED_TTL_S = 300
OUTBOX_SIZE = 20_000
WRITE_BATCH = 512
READ_BLOCK_MS = 1000
READ_COUNT = 512
FLOOR_MAXLEN = 10_000
FLOOR_LOOKBACK_MS = 5_000


class RedisBus(InProcessBus):
    """The bus for one tenant on a shared RedisHub; the InProcessBus interface, across instances."""

    def __init__(self, hub: RedisHub, tenant_id: str, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        super().__init__(queue_size)
        self._hub = hub
        self._tenant = tenant_id
        self._owned: set[str] = set()
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._floor_reader: asyncio.Task[None] | None = None
        self._out: asyncio.Queue[tuple[str, bytes | None]] = asyncio.Queue(OUTBOX_SIZE)
        self._writer: asyncio.Task[None] | None = None
        self._origin = hub.instance_id.encode()
        self.dropped = 0
        self._last_warning = 0.0

    def stream_key(self, call_id: str) -> str:
        return self._hub.key(self._tenant, "call", call_id, "events")

    @property
    def floor_key(self) -> str:
        return self._hub.key(self._tenant, "floor")

    # ---------------------------------------------------------------- owner side

    def publish(self, event: events_pb2.CallEvent) -> None:
        self._owned.add(event.call_id)
        super().publish(event)
        data = event.SerializeToString()
        self._enqueue(self.stream_key(event.call_id), data)
        if event.durable and event.WhichOneof("payload") in FLOOR_KINDS:
            self._enqueue(self.floor_key, data)

    def finish(self, call_id: str) -> None:
        super().finish(call_id)
        if call_id in self._owned:
            self._owned.discard(call_id)
            self._enqueue(self.stream_key(call_id), None)

    def _enqueue(self, key: str, data: bytes | None) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="redis-bus-writer")
        try:
            self._out.put_nowait((key, data))
        except asyncio.QueueFull:
            self._drop(1, "the Redis publish queue is full")

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        metrics.BUS_DROPPED.inc(count)
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning("dropped %d event(s) for other instances: %s", count, why)

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._out.get()]
            while len(batch) < WRITE_BATCH and not self._out.empty():
                batch.append(self._out.get_nowait())
            try:
                async with self._hub.redis.pipeline(transaction=False) as pipe:
                    for key, data in batch:
                        if data is None:
                            pipe.expire(key, ENDED_TTL_S)
                        else:
                            maxlen = FLOOR_MAXLEN if key == self.floor_key else STREAM_MAXLEN
                            pipe.xadd(key, {"e": data, "o": self._origin}, maxlen=maxlen, approximate=True)
                    await pipe.execute()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._drop(len(batch), f"Redis: {exc}")
                await asyncio.sleep(0.5)
            finally:
                for _ in batch:
                    self._out.task_done()

    # ------------------------------------------------------------- watcher side

    def subscribe(self, call_id: str, queue_size: int | None = None) -> Subscription:
        sub = super().subscribe(call_id, queue_size)
        if call_id not in self._owned:
            task = self._readers.get(call_id)
            if task is None or task.done():
                self._readers[call_id] = asyncio.create_task(self._read(call_id), name=f"redis-bus-{call_id}")
        return sub

    async def _read(self, call_id: str) -> None:
        key = self.stream_key(call_id)
        redis = self._hub.redis
        try:
            newest: Any = await redis.xrevrange(key, count=1)
            last_id: bytes | str = newest[0][0] if newest else "0-0"
            while self.subscriber_count(call_id) and call_id not in self._owned:
                response: Any = await redis.xread({key: last_id}, block=READ_BLOCK_MS, count=READ_COUNT)
                for _stream, entries in response or ():
                    for entry_id, fields in entries:
                        last_id = entry_id
                        if fields.get(b"o") == self._origin:
                            continue
                        event = events_pb2.CallEvent.FromString(fields[b"e"])
                        InProcessBus.publish(self, event)  # local fan-out only
                        if event.HasField("call_ended"):
                            InProcessBus.finish(self, call_id)
                            return
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            log.warning("live events of call %s are unavailable: %s", call_id, exc)
            self.fail(call_id, "live events are unavailable (the event bus cannot reach Redis)")
        finally:
            if self._readers.get(call_id) is asyncio.current_task():
                del self._readers[call_id]

    def subscribe_all(self, queue_size: int | None = None) -> Subscription:
        sub = super().subscribe_all(queue_size)
        if self._floor_reader is None or self._floor_reader.done():
            self._floor_reader = asyncio.create_task(self._read_floor(), name="redis-bus-floor")
        return sub

    async def _read_floor(self) -> None:
        """Durable floor events of calls owned by other instances, to this instance's floor subscribers."""
        redis = self._hub.redis
        try:
            # Stream ids are Redis's clock: look back from its time, not this host's.
            seconds, micros = await redis.time()
            last_id: bytes | str = f"{max(0, seconds * 1000 + micros // 1000 - FLOOR_LOOKBACK_MS)}-0"
            while self._all:
                response: Any = await redis.xread(
                    {self.floor_key: last_id}, block=READ_BLOCK_MS, count=READ_COUNT
                )
                for _stream, entries in response or ():
                    for entry_id, fields in entries:
                        last_id = entry_id
                        if fields.get(b"o") == self._origin:
                            continue  # this instance's own calls reach its floor directly
                        event = events_pb2.CallEvent.FromString(fields[b"e"])
                        for sub in list(self._all):
                            sub._offer(event)
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            log.warning("the floor's live events from other instances are unavailable: %s", exc)
            for sub in list(self._all):
                self._all.discard(sub)
                sub._fail(
                    "live events of other instances' calls are unavailable (the event bus cannot reach Redis)"
                )

    async def aclose(self) -> None:
        tasks = [
            *self._readers.values(),
            *([self._writer] if self._writer else []),
            *([self._floor_reader] if self._floor_reader else []),
        ]
        if self._writer is not None and not self._writer.done():
            # Give queued events a moment to leave before stopping the writer.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._out.join(), 2.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
