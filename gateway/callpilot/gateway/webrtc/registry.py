"""The gateway's browser calls: creation, lookup, limits and shutdown.

Calls live in the memory of the gateway process that started them: the
WebRTC media terminates here, so both legs of a call must reach the same
gateway. Behind a load balancer, route `/api/webrtc/*`, `/ws/*` and
`/api/calls/{id}*` by call id (sticky); `/api/calls/start` may go anywhere.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

import grpc
from aiortc import RTCIceServer
from callpilot.client import AsyncCallpilot, CallpilotError
from callpilot.gateway.config import GatewaySettings
from callpilot.gateway.webrtc import loopback
from callpilot.gateway.webrtc.call import BridgedCall, api_error_from
from callpilot.gateway.webrtc.errors import ApiError
from callpilot.gateway.webrtc.turn import turn_credential
from callpilot.v1 import call_pb2

log = logging.getLogger("callpilot.gateway.webrtc")

MAX_CALLS = 500
"""Calls (waiting or live) per gateway process; more get 503. Each live leg costs a
peer connection, a decoder thread and ~1-2 % of a core (see docs/webrtc.md)."""

ENDED_KEPT = 1000
"""Finished calls remembered so a late offer gets 409 "ended" rather than 404."""

JOIN_ATTEMPTS = 3
"""StreamCall attempts with one join token (see `CallRegistry._join`)."""

LIMIT_RETRY_AFTER_S = 30
"""Retry-After of a 429 for too many browser calls: unjoined calls expire, hung-up ones end."""

SHUTDOWN_TIMEOUT_S = 25.0
"""On shutdown, how long to wait for the server to store the last finals of every call."""


def _too_many(message: str) -> ApiError:
    return ApiError(
        429,
        "TOO_MANY_CALLS",
        f"{message}; hang one up or try again in {LIMIT_RETRY_AFTER_S} s",
        headers={"Retry-After": str(LIMIT_RETRY_AFTER_S)},
    )


class CallRegistry:
    def __init__(self, settings: GatewaySettings, client: Callable[[], AsyncCallpilot]) -> None:
        self._settings = settings
        self._client = client
        self.calls: dict[str, BridgedCall] = {}
        self._ended: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self.accepting = True
        self._starting: collections.Counter[str] = collections.Counter()  # starts in flight, per client

    # ------------------------------------------------------------------ ICE

    def gateway_ice_servers(self) -> list[RTCIceServer]:
        """The gateway's own STUN/TURN: a gateway behind NAT (a container) needs a relay address.

        In loopback mode there are none: nothing may leave the machine.
        """
        if loopback.is_enabled():
            return []
        servers = [RTCIceServer(urls=list(self._settings.stun_urls))] if self._settings.stun_urls else []
        if self._settings.turn_urls:
            cred = turn_credential(self._settings.turn_secret, self._settings.turn_ttl_s, user="gateway")
            servers.append(
                RTCIceServer(
                    urls=list(self._settings.turn_urls), username=cred.username, credential=cred.credential
                )
            )
        return servers

    # ---------------------------------------------------------------- calls

    async def start(
        self, hint: dict[str, str], *, join_token: str = "", call_id: str = "", client_addr: str = ""
    ) -> BridgedCall:
        """Start a browser call for the client at `client_addr`.

        With a join token the call is the one the token names (minted by an
        integrator with CreateCall): its StreamCall opens now, with the token as
        credential, so the server checks and consumes it. Without one (auth off
        only) the gateway creates the call itself.

        Limits, with auth on (429 TOO_MANY_CALLS with Retry-After):
        CALLPILOT_BROWSER_CALLS_PER_CLIENT calls per client address, checked
        before anything is done, and CALLPILOT_BROWSER_CALLS_PER_TENANT per
        tenant, checked once the server has named the call's tenant (an
        over-limit call is ended at once; its token is spent). With auth off (a
        loopback development gateway, tests, benchmarks) only MAX_CALLS applies.
        """
        if not self.accepting:
            raise ApiError(503, "SHUTTING_DOWN", "the gateway is shutting down; try again in a moment")
        if len(self.calls) + sum(self._starting.values()) >= MAX_CALLS:
            raise ApiError(
                503, "GATEWAY_BUSY", f"this gateway already has {MAX_CALLS} calls; try again later"
            )
        if self._settings.auth_enabled and not join_token:
            raise ApiError(
                401,
                "JOIN_TOKEN_REQUIRED",
                "a browser call needs a join token: open the call link you were given "
                "(an integrator gets one from CreateCall)",
            )
        limited = self._settings.auth_enabled
        per_client = self._settings.browser_calls_per_client
        held = self._starting[client_addr] + sum(
            1 for c in self.calls.values() if c.client_addr == client_addr
        )
        if limited and held >= per_client:
            raise _too_many(f"this client already has {per_client} browser calls open")
        self._starting[client_addr] += 1
        try:
            call = await (self._join(join_token, call_id, client_addr) if join_token else self._create(hint))
            call.client_addr = client_addr
        finally:
            self._starting[client_addr] -= 1
            if not self._starting[client_addr]:
                del self._starting[client_addr]
        per_tenant = self._settings.browser_calls_per_tenant
        if limited and sum(1 for c in self.calls.values() if c.tenant_id == call.tenant_id) >= per_tenant:
            await call.end("tenant-limit")
            raise _too_many(f"this tenant already has {per_tenant} browser calls open on this gateway")
        self.calls[call.call_id] = call
        log.info("call %s: started (customer %s)", call.call_id, call.customer_id or "unknown")
        return call

    async def _create(self, hint: dict[str, str]) -> BridgedCall:
        client = self._client()
        config = call_pb2.CallConfig(labels={"channel": "webrtc"})
        if hint:
            config.customer_hint.CopyFrom(call_pb2.CustomerHint(**hint))
        try:
            created = await client.create_call(config)
        except CallpilotError as err:
            raise api_error_from(err) from None
        customer_id = await self._identify(client, hint)
        return BridgedCall(
            created.call_id,
            customer_id,
            client=client,
            ice_servers=self.gateway_ice_servers,
            silence_timeout_s=self._settings.silence_timeout_s,
            on_finished=self._finished,
            tenant_id=created.tenant_id,
        )

    async def _join(self, join_token: str, call_id: str, client_addr: str) -> BridgedCall:
        """The token's call, streaming. A client of its own per call: the token is this call's
        only credential, used for its StreamCall only.

        One retry, on INTERNAL before the call started: grpc-python reports a stream that the
        server refused before the client's first message was written as INTERNAL ("Internal
        error from Core"), hiding the server's UNAUTHENTICATED. A refused token is not spent,
        so asking again yields the real reason (expired, used, invalid); an accepted token
        never sees this race.
        """
        for attempt in range(JOIN_ATTEMPTS):
            call = BridgedCall(
                call_id,
                "",
                client=self._settings.upstream.client(join_token),
                ice_servers=self.gateway_ice_servers,
                silence_timeout_s=self._settings.silence_timeout_s,
                on_finished=self._finished,
                owns_client=True,
                client_addr=client_addr,
            )
            try:
                await call.open()
                return call
            except ApiError:
                err = call.stream_error
                if attempt + 1 < JOIN_ATTEMPTS and err is not None and err.code == grpc.StatusCode.INTERNAL:
                    log.info("StreamCall with a join token: INTERNAL before the start; asking again")
                    continue
                raise
        raise AssertionError("unreachable")

    async def _identify(self, client: AsyncCallpilot, hint: dict[str, str]) -> str:
        """The directory customer the hint names, when it names exactly one; else ""."""
        try:
            if "customer_id" in hint:
                found = await client.get_customer(hint["customer_id"])
                return str(found.customer.customer_id)
            for key in ("phone", "email"):
                if key in hint:
                    matches = await client.search_customers(hint[key], page_size=2)
                    return str(matches[0].customer_id) if len(matches) == 1 else ""
        except CallpilotError:
            return ""
        return ""

    def get(self, call_id: str) -> BridgedCall:
        call = self.calls.get(call_id)
        if call is not None:
            return call
        if call_id in self._ended:
            raise ApiError(409, "CALL_ENDED", f"call {call_id} has ended; start a new call")
        raise ApiError(
            404, "CALL_NOT_FOUND", f"no call {call_id} on this gateway; start one with POST /api/calls/start"
        )

    def describe(self, call_id: str) -> dict[str, Any]:
        call = self.calls.get(call_id)
        if call is not None:
            return call.snapshot()
        ended = self._ended.get(call_id)
        if ended is not None:
            return ended
        raise ApiError(404, "CALL_NOT_FOUND", f"no call {call_id} on this gateway")

    def waiting(self) -> list[dict[str, Any]]:
        return [
            {"call_id": c.call_id, "customer_id": c.customer_id, "created": c.created}
            for c in sorted(self.calls.values(), key=lambda c: c.created)
            if c.waiting_for_agent()
        ]

    def _finished(self, call: BridgedCall) -> None:
        if self.calls.get(call.call_id) is not call:
            return  # never registered (refused at start)
        self.calls.pop(call.call_id, None)
        self._ended[call.call_id] = call.snapshot()
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)

    async def shutdown(self) -> None:
        """End every call and wait (bounded) until the server has stored their finals."""
        self.accepting = False
        calls = list(self.calls.values())
        if not calls:
            return
        log.info("ending %d browser call(s) for shutdown", len(calls))
        tasks = [asyncio.create_task(c.end("gateway-shutdown")) for c in calls]
        _done, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT_S)
        if pending:
            log.warning("%d call(s) did not end within %.0fs", len(pending), SHUTDOWN_TIMEOUT_S)
            for task in pending:
                task.cancel()
