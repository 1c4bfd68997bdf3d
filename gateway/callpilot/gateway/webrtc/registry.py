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

SHUTDOWN_TIMEOUT_S = 25.0
"""On shutdown, how long to wait for the server to store the last finals of every call."""


class CallRegistry:
    def __init__(self, settings: GatewaySettings, client: Callable[[], AsyncCallpilot]) -> None:
        self._settings = settings
        self._client = client
        self.calls: dict[str, BridgedCall] = {}
        self._ended: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self.accepting = True

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

    async def start(self, hint: dict[str, str]) -> BridgedCall:
        if not self.accepting:
            raise ApiError(503, "SHUTTING_DOWN", "the gateway is shutting down; try again in a moment")
        if len(self.calls) >= MAX_CALLS:
            raise ApiError(
                503, "GATEWAY_BUSY", f"this gateway already has {MAX_CALLS} calls; try again later"
            )
        client = self._client()
        config = call_pb2.CallConfig(labels={"channel": "webrtc"})
        if hint:
            config.customer_hint.CopyFrom(call_pb2.CustomerHint(**hint))
        try:
            created = await client.create_call(config)
        except CallpilotError as err:
            raise api_error_from(err) from None
        customer_id = await self._identify(client, hint)
        call = BridgedCall(
            created.call_id,
            customer_id,
            client=client,
            ice_servers=self.gateway_ice_servers,
            silence_timeout_s=self._settings.silence_timeout_s,
            on_finished=self._finished,
        )
        self.calls[call.call_id] = call
        log.info("call %s: started (customer %s)", call.call_id, customer_id or "unknown")
        return call

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
