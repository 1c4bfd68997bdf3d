"""Group commit: the durable events of all calls share transactions, never their outcome.

Why: every durable event used to be its own transaction. On SQLite those
transactions queue on the file's single writer; on PostgreSQL each commit
waits for its WAL flush and for a pooled connection. With many live calls
speaking at once the queue, not the work, was the latency (see
docs/benchmarks.md, "Event log under load").

Policy and invariants:

- One writer task per store pool (started by a submit, gone once the
  queue is empty, so an idle store holds no task) takes everything queued while the
  previous transaction ran (at most `max_batch` events) and writes it in
  one transaction. There is no linger: a lone event is written at once, so
  an idle server pays nothing; batches form only under load, which is when
  they help.
- A write is acknowledged (its future resolved) only after the
  transaction holding it committed, so "persisted before published" holds:
  the event log publishes only after the acknowledgement.
- Per-call order is the order of `submit`: the queue is FIFO and a batch
  writes its items in order (the event log also keeps at most one write
  per call in flight).
- Atomicity per event is unchanged: an event, its derived rows and its
  webhook outbox row are in the same transaction. One event's failure
  (a duplicate sequence, an unknown call) must not fail its neighbours: if
  any write inside a batch raises, the batch is rolled back and each of its
  events is retried alone, so each gets exactly the outcome it would have
  had alone. A failure at COMMIT itself is not retried (the commit may
  have happened with its acknowledgement lost); every event of the batch
  gets that error, as a lone write would.
- Bounded: at most `max_pending` writes wait; `submit` waits for room
  beyond that (back-pressure on the emitting calls, nothing dropped).
- No durability traded: the same transactions and synchronous settings as
  before, only fewer of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Generic, TypeVar

from callpilot.server import metrics
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("callpilot.store")

T = TypeVar("T")
#: Writes items (one or a batch) inside the caller's transaction.
WriteBatch = Callable[[AsyncConnection, Sequence[T]], Awaitable[None]]

DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_PENDING = 10_000


class StoreClosed(RuntimeError):
    """The store closed before this write could be made."""


@dataclass(slots=True)
class _Pending(Generic[T]):
    item: T
    done: asyncio.Future[None]
    queued: float


class _BodyFailed(Exception):
    """A write inside a batch raised; nothing of the batch was committed."""


class GroupCommit(Generic[T]):
    """Writes submitted items in shared transactions, through one `write_batch`.

    `write_batch` may write a batch with fewer statements than its items
    (one multi-row INSERT per table): the fewer round trips per
    transaction, the shorter every item's wait.
    """

    def __init__(
        self,
        begin: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        write_batch: WriteBatch[T],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self._begin = begin
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending[T]] = asyncio.Queue(maxsize=max_pending)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, item: T) -> None:
        """Write `item` inside a transaction; return once that transaction committed.

        Raises what the write raised when run alone, or the commit's error.
        """
        if self._closed:
            raise StoreClosed("the store is closed")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(item, done, time.perf_counter()))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="callpilot-group-commit")
        await done

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (within `timeout`), then stop; later submits raise StoreClosed."""
        self._closed = True
        task = self._task
        if task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("store closing with %d event writes still queued", self._queue.qsize())
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        while not self._queue.empty():
            self._settle([self._queue.get_nowait()], StoreClosed("the store is closed"))

    async def _run(self) -> None:
        batch: list[_Pending[T]] = []
        try:
            while not self._queue.empty():
                batch = [self._queue.get_nowait()]
                while len(batch) < self._max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._commit(batch)
                for _ in batch:
                    self._queue.task_done()
                batch = []
        except asyncio.CancelledError:
            # Cancelled mid-transaction: like a lone write cancelled at close,
            # the outcome is unknown to its waiters; say so rather than hang.
            self._settle(batch, StoreClosed("the store closed while this event was being written"))
            raise

    async def _commit(self, batch: list[_Pending[T]]) -> None:
        metrics.EVENT_COMMIT_BATCH.observe(len(batch))
        if len(batch) > 1:
            try:
                async with self._begin() as conn:
                    try:
                        await self._write_batch(conn, [p.item for p in batch])
                    except Exception as exc:
                        raise _BodyFailed from exc
            except _BodyFailed:
                pass  # rolled back: retry each alone below
            except Exception as exc:  # the commit (or BEGIN) failed
                self._settle(batch, exc)
                return
            else:
                self._settle(batch, None)
                return
        for item in batch:
            try:
                async with self._begin() as conn:
                    await self._write_batch(conn, [item.item])
            except Exception as exc:
                self._settle([item], exc)
            else:
                self._settle([item], None)

    @staticmethod
    def _settle(items: list[_Pending[T]], error: BaseException | None) -> None:
        now = time.perf_counter()
        for item in items:
            if item.done.done():
                continue
            if error is None:
                metrics.EVENT_COMMIT.observe(now - item.queued)
                item.done.set_result(None)
            else:
                item.done.set_exception(error)
