"""The Callpilot gRPC server process: wiring, start-up and graceful drain.

Start-up order matters: configuration and providers are validated, the
model is loaded and calls left ACTIVE by a dead process are ended before
the port opens, so a listening server is a working one. On SIGTERM/SIGINT health turns NOT_SERVING, new calls are refused with
UNAVAILABLE (ErrorInfo SERVER_DRAINING, RetryInfo), live calls flush their
finals into the store within the grace period; a call still flushing then
is cut short (SHUTDOWN_CUT_SHORT notice, then call_ended), and its stream
delivers call_ended before the port closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from callpilot.server.api.assist import AssistServicer
from callpilot.server.api.directory import DirectoryServicer
from callpilot.server.api.floor import FloorServicer
from callpilot.server.api.insights import InsightsServicer
from callpilot.server.api.status import abort
from callpilot.server.api.webhooks import WebhookServicer
from callpilot.server.auth.join_tokens import JoinTokens
from callpilot.server.auth.setup import build_auth, server_credentials
from callpilot.server.cluster.control import ControlServer
from callpilot.server.cluster.hub import RedisHub, RedisUnavailable
from callpilot.server.cluster.lease import Leases
from callpilot.server.cluster.link import ClusterLink, control_handler
from callpilot.server.cluster.reaper import Reaper
from callpilot.server.cluster.redis_bus import RedisBus
from callpilot.server.config import Settings
from callpilot.server.manager import SessionManager, draining_error
from callpilot.server.providers import build_stt
from callpilot.server.store import Store
from callpilot.server.stt.base import STTEngine
from callpilot.server.tenancy import Tenants, tenant_factory
from callpilot.server.webhooks.worker import WebhookWorker
from callpilot.v1 import (
    assist_service_pb2,
    assist_service_pb2_grpc,
    call_pb2,
    directory_service_pb2,
    directory_service_pb2_grpc,
    floor_service_pb2,
    floor_service_pb2_grpc,
    insights_service_pb2,
    insights_service_pb2_grpc,
    webhook_service_pb2,
    webhook_service_pb2_grpc,
)
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger("callpilot.server")

# An audio chunk may be 64 KiB (MAX_REQUEST_BYTES in api.assist is 80 KiB).
# gRPC's own limit is set well above ours so that an oversize message reaches
# our check, which answers with details and ends the call as INVALID_INPUT;
# gRPC refusing it instead would end the request stream as if the client had
# closed it. Only a message past this limit is refused by gRPC itself.
MAX_RECEIVE_MESSAGE = 4 * 1024 * 1024

# Keepalive policy. Calls are long-lived streams that can be silent for
# minutes (hold music is still audio, but a text-only integration may be
# quiet), and load balancers drop idle HTTP/2 connections:
# - the server pings an idle connection every 30 s and closes it if the ping
#   is not answered within 10 s (dead peers free their calls);
# - clients may ping as often as every 10 s, even without active calls,
#   without being told "too many pings".
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE),
    ("grpc.max_send_message_length", 4 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 2),
    # grpc turns SO_REUSEPORT on by default, so a second server on a taken
    # port would start silently and share its connections: refuse instead.
    ("grpc.so_reuseport", 0),
]

# After the calls have ended, how long their streams get to deliver call_ended.
STREAM_CLOSE_S = 2.0

CALL_CREATING_METHODS = frozenset(
    {"/callpilot.v1.AssistService/StreamCall", "/callpilot.v1.AssistService/CreateCall"}
)


class _DrainInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses new calls while the server drains; watchers and reads still work."""

    def __init__(self) -> None:
        self.draining = False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if self.draining and handler_call_details.method in CALL_CREATING_METHODS:
            return _unavailable_handler(handler_call_details.method)
        return await continuation(handler_call_details)


def _unavailable_handler(method: str) -> grpc.RpcMethodHandler[Any, Any]:
    """UNAVAILABLE with ErrorInfo SERVER_DRAINING and a RetryInfo, as the managers refuse."""

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await abort(context, draining_error())

    async def stream(request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await abort(context, draining_error())

    if method.endswith("/StreamCall"):
        return grpc.stream_stream_rpc_method_handler(stream)
    return grpc.unary_unary_rpc_method_handler(unary)


class CallpilotServer:
    """A running server; `start()` then `wait()` or `stop()`."""

    def __init__(self, settings: Settings, *, stt: STTEngine | None = None) -> None:
        """`stt`, when given, replaces the configured engine (embedding and fault tests)."""
        self.settings = settings
        self._stt_override = stt
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._health = health_aio.HealthServicer()
        self._drain = _DrainInterceptor()
        self._join_tokens: JoinTokens | None = None
        self._store: Store | None = None
        self._tenants: Tenants | None = None
        self._hub: RedisHub | None = None
        self._leases: Leases | None = None
        self._control: ControlServer | None = None
        self._reaper: Reaper | None = None
        self._buses: list[RedisBus] = []
        self._stt: STTEngine | None = None
        self._stopped = asyncio.Event()
        self._stopping: asyncio.Task[None] | None = None
        self._webhooks: WebhookWorker | None = None

    @property
    def manager(self) -> SessionManager:
        """The default tenant's session manager."""
        assert self._tenants is not None
        return self._tenants.get(self._tenants.default_tenant).manager

    @property
    def tenants(self) -> Tenants:
        assert self._tenants is not None
        return self._tenants

    async def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        # A cloud engine comes wrapped with its fallback (warmed up together).
        stt = self._stt_override if self._stt_override is not None else build_stt(s)
        await stt.warm_up()
        store = await Store.open(s.effective_database_url, seed_demo=s.seed_demo, tenant_id=s.tenant_id)
        self._store = store
        self._stt = stt
        if s.redis_url:
            tenants = await self._start_cluster(store, stt)
        else:
            self._tenants = tenants = Tenants(tenant_factory(store, s, stt), s.tenant_id)
            # Before the port opens: calls a dead process left ACTIVE are ended
            # (SERVER_RESTART), in every tenant, so watchers and GetCall see final
            # records. With many instances the owner reaper does this instead:
            # an ACTIVE call may well be live on another instance.
            recovered = 0
            for tenant_id in await store.live_call_tenants():
                recovered += await tenants.get(tenant_id).manager.recover()
            if recovered:
                log.warning("ended %d call(s) left active by a previous process", recovered)

        auth, self._join_tokens = build_auth(s, store)
        server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[auth, self._drain])
        assist_service_pb2_grpc.add_AssistServiceServicer_to_server(
            AssistServicer(
                tenants,
                self._join_tokens,
                max_watchers_per_call=s.max_watchers_per_call,
                max_watchers=s.max_watchers,
            ),
            server,
        )
        directory_service_pb2_grpc.add_DirectoryServiceServicer_to_server(
            DirectoryServicer(lambda: tenants.current().deps.directory), server
        )
        floor_service_pb2_grpc.add_FloorServiceServicer_to_server(
            FloorServicer(store, lambda: tenants.current().bus), server
        )
        insights_service_pb2_grpc.add_InsightsServiceServicer_to_server(InsightsServicer(store), server)
        webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server(
            WebhookServicer(store.engine, s.tenant_id), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        services = (
            assist_service_pb2.DESCRIPTOR.services_by_name["AssistService"].full_name,
            directory_service_pb2.DESCRIPTOR.services_by_name["DirectoryService"].full_name,
            floor_service_pb2.DESCRIPTOR.services_by_name["FloorService"].full_name,
            insights_service_pb2.DESCRIPTOR.services_by_name["InsightsService"].full_name,
            webhook_service_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(services, server)
        try:
            credentials = server_credentials(s)
            if credentials is None:
                self.port = server.add_insecure_port(f"{s.host}:{s.port}")
            else:
                self.port = server.add_secure_port(f"{s.host}:{s.port}", credentials)
        except RuntimeError:  # grpc's "Failed to bind": the port is taken or the address is not ours
            self.port = 0
        if self.port == 0:
            raise OSError(
                f"cannot listen on {s.host}:{s.port}: the port is in use or the address is not available "
                "(set CALLPILOT_PORT or --port)"
            )
        await server.start()
        self._server = server
        self._webhooks = WebhookWorker(store.engine)
        self._webhooks.start()
        for name in ("", *services[:-2]):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "Callpilot serving on %s:%d (%s, auth %s, stt=%s, assistant=%s)",
            s.host,
            self.port,
            "TLS" + (" with client certificates" if s.tls_client_ca else "") if s.tls_cert else "plaintext",
            "on" if s.auth_enabled else "OFF",
            s.stt,
            s.assistant,
        )

    async def _start_cluster(self, store: Store, stt: STTEngine) -> Tenants:
        """Many instances: the Redis bus, call ownership, forwarding and the owner reaper."""
        s = self.settings
        hub = RedisHub(s.redis_url)
        try:
            await hub.check()
        except RedisUnavailable as exc:
            await hub.aclose()
            raise OSError(str(exc)) from None
        self._hub = hub
        leases = Leases(
            hub,
            on_lost=lambda tenant, call_id: tenants.get(tenant).manager.fence(
                call_id, "another server instance took this call over"
            ),
        )
        self._leases = leases
        buses: list[RedisBus] = self._buses

        def make_bus(tenant_id: str) -> RedisBus:
            bus = RedisBus(hub, tenant_id)
            buses.append(bus)
            return bus

        tenants = Tenants(
            tenant_factory(
                store, s, stt, make_bus=make_bus, cluster_for=lambda tenant: ClusterLink(hub, leases, tenant)
            ),
            s.tenant_id,
        )
        self._tenants = tenants

        async def list_live() -> list[tuple[str, str]]:
            live: list[tuple[str, str]] = []
            for tenant_id in await store.live_call_tenants():
                scope_store = tenants.get(tenant_id).store
                token = ""
                while True:
                    page, token = await scope_store.list_calls(
                        page_size=100, page_token=token, state=call_pb2.CALL_STATE_ACTIVE
                    )
                    live.extend((tenant_id, call.call_id) for call in page)
                    if not token:
                        break
            return live

        async def end_orphan(tenant_id: str, call_id: str) -> None:
            await tenants.get(tenant_id).manager.end_owner_lost(call_id)

        self._control = ControlServer(hub, control_handler(tenants))
        self._control.start()
        self._reaper = Reaper(hub, leases, list_live, end_orphan)
        self._reaper.start()
        log.info("many instances: Redis bus and call ownership on (instance %s)", hub.instance_id)
        return tenants

    async def _stop_cluster(self) -> None:
        for part in (self._reaper, self._control):
            if part is not None:
                await part.aclose()
        if self._leases is not None:
            await self._leases.aclose()
        for bus in self._buses:
            await bus.aclose()
        if self._hub is not None:
            await self._hub.aclose()

    def request_stop(self) -> asyncio.Task[None]:
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop())
        return self._stopping

    async def stop(self) -> None:
        await self.request_stop()

    async def begin_drain(self) -> None:
        """Report NOT_SERVING and refuse new calls; reads and watchers keep working."""
        await self._health.enter_graceful_shutdown()
        self._drain.draining = True
        for scope in self._tenants.all() if self._tenants is not None else []:
            scope.manager.accepting = False

    async def _stop(self) -> None:
        grace = self.settings.shutdown_grace_s
        log.info("shutting down: draining live calls (grace %.1fs)", grace)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self.begin_drain()
        if self._tenants is not None:
            await asyncio.gather(
                *(scope.manager.drain(max(0.0, deadline - loop.time())) for scope in self._tenants.all())
            )
        if self._server is not None:
            # Every call has ended by now; streams get a moment to deliver call_ended.
            await self._server.stop(max(STREAM_CLOSE_S, deadline - loop.time()))
        for scope in self._tenants.all() if self._tenants is not None else []:
            with contextlib.suppress(Exception):
                await scope.deps.assistant.aclose()
        if self._stt is not None:
            with contextlib.suppress(Exception):
                await self._stt.aclose()
        if self._webhooks is not None:
            await self._webhooks.stop()
        await self._stop_cluster()
        if self._store is not None:
            await self._store.close()
        self._stopped.set()
        log.info("stopped")

    async def wait(self) -> None:
        await self._stopped.wait()


async def serve(settings: Settings, ready: Callable[[CallpilotServer], None] | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain."""
    server = CallpilotServer(settings)
    await server.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_stop)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.host)
    if ready is not None:
        ready(server)
    await server.wait()


def run(settings: Settings) -> None:
    """Blocking entry point used by `callpilot serve`; uvloop when available."""
    main = serve(
        settings, ready=lambda s: print(f"callpilot: serving on {settings.host}:{s.port}", flush=True)
    )
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
