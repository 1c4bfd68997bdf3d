"""FloorService: the supervisor's live view of the tenant's calls.

Resumption policy: every `WatchFloor` stream (a first one or a reconnection)
starts with a fresh snapshot from the store, so a client never needs a
cursor: it replaces its rows with each snapshot and applies the events that
follow. Consistency: the stream subscribes to the bus *before* reading the
snapshot and then skips live events at or below each call's snapshot
sequence, so nothing falls between the two. A watcher that lags (its
bounded queue overflowed, see bus.py) is sent a new snapshot instead.
With many instances, calls owned by another instance arrive through the
tenant's floor stream on Redis (cluster/redis_bus.py); when Redis is lost
the stream ends UNAVAILABLE and the client's reconnect gets a snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
from callpilot.server import metrics
from callpilot.server.api.status import streaming
from callpilot.server.auth.principal import current_principal
from callpilot.server.bus import FLOOR_KINDS, BusUnavailable, InProcessBus, Lagged
from callpilot.server.errors import Unavailable
from callpilot.v1 import floor_service_pb2 as pb
from callpilot.v1 import floor_service_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from callpilot.server.store import Store

Ctx = grpc.aio.ServicerContext[Any, Any]


class FloorServicer(pb_grpc.FloorServiceServicer):
    """Streams the floor of the caller's tenant."""

    def __init__(self, store: Store, bus_for: Callable[[], InProcessBus]) -> None:
        """`bus_for` returns the caller's tenant's bus (tenancy.Tenants)."""
        self._store = store
        self._bus_for = bus_for

    @streaming
    async def WatchFloor(
        self, request: pb.WatchFloorRequest, context: Ctx
    ) -> AsyncIterator[pb.WatchFloorResponse]:
        store = tenant_store(self._store)
        tenant = store.tenant_id
        while True:
            sub = self._bus_for().subscribe_all()
            try:
                calls = await store.floor_snapshot()
                # call id -> last sequence applied; only these calls (and ones
                # that start from now on in this tenant) are forwarded.
                live = {c.call.call_id: c.last_sequence for c in calls}
                yield pb.WatchFloorResponse(snapshot=pb.FloorSnapshot(calls=calls))
                try:
                    async for event in sub:
                        kind = event.WhichOneof("payload")
                        if kind not in FLOOR_KINDS:
                            continue
                        call_id = event.call_id
                        if (
                            kind == "call_started"
                            and call_id not in live
                            and event.call_started.call.tenant_id in ("", tenant)
                        ):
                            live[call_id] = 0
                        last = live.get(call_id)
                        if last is None or event.sequence <= last:
                            continue
                        live[call_id] = event.sequence
                        if kind == "call_ended":
                            del live[call_id]
                        yield pb.WatchFloorResponse(event=event)
                except Lagged:
                    metrics.WATCHER_LAGS.inc()
                    continue
                except BusUnavailable as exc:
                    # Calls owned by other instances can no longer be followed live:
                    # say so; a reconnect starts again from a fresh snapshot.
                    err = Unavailable(f"{exc}; reconnect to start again from a fresh snapshot")
                    err.reason = "LIVE_EVENTS_UNAVAILABLE"
                    raise err from None
            finally:
                sub.close()


def tenant_store(store: Store) -> Store:
    """The store of the caller's tenant (the server's own when no principal is set)."""
    principal = current_principal.get()
    if principal is None or principal.tenant_id == store.tenant_id:
        return store
    return store.for_tenant(principal.tenant_id)
