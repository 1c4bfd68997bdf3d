"""A webhook receiver on 127.0.0.1 that verifies every request with the standard library.

It verifies with `standardwebhooks.Webhook.verify` (signature and
timestamp), deduplicates by ``webhook-id`` as the Standard Webhooks spec asks
receivers to, and fails the first attempts of each message on purpose
according to a plan: ``"500"`` answers HTTP 500, ``"hang"`` answers only
after `hang_s` (longer than the sender's timeout), ``"ok"`` accepts, and
``"ok_slow"`` accepts (counts the message as received) but answers only
after `hang_s`, the window in which a test kills the sender.
Connection refused is had by starting it late on a reserved port.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Plan = Callable[[str, int], str]


def accept_all(_id: str, _n: int) -> str:
    return "ok"


def fail_500_then_hang(_id: str, n: int) -> str:
    """First attempt that reaches us: 500; second: no answer in time; then accepted."""
    return ("500", "hang")[n] if n < 2 else "ok"


class Receiver:
    def __init__(
        self, secret: str = "", *, port: int = 0, plan: Plan = accept_all, hang_s: float = 2.0
    ) -> None:
        self.secret = secret
        self.port = port
        self.plan = plan
        self.hang_s = hang_s
        self.requests: Counter[str] = Counter()  # verified requests per webhook-id, any outcome
        self.accepted: Counter[str] = Counter()  # 2xx answers per webhook-id
        self.messages: dict[str, Any] = {}  # first accepted payload per webhook-id (deduplicated)
        self.bodies: list[str] = []
        self.bad_signatures = 0
        # Event types whose first request is accepted "ok_slow" whatever the plan says.
        self.slow_first_of: set[str] = set()
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.bodies.append(body)
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        msg_id = request.headers["webhook-id"]
        n = self.requests[msg_id]
        self.requests[msg_id] += 1
        action = self.plan(msg_id, n)
        if n == 0 and payload["type"] in self.slow_first_of:
            action = "ok_slow"
        if action == "500":
            return web.Response(status=500, text="failing on purpose")
        if action == "hang":
            await asyncio.sleep(self.hang_s)
            return web.Response(status=503, text="too late")
        self.accepted[msg_id] += 1
        self.messages.setdefault(msg_id, payload)
        self.changed.set()
        if action == "ok_slow":
            await asyncio.sleep(self.hang_s)
        return web.Response(status=204)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, timeout: float) -> None:
        """Until `count` distinct messages were accepted; TimeoutError with what came otherwise."""
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()

    def types(self) -> list[str]:
        return sorted(m["type"] for m in self.messages.values())

    def dump(self) -> str:
        return json.dumps({"requests": self.requests, "accepted": self.accepted}, default=str)
