"""What a tenant's session manager needs from the cluster: ownership and forwarding.

`ClusterLink` binds the instance's leases and control channel to one
tenant. The manager asks it who owns a call, takes and releases ownership
around its sessions, and forwards requests for calls owned elsewhere. The
requests that can be forwarded (`OPS`) and how the owner runs them live in
`run_forwarded`, next to the manager methods they call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from callpilot.server.cluster import control
from callpilot.server.cluster.hub import RedisHub
from callpilot.server.cluster.lease import Leases
from callpilot.server.errors import InvalidArgument, Violation
from callpilot.v1 import assist_service_pb2, events_pb2

if TYPE_CHECKING:
    from callpilot.server.tenancy import Tenants

log = logging.getLogger("callpilot.cluster")

OPS = ("end", "feedback", "decide", "suggest")


class ClusterLink:
    def __init__(self, hub: RedisHub, leases: Leases, tenant_id: str) -> None:
        self._hub = hub
        self._leases = leases
        self.tenant_id = tenant_id
        self._releases: set[asyncio.Task[None]] = set()

    @property
    def instance_id(self) -> str:
        return self._hub.instance_id

    async def acquire(self, call_id: str, *, limit: int = 0) -> str | None:
        """Own the call; None on success, else the instance that owns it.

        `limit` > 0: the tenant's live calls across the cluster, raising
        lease.TenantAtLimit when it is reached.
        """
        return await self._leases.acquire(self.tenant_id, call_id, limit=limit)

    def release(self, call_id: str) -> None:
        task = asyncio.ensure_future(self._leases.release(self.tenant_id, call_id))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    def holds(self, call_id: str) -> bool:
        return self._leases.holds(self.tenant_id, call_id)

    async def owner(self, call_id: str) -> str | None:
        return await self._leases.owner(self.tenant_id, call_id)

    async def still_owner(self, call_id: str) -> bool:
        return await self.owner(call_id) == self.instance_id

    async def forward(self, owner: str, call_id: str, op: str, body: bytes) -> bytes:
        return await control.forward(self._hub, owner, self.tenant_id, call_id, op, body)


def control_handler(tenants: Tenants) -> control.Handler:
    """The owner's side of forwarded requests: run them on the local session."""

    async def run(tenant_id: str, call_id: str, op: str, body: bytes) -> bytes:
        manager = tenants.get(tenant_id).manager
        if op == "end":
            call = await manager.end_call(call_id, body.decode())
            return call.SerializeToString()
        if op == "feedback":
            feedback = assist_service_pb2.SuggestionFeedback.FromString(body)
            return (await manager.submit_feedback(call_id, feedback)).SerializeToString()
        if op == "decide":
            decision = events_pb2.ToolDecision.FromString(body)
            return (await manager.decide_tool(call_id, decision)).SerializeToString()
        if op == "suggest":
            await manager.suggest_now(call_id, body.decode())
            return b""
        raise InvalidArgument(Violation("op", f"unknown forwarded request {op!r}"))

    return run
