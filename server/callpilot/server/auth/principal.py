"""The authenticated caller of one RPC and the role table.

Roles follow the people who use a contact-center product:

- ``integrator``: the platform that streams calls in (StreamCall, CreateCall)
  and reads the company directory it feeds the assistant with;
- ``agent``: a person at the desk (watch, read, end calls, give feedback and
  decide proposed tools);
- ``admin``: everything, including managing keys.

The table is deny-by-default: an RPC missing from it is open to ``admin``
only, so adding a method to the contract never silently opens it.
"""

from __future__ import annotations

import contextvars
import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    INTEGRATOR = "integrator"
    AGENT = "agent"
    ADMIN = "admin"

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise ValueError(f"unknown role {value!r}; use one of {names}") from None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the call: tenant and role, and what identified them.

    `subject` is the key's id (``key:<id>``) or the token's ``sub`` claim;
    never the secret itself, so it is safe to log.
    """

    tenant_id: str
    role: Role
    subject: str
    # Set for a join token: the one call it may stream, and nothing else.
    call_id: str | None = None

    def may_call(self, method: str) -> bool:
        if self.call_id is not None:
            return method == _ASSIST + "StreamCall"
        if self.role is Role.ADMIN:
            return True
        return self.role in METHOD_ROLES.get(method, frozenset())


_ASSIST = "/callpilot.v1.AssistService/"
_DIRECTORY = "/callpilot.v1.DirectoryService/"
_WEBHOOK = "/callpilot.v1.WebhookService/"
_FLOOR = "/callpilot.v1.FloorService/"
_INSIGHTS = "/callpilot.v1.InsightsService/"

METHOD_ROLES: dict[str, frozenset[Role]] = {
    _ASSIST + "StreamCall": frozenset({Role.INTEGRATOR}),
    _ASSIST + "CreateCall": frozenset({Role.INTEGRATOR}),
    _ASSIST + "WatchCall": frozenset({Role.AGENT}),
    _ASSIST + "GetCall": frozenset({Role.AGENT}),
    _ASSIST + "ListTranscript": frozenset({Role.AGENT}),
    _ASSIST + "ListCalls": frozenset({Role.AGENT}),
    _ASSIST + "EndCall": frozenset({Role.AGENT}),
    _ASSIST + "SubmitFeedback": frozenset({Role.AGENT}),
    _ASSIST + "SaveWrapUp": frozenset({Role.AGENT}),
    _DIRECTORY + "SearchCustomers": frozenset({Role.INTEGRATOR}),
    _DIRECTORY + "GetCustomer": frozenset({Role.INTEGRATOR}),
    _DIRECTORY + "GetOrder": frozenset({Role.INTEGRATOR}),
    _DIRECTORY + "GetPolicy": frozenset({Role.INTEGRATOR}),
    _DIRECTORY + "SearchKnowledge": frozenset({Role.INTEGRATOR}),
    _WEBHOOK + "CreateWebhookEndpoint": frozenset({Role.INTEGRATOR}),
    _WEBHOOK + "ListWebhookEndpoints": frozenset({Role.INTEGRATOR}),
    _WEBHOOK + "UpdateWebhookEndpoint": frozenset({Role.INTEGRATOR}),
    _WEBHOOK + "DeleteWebhookEndpoint": frozenset({Role.INTEGRATOR}),
    _WEBHOOK + "ListWebhookDeliveries": frozenset({Role.INTEGRATOR}),
    # The supervisor's floor and analytics (a dedicated supervisor role is proposed in docs/supervisor.md).
    _FLOOR + "WatchFloor": frozenset({Role.AGENT}),
    _INSIGHTS + "GetInsights": frozenset({Role.AGENT}),
}
"""Roles besides ``admin`` allowed to call each method (full gRPC method names)."""

PUBLIC_METHODS_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
PUBLIC_METHODS = PUBLIC_METHODS_PREFIXES
"""Health and reflection need no credential: load balancers and grpcurl use them."""


def is_public(method: str) -> bool:
    return method.startswith(PUBLIC_METHODS_PREFIXES)


current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "callpilot_principal", default=None
)
"""Set by the auth interceptor for the duration of each handler."""


def require_principal() -> Principal:
    """The caller of the RPC being handled; a programming error if none is set."""
    principal = current_principal.get()
    if principal is None:
        raise RuntimeError("no authenticated principal: is the AuthInterceptor installed?")
    return principal
