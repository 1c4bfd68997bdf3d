"""Who is calling: API keys and JWTs, the roles they carry, and the tenant
every RPC is scoped to.

The tenant always comes from the credential, never from a request field, so
no request can name its way into another tenant's data. See
`interceptor.AuthInterceptor` for where this is enforced and
`principal.METHOD_ROLES` for which role may call what.
"""

from callpilot.server.auth.principal import (
    METHOD_ROLES,
    PUBLIC_METHODS,
    Principal,
    Role,
    current_principal,
    require_principal,
)

__all__ = [
    "METHOD_ROLES",
    "PUBLIC_METHODS",
    "Principal",
    "Role",
    "current_principal",
    "require_principal",
]
