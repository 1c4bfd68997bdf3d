"""Everything one tenant's calls run on, built on the tenant's first request.

The tenant of an RPC comes from its credential (the auth interceptor sets
`current_principal`), never from the request. Each tenant gets its own
store view (every query filtered by tenant), event bus (so two tenants'
calls never share a subscription, even with the same call id), assistant
and tool box (so tools read only the tenant's directory) and session
manager (so live calls, limits and recovery are per tenant). The STT engine
is shared: it holds a model, not tenant data.

Isolation is structural: a servicer reaches data only through
`Tenants.current()`, so a call of another tenant is simply not there
(NOT_FOUND), with no existence leak.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from callpilot.server.admission import Gate
from callpilot.server.alerts import AlertRules
from callpilot.server.assist.tools import ToolBox
from callpilot.server.auth.principal import current_principal
from callpilot.server.bus import InProcessBus
from callpilot.server.cluster.link import ClusterLink
from callpilot.server.config import Settings
from callpilot.server.manager import SessionManager
from callpilot.server.providers import build_assistant
from callpilot.server.session import SessionDeps
from callpilot.server.store import Store
from callpilot.server.store.protocols import CallLog
from callpilot.server.stt.base import STTEngine

log = logging.getLogger("callpilot.tenancy")


@dataclass(frozen=True, slots=True)
class TenantScope:
    tenant_id: str
    store: CallLog
    bus: InProcessBus
    manager: SessionManager

    @property
    def deps(self) -> SessionDeps:
        return self.manager.deps


class Tenants:
    """The scopes of the tenants seen on this instance, made by `factory` on first use."""

    def __init__(self, factory: Callable[[str], TenantScope], default_tenant: str) -> None:
        self._factory = factory
        self._scopes: dict[str, TenantScope] = {}
        self.default_tenant = default_tenant

    @classmethod
    def single(cls, manager: SessionManager, store: CallLog, bus: InProcessBus) -> Tenants:
        """One fixed scope for every caller (embedded use and stage tests)."""
        scope = TenantScope(manager.tenant_id, store, bus, manager)
        return cls(lambda _tenant: scope, manager.tenant_id)

    def get(self, tenant_id: str) -> TenantScope:
        scope = self._scopes.get(tenant_id)
        if scope is None:
            scope = self._scopes[tenant_id] = self._factory(tenant_id)
        return scope

    def current(self) -> TenantScope:
        """The scope of the tenant whose credential made the RPC being handled."""
        principal = current_principal.get()
        return self.get(principal.tenant_id if principal is not None else self.default_tenant)

    def all(self) -> list[TenantScope]:
        return list(self._scopes.values())


def tenant_factory(
    base: Store,
    settings: Settings,
    stt: STTEngine,
    *,
    make_bus: Callable[[str], InProcessBus] | None = None,
    cluster_for: Callable[[str], ClusterLink] | None = None,
) -> Callable[[str], TenantScope]:
    """Builds a tenant's scope on the server's shared pool, STT engine, settings and admission gate.

    Every tenant's manager shares one server gate (`CALLPILOT_MAX_CALLS`), so
    the server-wide limit holds across tenants; each also has its own
    (`CALLPILOT_MAX_CALLS_PER_TENANT`).
    """
    bus_for = make_bus or (lambda _tenant: InProcessBus())
    server_gate = Gate(settings.max_calls, what="this server", setting="CALLPILOT_MAX_CALLS")
    alert_rules = AlertRules.from_env(os.environ)

    def build(tenant_id: str) -> TenantScope:
        store = base if tenant_id == base.tenant_id else base.for_tenant(tenant_id)
        toolbox = ToolBox(store)
        assistant = build_assistant(settings, store, toolbox)
        bus = bus_for(tenant_id)
        deps = SessionDeps(
            store=store,
            bus=bus,
            stt=stt,
            assistant=assistant,
            directory=store,
            toolbox=toolbox,
            alert_rules=alert_rules,
        )
        limit = settings.max_calls_per_tenant or settings.max_calls
        cluster = cluster_for(tenant_id) if cluster_for is not None else None
        manager = SessionManager(
            deps,
            tenant_id=tenant_id,
            max_calls=limit,
            cluster=cluster,
            cluster_max_calls=settings.max_calls_per_tenant,
            server_gate=server_gate,
            reservation_s=settings.join_token_ttl_s,
        )
        log.info("tenant %s: first request on this instance", tenant_id)
        return TenantScope(tenant_id, store, bus, manager)

    return build
