"""The delivery worker: one per server process, sending what the outbox holds.

Each round it claims up to `batch` due deliveries (see `outbox.claim` for the
lease) and POSTs them concurrently, so at most `batch` requests are in
flight per process. It sleeps `poll_s` between empty rounds, or less when a
delivery was just queued by this process (`wake_soon`); deliveries queued
by another instance are found by polling.

Stopping never cancels a database transaction midway: a transaction cut by
a cancel can leave its SQLite connection holding the write lock (seen as
"database is locked" for the next writer). `stop()` cancels only the HTTP
requests in flight (those deliveries are sent again after their lease),
lets the round's database work finish, and cancels the loop only if that
overruns `STOP_GRACE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import weakref
from datetime import datetime, timedelta

import aiohttp
from callpilot.server.store import convert
from callpilot.server.store.engine import is_single_connection
from callpilot.server.webhooks import outbox
from callpilot.server.webhooks.settings import WebhookSettings
from callpilot.server.webhooks.signing import signed_headers
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("callpilot.webhooks")

USER_AGENT = "Callpilot-Webhooks/1"
# A queued delivery becomes visible when its transaction commits, just after
# the wake-up; these short re-looks catch it without waiting a whole poll.
_WAKE_RETRIES_S = (0.01, 0.05, 0.2)
# Settled deliveries older than the retention are deleted at start and then hourly.
PRUNE_EVERY_S = 3600.0
# How long `stop()` waits for the database work of the round in progress.
STOP_GRACE_S = 15.0

_workers: weakref.WeakSet[WebhookWorker] = weakref.WeakSet()


def wake_soon() -> None:
    """Tell this process's workers a delivery was queued (no-op outside a loop)."""
    for worker in list(_workers):
        worker.wake()


class WebhookWorker:
    """Claims due deliveries and sends them until `stop()`."""

    def __init__(self, engine: AsyncEngine, settings: WebhookSettings | None = None) -> None:
        self._engine = engine
        self.settings = settings or outbox.settings()
        # Unique per process and start, so a restarted instance never mistakes
        # a lease of its previous life for its own.
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{id(self):x}"[:64]
        self._wake = asyncio.Event()
        self._stopping = False
        # The HTTP requests in flight: the only work `stop()` cancels.
        self._sending: set[asyncio.Task[tuple[int, str]]] = set()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if is_single_connection(self._engine.url):
            # That one connection is the store's, taken in turns under its own
            # lock; a second user would trample its transactions.
            log.warning(
                "webhooks: not delivering from an in-memory SQLite database; use a file or PostgreSQL"
            )
            return
        if self._task is None:
            _workers.add(self)
            self._task = asyncio.create_task(self._run(), name="webhook-worker")

    async def stop(self) -> None:
        """Stop claiming; a delivery in flight is abandoned and retried after its lease."""
        _workers.discard(self)
        self._stopping = True
        self._wake.set()
        for sending in list(self._sending):
            sending.cancel()
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=STOP_GRACE_S)
            if not done:
                log.warning("webhooks: the worker did not stop within %.0fs; cancelling it", STOP_GRACE_S)
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        s = self.settings
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=s.timeout_s), headers={"user-agent": USER_AGENT}
        )
        retries: list[float] = []
        next_prune = 0.0
        while not self._stopping:
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_S
                await self._prune()
            try:
                claimed = await outbox.claim(self._engine, self.owner, s.batch, s.lease_s)
            except Exception:
                log.exception("webhooks: could not read the outbox; retrying in %.1fs", s.poll_s)
                claimed = []
            if claimed:
                await asyncio.gather(*(self._deliver(c) for c in claimed))
                continue
            delay = retries.pop(0) if retries else s.poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if self._wake.is_set() and not self._stopping:
                self._wake.clear()
                retries = list(_WAKE_RETRIES_S)

    async def _prune(self) -> None:
        cutoff = convert.now_utc() - timedelta(days=self.settings.retention_days)
        try:
            # In batches, so no one transaction holds the write lock for long.
            for _ in range(100):
                if await outbox.prune(self._engine, cutoff) < 1000:
                    break
        except Exception:
            log.exception("webhooks: could not prune old deliveries; trying again later")

    async def run_once(self) -> int:
        """One claim-and-send round (tests and tools); the number of deliveries attempted."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
                headers={"user-agent": USER_AGENT},
            )
        claimed = await outbox.claim(self._engine, self.owner, self.settings.batch, self.settings.lease_s)
        await asyncio.gather(*(self._deliver(c) for c in claimed))
        return len(claimed)

    async def _deliver(self, claimed: outbox.Claimed) -> None:
        if self._stopping:
            return  # claimed as the worker stopped: sent again after the lease
        sent = convert.now_utc()
        started = time.perf_counter()
        sending = asyncio.create_task(self._send(claimed, sent))
        self._sending.add(sending)
        try:
            status, error = await sending
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this round itself was cancelled (stop's last resort)
            return  # stop() cut the request: nothing recorded, sent again after the lease
        finally:
            self._sending.discard(sending)
        attempt = outbox.Attempt(sent, status, error, int((time.perf_counter() - started) * 1000))
        try:
            await outbox.record_attempt(self._engine, claimed, self.owner, attempt, not error, self.settings)
        except Exception:
            # The lease runs out and the delivery is sent again: at least once.
            log.exception("webhooks: could not record attempt of %s", claimed.delivery_id)
        if error:
            log.info("webhook %s to %s failed: %s", claimed.delivery_id, claimed.url, error)

    async def _send(self, claimed: outbox.Claimed, sent: datetime) -> tuple[int, str]:
        """POST one delivery; its HTTP status (0 when there was no answer) and an error, if any."""
        assert self._session is not None
        status, error = 0, ""
        try:
            headers = signed_headers(claimed.secret, claimed.delivery_id, sent, claimed.payload)
            headers["content-type"] = "application/json"
            async with self._session.post(
                claimed.url, data=claimed.payload.encode("utf-8"), headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                await response.read()
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except TimeoutError:
            error = f"no answer within {self.settings.timeout_s:g}s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bad URL or secret must not stop the worker
            error = f"{type(exc).__name__}: {exc}"
        return status, error
